"""The model package's own source code as sections of one standalone script, module after module.

Each module's text is `inspect.getsource`'s, its docstring turned into a comment under a heading and its imports
taken out: the script gathers the standard library's and torch's at its top (`import_block`), and the playground's
own are not needed, as the names they bring are defined in the same file. So the script runs the app's code, in the
app's order, and cannot drift from it.
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Iterable
from types import ModuleType

from playground.model import attention, cells, fused_lstm, fused_rnn, interface, seq2seq, step_hook, tokens, transformer

# In reading order: the encoder-decoder, the cells', attention's and the Transformer's equations, what the model
# hands out, then the step hook and the fast paths. At the top level a module uses only its own names and the special
# ids (the rest it calls at run time), so any order runs; tests run the scripts.
MODEL_MODULES: tuple[ModuleType, ...] = (seq2seq, cells, attention, transformer, interface, step_hook, fused_rnn,
                                         fused_lstm)
TOKENS_MODULE = tokens
LIBRARY = "playground"
THIRD_PARTY = ("torch",)


def module_section(module: ModuleType) -> str:
    """A module's code without its imports, its docstring as a comment under a heading naming the module."""
    source = inspect.getsource(module)
    tree = ast.parse(source)
    lines = source.splitlines()
    dropped: set[int] = set()
    docstring = ast.get_docstring(tree, clean=True)
    for node in tree.body:
        is_docstring = node is tree.body[0] and docstring is not None and isinstance(node, ast.Expr)
        if is_docstring or isinstance(node, ast.Import | ast.ImportFrom):
            dropped.update(range(node.lineno - 1, node.end_lineno or node.lineno))
    body = "\n".join(line for index, line in enumerate(lines) if index not in dropped).strip("\n")
    path = module.__name__.replace(".", "/") + ".py"
    heading = f"# --- {path} "
    comment = "\n".join(f"# {line}".rstrip() for line in (docstring or "").splitlines())
    return re.sub(r"\n{3,}", "\n\n\n", f"{heading}{'-' * max(3, 120 - len(heading))}\n{comment}\n\n{body}\n")


def model_section() -> str:
    return "\n\n".join(module_section(module) for module in MODEL_MODULES)


def import_block(modules: Iterable[ModuleType], standard: Iterable[str] = ()) -> str:
    """The imports `modules` need, merged, outside the playground: `from __future__` first, then the standard
    library's (with `standard`, more lines of the script's own), then torch's."""
    plain: set[str] = set(standard)
    names: dict[str, set[str]] = {}
    for module in modules:
        for node in ast.parse(inspect.getsource(module)).body:
            if isinstance(node, ast.Import):
                plain.update(ast.unparse(ast.Import([alias])) for alias in node.names
                             if not alias.name.startswith(LIBRARY))
            elif isinstance(node, ast.ImportFrom) and node.module and not node.module.startswith(LIBRARY):
                names.setdefault(node.module, set()).update(ast.unparse(alias) for alias in node.names)
    future = names.pop("__future__", set())
    lines = {f"from {module} import {', '.join(sorted(aliases))}": module for module, aliases in names.items()}
    lines |= {line: line.split()[1] for line in plain}
    groups = [[], []]
    for line, module in lines.items():
        groups[module.split(".")[0] in THIRD_PARTY].append(line)
    blocks = ["\n".join(sorted(group, key=lambda line: (line.startswith("from"), line))) for group in groups if group]
    if future:
        blocks.insert(0, f"from __future__ import {', '.join(sorted(future))}")
    return "\n\n".join(blocks)
