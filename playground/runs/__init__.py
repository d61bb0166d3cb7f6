"""The run lifecycle: engines behind one typed protocol, a thread per run with its buttons (start, pause, step,
stop), saving every few seconds, and the registry that lists and reopens runs of every kind. A study's Ray driver
(`ray_driver`) is a process of its own and is not imported here. The process-wide registry is
`playground.runs.registry.registry()`: a name of its own here would hide its module."""

from playground.runs.background import BackgroundRun, RunError
from playground.runs.compare_engine import CompareEngine
from playground.runs.registry import RunRegistry, RunSummary
from playground.runs.seats import Classroom, Seat, SeatBook
from playground.runs.study_engine import ADDRESS_ENV, StudyEngine, StudySnapshot
from playground.runs.train_engine import TrainingEngine, TrainingSnapshot

__all__ = [
    "ADDRESS_ENV",
    "BackgroundRun",
    "Classroom",
    "CompareEngine",
    "RunError",
    "RunRegistry",
    "RunSummary",
    "Seat",
    "SeatBook",
    "StudyEngine",
    "StudySnapshot",
    "TrainingEngine",
    "TrainingSnapshot",
]
