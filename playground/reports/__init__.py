"""Readings and tables: a comparison's and a study's results in numbers and in words, every reading built from the
same words (`readings`)."""

from playground.reports.comparison_table import GAP, LENGTHS, comparison_reading, summary_csv, summary_rows
from playground.reports.readings import points, share
from playground.reports.study_table import study_reading, table_rows

__all__ = [
    "GAP",
    "LENGTHS",
    "comparison_reading",
    "points",
    "share",
    "study_reading",
    "summary_csv",
    "summary_rows",
    "table_rows",
]
