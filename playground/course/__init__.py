"""The course: ten lessons (stories, predictions, questions) with their answers computed from the run, and the
glossary of every word the app uses. A lesson's answers are `playground.course.answers.answers()`: a name of its
own here would hide its module."""

from playground.course.answers import PREDICTIONS, prediction_verdict
from playground.course.glossary import TERMS, anchor, term_link
from playground.course.lessons import LESSONS, Lesson, class_snapshot, prepared, run_name, setup_facts

__all__ = [
    "LESSONS",
    "PREDICTIONS",
    "TERMS",
    "Lesson",
    "anchor",
    "class_snapshot",
    "prediction_verdict",
    "prepared",
    "run_name",
    "setup_facts",
    "term_link",
]
