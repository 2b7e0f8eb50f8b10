"""Exports from a graded batch folder (OUT): Canvas import CSV, Moodle grading worksheet,
and a long CSV for analysis. Each function takes OUT (or the list `load_batch(OUT)` returns),
writes its files and returns an ExportReport; `autograder.export.cli.export_group` is the
`autograder export ...` command group."""

from .canvas import export_canvas, read_gradebook
from .long import export_long
from .moodle import export_moodle, feedback_summary
from .report import ExportReport, LateEntry, Unmatched

__all__ = ["ExportReport", "LateEntry", "Unmatched", "export_canvas", "export_long",
           "export_moodle", "feedback_summary", "read_gradebook"]
