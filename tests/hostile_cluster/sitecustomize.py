"""A student's Ray cluster (test only): every Python process of its nodes loads this first. In its workers, each
condition's result carries an object whose unpickling runs code: it appends the pid of the process that unpickled it
to the file HOSTILE_MARK names."""

import importlib.abc
import importlib.util
import os
import sys

MARK = os.environ["HOSTILE_MARK"]


class Payload:
    def __reduce__(self) -> tuple[object, ...]:
        return (exec, (f"import os; open({MARK!r}, 'a').write(str(os.getpid()) + '\\n')",))


class PatchResults(importlib.abc.MetaPathFinder):
    """When the shipped playground.experiments.study_grid is imported, its results start carrying the payload."""

    def find_spec(self, name: str, path: object, target: object = None) -> object:
        if name != "playground.experiments.study_grid":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        load = spec.loader.exec_module

        def exec_module(module: object) -> None:
            load(module)
            as_dict = module.ConditionResult.as_dict
            module.ConditionResult.as_dict = lambda result: {**as_dict(result), "finals": Payload()}

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, PatchResults())
