"""A tidy (long) CSV for analysis: one row per test case of every graded file."""

from __future__ import annotations

from pathlib import Path

from .common import Results, check_dest, fmt_points, load_results, student_label, where, write_csv
from .report import ExportReport

LONG_COLUMNS = ["student", "file", "question", "test", "score", "max", "status", "hint", "counts"]


def long_rows(results) -> list[list[str]]:
    """Rows of the long CSV (without its header).

    A test case gives (score, max, passed|failed, its hint, hidden ones included: this file is
    for the teacher). A question that was not graded normally, or has no test cases, gives a
    row of its own with an empty `test` and the question's status; a file grading could not
    read gives one row with empty `question`. `counts` is "no" for an older, superseded file.
    """
    rows = []
    for r in results:
        base = [student_label(r), where(r)]
        counts = "yes" if r.counts else "no"
        if not r.questions or r.held:   # a flagged submission earns 0 until staff accept it
            rows.append(base + ["", "", "0", fmt_points(r.max_points) if r.held else "0", r.status_text, "", counts])
            continue
        for q in r.questions:
            for t in q.tests:
                rows.append(base + [q.name, t.name, fmt_points(t.points), fmt_points(t.max_points),
                                    "passed" if t.passed else "failed", t.hint, counts])
            if not q.graded_normally or not q.tests:
                rows.append(base + [q.name, "", fmt_points(q.points), fmt_points(q.max_points),
                                    q.status_text, "", counts])
    return rows


def export_long(out: Results, dest: Path) -> ExportReport:
    """Write the long CSV for every result of the batch (superseded files included, marked)."""
    dest = check_dest(dest)
    rows = long_rows(load_results(out))
    write_csv(dest, [LONG_COLUMNS, *rows])
    return ExportReport(kind="long", matched=len(rows), paths=[dest])
