"""Moodle: fill Grade and Feedback comments in an assignment's offline grading worksheet.

Moodle's worksheet (Assignment > View all submissions > Grading action > Download grading
worksheet) has, per participant: Identifier ("Participant <id>"), Full name, Email address,
Status, Grade, Maximum grade, Grade can be changed, Last modified (submission),
Last modified (grade), Feedback comments. The same file is uploaded back ("Upload grading
worksheet"). Moodle refuses a grade above the row's Maximum grade, and importing feedback
without grades erases grades, so a row we grade always gets both; every other cell and row
is written back as it was.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from ..errors import UserError
from ..results import SubmissionResult
from .common import (Results, cell, check_dest, choose_counting, column, fmt_points, fmt_score,
                     load_results, parse_number, read_csv, where, write_csv)
from .report import (LOCKED, NO_GRADEBOOK_ROW, NO_SUBMISSION, NOT_GRADED, ExportReport, Unmatched,
                     write_unmatched)

NAME_SHAPE = "<Full name>_<participant id>_assignsubmission_file_"
HOW_TO_GET = ("in Moodle open the assignment, View all submissions, Grading action > "
              "Download grading worksheet")
_PARTICIPANT = re.compile(r"([0-9]+)\s*$")
HINT_CHARS = 160


def _clip(text: str, limit: int = HINT_CHARS) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 3].rstrip() + "..."


def feedback_summary(r: SubmissionResult) -> str:
    """A short plain summary per question for the student, e.g.
    "q1 2/2; q2 1/2: grad is None: read .grad of the leaf tensor (1 of 2 hidden tests failed)".

    Visible tests may show the hint of the first one that failed (check messages never hold
    reference values). Hidden tests show only how many failed: never their names, code or hints.
    """
    parts = []
    for q in r.questions:
        text = f"{q.name} {fmt_points(q.points)}/{fmt_points(q.max_points)}"
        if not q.graded_normally:
            text += f" ({q.status_text})"
        else:
            failing_visible = next((t for t in q.tests if not t.hidden and not t.passed), None)
            if failing_visible is not None:
                text += ": " + (_clip(failing_visible.hint) or "a visible test failed")
            hidden = [t for t in q.tests if t.hidden]
            hidden_failed = sum(1 for t in hidden if not t.passed)
            if hidden_failed:
                text += f" ({hidden_failed} of {len(hidden)} hidden tests failed)"
        parts.append(text)
    summary = "; ".join(parts) if parts else "no questions were graded"
    # Moodle stores feedback comments as HTML: escape so "x < 0" reads as written.
    return html.escape(summary, quote=False)


def export_moodle(out: Results, worksheet: Path, dest: Path, *,
                  points: float | None = None) -> ExportReport:
    """Fill Grade and Feedback comments of a Moodle offline grading worksheet.

    Each counting result of a Moodle folder name is joined on the participant id in the
    Identifier column. The grade is the result's points scaled to the row's Maximum grade,
    or to `points` when given (which must not exceed any graded row's Maximum grade).
    Also writes unmatched.csv next to dest.
    """
    worksheet, dest = Path(worksheet), check_dest(dest)
    if points is not None and not points > 0:
        raise UserError(f"--points {points:g} must be above 0: it is what a full score is worth")
    results = load_results(out)
    table = read_csv(worksheet, "grading worksheet", HOW_TO_GET)
    header, rows = table.rows[0], [list(r) for r in table.rows[1:]]
    i_id, i_grade = column(header, "Identifier"), column(header, "Grade")
    i_modified = column(header, "Last modified (grade)")
    if i_id is None or i_grade is None or i_modified is None:
        raise UserError(f"{worksheet} is not a Moodle offline grading worksheet: it needs the "
                        f"columns 'Identifier', 'Grade' and 'Last modified (grade)' (download it "
                        f"with your Moodle language set to English); {HOW_TO_GET}")
    i_max, i_name = column(header, "Maximum grade"), column(header, "Full name")
    i_change, i_feedback = column(header, "Grade can be changed"), column(header, "Feedback comments")
    i_status = column(header, "Status")

    report = ExportReport(kind="moodle")
    if i_feedback is None:
        report.warnings.append("the worksheet has no 'Feedback comments' column (feedback "
                               "comments are off for this assignment); writing grades only")
    # Write decimals the way the worksheet does (some languages use a comma).
    samples = [cell(r, i) for r in rows for i in (i_max, i_grade) if i is not None]
    decimal = "," if any("," in s and "." not in s and parse_number(s) is not None for s in samples) else "."

    chosen = choose_counting(results, "moodle", "Moodle", NAME_SHAPE)
    report.unmatched.extend(chosen.unmatched)
    seen: set[str] = set()
    for line, row in enumerate(rows, start=2):
        m = _PARTICIPANT.search(cell(row, i_id))
        if not m:
            continue
        key = m.group(1)
        seen.add(key)
        who = cell(row, i_name).strip() or f"Participant {key}"
        r = chosen.graded.get(key)
        if r is None:
            if key not in chosen.failed:
                status = cell(row, i_status).strip()
                report.unmatched.append(Unmatched(NO_SUBMISSION, key, "", (
                    f"{who} has no graded submission" + (f" (Moodle: {status})" if status else "")
                    + "; row left as it was")))
            continue
        if cell(row, i_change).strip().casefold() == "no":
            report.unmatched.append(Unmatched(LOCKED, key, where(r), (
                f"Moodle says {who}'s grade cannot be changed (locked or overridden in the "
                f"gradebook); row left as it was")))
            continue
        maximum = parse_number(cell(row, i_max))
        target = points if points is not None else maximum
        if target is None:
            raise UserError(f"worksheet line {line} ({who}) has no Maximum grade "
                            f"({cell(row, i_max)!r}; is the assignment graded with a scale?): "
                            f"give --points with the maximum grade")
        if maximum is not None and target > maximum + 1e-9:
            raise UserError(f"--points {points:g} is above the Maximum grade {maximum:g} of "
                            f"worksheet line {line} ({who}); Moodle rejects grades above it: "
                            f"leave --points out to scale to each row's Maximum grade")
        if r.max_points <= 0:
            report.unmatched.append(Unmatched(NOT_GRADED, key, where(r),
                                              "the result has 0 points possible; cannot scale it"))
            continue
        grade = r.points * target / r.max_points
        if maximum is not None and grade > maximum:
            report.warnings.append(f"{who}: {grade:g} is above the Maximum grade {maximum:g}; "
                                   f"wrote {maximum:g}")
            grade = maximum
        width = max(i_grade, i_feedback if i_feedback is not None else 0) + 1
        row.extend([""] * (width - len(row)))
        row[i_grade] = fmt_score(grade, decimal)
        if i_feedback is not None:
            row[i_feedback] = feedback_summary(r)
        report.matched += 1
    for key, r in chosen.graded.items():
        if key not in seen:
            report.unmatched.append(Unmatched(
                NO_GRADEBOOK_ROW, key, where(r),
                f"participant {key} ({r.student.name}) is not in the worksheet; download it again "
                f"(the student may have been unenrolled, or the worksheet is for one group only)"))

    write_csv(dest, [header, *rows], bom=table.bom, newline=table.newline)
    report.paths.append(dest)
    report.paths.append(write_unmatched(dest.parent, report.unmatched))
    return report
