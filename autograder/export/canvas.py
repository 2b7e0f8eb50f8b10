"""Canvas: fill one assignment column of a gradebook import CSV from a graded batch.

Canvas imports a CSV shaped like its own gradebook export:
    Student,ID,SIS User ID,SIS Login ID,Section,<Assignment name> (<assignment id>)
        Points Possible,,,,,10.00
    "Smith, John",12345,...
The `(id)` matters: a column without it creates a NEW assignment. Uploaded values overwrite
the grades in Canvas, so a student without a submission keeps the grade Canvas already has
(written back unchanged) rather than being blanked or zeroed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ..errors import UserError
from ..results import SubmissionResult
from .common import (Results, cell, check_dest, choose_counting, column, fmt_score, load_results,
                     parse_number, read_csv, round2, where, write_csv)
from .report import (NO_GRADEBOOK_ROW, NO_SUBMISSION, NOT_GRADED, ExportReport, LateEntry,
                     Unmatched, write_unmatched)

IMPORT_COLUMNS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
POINTS_POSSIBLE = "    Points Possible"        # Canvas writes it indented; keep its shape
TEST_STUDENT = "Student, Test"                 # the Student View account's sortable name
ASSIGNMENT = re.compile(r"^(?P<title>.*?)\s*\((?P<id>[0-9]+)\)\s*$")
NAME_SHAPE = "<login>_<user id>_<submission id>_<file>"
HOW_TO_EXPORT = "in Canvas open Grades > Export > Export Entire Gradebook"
LATE_COLUMNS = ["student", "id", "days late", "penalty %", "original score", "final score", "note"]
DAY = 86400.0
# Rows Canvas adds that are not students: "    Points Possible", the manual-posting/muted row.
_MARKER_ROW = re.compile(r"^\s*(points possible|manual posting.*|muted)?\s*$", re.IGNORECASE)


@dataclass
class GradebookStudent:
    student: str
    id: str
    sis_user_id: str
    sis_login_id: str
    section: str
    current: str            # the assignment's cell in the export ("" when no such column)

    @property
    def is_test_student(self) -> bool:
        return self.student.strip() == TEST_STUDENT


@dataclass
class Gradebook:
    students: list[GradebookStudent]
    assignment_header: str | None         # the export's header for the assignment id, if any
    assignment_headers: list[str]         # every "Name (id)" header, for suggestions
    points_possible: float | None
    bom: bool
    newline: str
    warnings: list[str] = field(default_factory=list)

    def by_id(self) -> dict[str, GradebookStudent]:
        return {s.id: s for s in self.students}


def read_gradebook(path: Path, assignment_id: str | None = None) -> Gradebook:
    """Read a real Canvas gradebook export tolerantly: BOM, semicolons, Integration ID and
    other extra columns, LastName/FirstName instead of Student, the Points Possible and
    manual-posting rows, the test student."""
    table = read_csv(path, "gradebook export", HOW_TO_EXPORT)
    header = table.rows[0]
    i_student = column(header, "Student")
    i_last, i_first = column(header, "LastName", "Last Name"), column(header, "FirstName", "First Name")
    i_id = column(header, "ID")
    if i_id is None or (i_student is None and i_last is None):
        raise UserError(f"{path} is not a Canvas gradebook export: its first row has no "
                        f"'Student' and 'ID' columns; {HOW_TO_EXPORT}")
    i_sis_user, i_sis_login = column(header, "SIS User ID"), column(header, "SIS Login ID")
    i_section = column(header, "Section")
    headers = [h.strip() for h in header if ASSIGNMENT.match(h.strip())]
    i_assignment = None
    if assignment_id is not None:
        i_assignment = next((i for i, h in enumerate(header)
                             if (m := ASSIGNMENT.match(h.strip())) and m["id"] == assignment_id), None)

    gb = Gradebook(students=[], assignment_headers=headers, points_possible=None,
                   assignment_header=None if i_assignment is None else header[i_assignment].strip(),
                   bom=table.bom, newline=table.newline)
    seen: set[str] = set()
    for line, row in enumerate(table.rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if i_student is not None:
            name = cell(row, i_student)
        else:
            last, first = cell(row, i_last).strip(), cell(row, i_first).strip()
            name = f"{last}, {first}" if first else last
        user_id = cell(row, i_id).strip()
        if name.strip().casefold() == "points possible":
            gb.points_possible = parse_number(cell(row, i_assignment))
            continue
        if not user_id.isdigit():
            if not _MARKER_ROW.match(name):
                gb.warnings.append(f"gradebook line {line} skipped: {name.strip()!r} has no "
                                   f"numeric Canvas ID ({user_id!r})")
            continue
        if user_id in seen:
            gb.warnings.append(f"gradebook line {line} skipped: Canvas ID {user_id} appears twice")
            continue
        seen.add(user_id)
        gb.students.append(GradebookStudent(
            student=name, id=user_id, sis_user_id=cell(row, i_sis_user),
            sis_login_id=cell(row, i_sis_login), section=cell(row, i_section),
            current=cell(row, i_assignment).strip()))
    return gb


def parse_assignment(assignment: str, gradebook: Path | None = None) -> tuple[str, str]:
    """'Differentiation (12345)' -> ('Differentiation', '12345'); a name without the id is
    refused, because Canvas would import it as a new assignment."""
    text = assignment.strip()
    m = ASSIGNMENT.match(text)
    if m and m["title"]:
        return m["title"], m["id"]
    hint = 'copy the assignment\'s column header from the gradebook export, e.g. "Lab 1 (12345)"'
    if gradebook is not None:
        try:
            headers = read_gradebook(gradebook).assignment_headers
        except UserError:
            headers = []
        wanted = text.casefold()
        close = [h for h in headers if ASSIGNMENT.match(h)["title"].casefold() == wanted] or \
                [h for h in headers if wanted and wanted in h.casefold()]
        if close:
            hint = f'use the column header from the gradebook export: "{close[0]}"'
    raise UserError(f'--assignment "{text}" has no Canvas assignment id in parentheses, so '
                    f'Canvas would create a NEW assignment on import; {hint}')


def _late(r: SubmissionResult, original: float, who: str, late_penalty: float | None,
          due_ts: float | None) -> LateEntry:
    original = float(round2(original))      # what the late file shows; the penalty uses it too
    base = dict(student=who, key=r.student.key, file=where(r), original=original)
    if late_penalty is None or due_ts is None:
        return LateEntry(**base, days_late=None, penalty_pct=0.0, final=original,
                         note="Canvas marked it LATE; no penalty (give --late-penalty and --due)")
    if r.submitted_at <= 0:
        return LateEntry(**base, days_late=None, penalty_pct=0.0, final=original,
                         note="Canvas marked it LATE but its submission time is unknown; "
                              "no penalty applied, check it by hand")
    seconds = r.submitted_at - due_ts
    if seconds <= 0:
        return LateEntry(**base, days_late=0, penalty_pct=0.0, final=original,
                         note="Canvas marked it LATE but it was handed in before --due "
                              "(an extension or another due date?); no penalty applied")
    days = math.ceil(seconds / DAY)
    pct = min(100.0, late_penalty * days)
    return LateEntry(**base, days_late=days, penalty_pct=pct,
                     final=float(round2(original * (1 - pct / 100))))


def export_canvas(out: Results, gradebook: Path, assignment: str, dest: Path, *,
                  points: float | None = None, missing_zero: bool = False,
                  late_penalty: float | None = None, due: datetime | None = None) -> ExportReport:
    """Write a Canvas gradebook import CSV for one assignment.

    Each counting result of a Canvas download name is joined on the Canvas user id to the
    gradebook export's `ID` column. The score is the result's points, scaled to `points` when
    given, rounded to 2 decimals, minus the late penalty (late_penalty % per started day after
    `due`, capped at 100 %) for files Canvas marked LATE. Also writes unmatched.csv and, when a
    penalty is asked for, <dest stem>_late.csv next to dest.
    """
    gradebook, dest = Path(gradebook), check_dest(dest)
    title, assignment_id = parse_assignment(assignment, gradebook)
    if points is not None and not points > 0:
        raise UserError(f"--points {points:g} must be above 0: it is what a full score is worth")
    if late_penalty is not None and not 0 <= late_penalty <= 100:
        raise UserError(f"--late-penalty {late_penalty:g} must be a percentage per day between 0 and 100")
    if (late_penalty is None) != (due is None):
        raise UserError("--late-penalty and --due go together: give the penalty in percent per "
                        "day and the due date, e.g. --late-penalty 10 --due 2024-03-01T23:59:00+01:00")
    due_ts = due.timestamp() if due is not None else None
    column_name = f"{title} ({assignment_id})"

    results = load_results(out)
    gb = read_gradebook(gradebook, assignment_id)
    report = ExportReport(kind="canvas", warnings=list(gb.warnings))
    if gb.assignment_header is None:
        report.warnings.append(
            f"the gradebook export has no column for assignment id {assignment_id}; check "
            f"--assignment against its headers (Canvas creates a new assignment for an unknown id)")
    elif gb.assignment_header != column_name:
        report.warnings.append(f'the gradebook calls assignment {assignment_id} "{gb.assignment_header}"; '
                               f'writing "{column_name}" (Canvas matches on the id)')

    chosen = choose_counting(results, "canvas", "Canvas", NAME_SHAPE)
    report.unmatched.extend(chosen.unmatched)
    students = gb.by_id()

    maxima = {r.max_points for r in chosen.graded.values()}
    if gb.points_possible is not None:
        if points is not None and abs(points - gb.points_possible) > 1e-9:
            report.warnings.append(f"--points {points:g} but Canvas says the assignment is worth "
                                   f"{gb.points_possible:g}")
        if points is None and maxima and maxima != {gb.points_possible}:
            report.warnings.append(
                f"scores are raw autograder points (out of {', '.join(f'{m:g}' for m in sorted(maxima))}) "
                f"but Canvas says the assignment is worth {gb.points_possible:g}; "
                f"give --points {gb.points_possible:g} to scale them")

    scores: dict[str, str] = {}
    for key, r in chosen.graded.items():
        who = students[key].student.strip() if key in students else (r.student.login or key)
        if key not in students:
            report.unmatched.append(Unmatched(
                NO_GRADEBOOK_ROW, key, where(r),
                f"Canvas user {key} ({r.student.login}) is not in the gradebook export; export "
                f"it again (the student may have joined later or dropped the course)"))
            continue
        if points is not None and r.max_points <= 0:
            report.unmatched.append(Unmatched(
                NOT_GRADED, key, where(r), "the result has 0 points possible; cannot scale it"))
            continue
        score = r.points * points / r.max_points if points is not None else r.points
        if r.student.late:
            entry = _late(r, score, who, late_penalty, due_ts)
            report.late.append(entry)
            score = entry.final
        elif due_ts is not None and r.submitted_at > due_ts:
            report.warnings.append(f"{who} ({where(r)}) was handed in after --due but Canvas did "
                                   f"not mark it LATE (an extension?); no penalty applied")
        scores[key] = fmt_score(score)

    rows: list[list[str]] = []
    for s in gb.students:
        value = scores.get(s.id)
        if value is not None:
            report.matched += 1
        else:
            value = _kept_value(s.current)
            if s.id in chosen.failed or s.is_test_student:
                pass   # listed as not graded already / the Student View account
            elif value:
                report.unmatched.append(Unmatched(NO_SUBMISSION, s.id, "", (
                    f"{s.student.strip()} has no graded submission; kept the grade already in "
                    f"Canvas ({value})")))
            elif s.current.upper() == "N/A":
                report.unmatched.append(Unmatched(NO_SUBMISSION, s.id, "", (
                    f"{s.student.strip()} has no submission; the assignment is not assigned to "
                    f"them in Canvas (N/A), left empty")))
            elif missing_zero:
                value = "0"
                report.unmatched.append(Unmatched(NO_SUBMISSION, s.id, "", (
                    f"{s.student.strip()} has no submission; wrote 0 (--missing-zero)")))
            else:
                report.unmatched.append(Unmatched(NO_SUBMISSION, s.id, "", (
                    f"{s.student.strip()} has no submission; left empty (--missing-zero writes 0)")))
        rows.append([s.student, s.id, s.sis_user_id, s.sis_login_id, s.section, value])

    possible = gb.points_possible if gb.points_possible is not None else (
        points if points is not None else (maxima.pop() if len(maxima) == 1 else None))
    pp_row = [POINTS_POSSIBLE, "", "", "", "", "" if possible is None else f"{possible:.2f}"]
    write_csv(dest, [IMPORT_COLUMNS + [column_name], pp_row, *rows], bom=gb.bom, newline=gb.newline)
    report.paths.append(dest)
    if late_penalty is not None:
        late_path = dest.with_name(f"{dest.stem}_late.csv")
        write_csv(late_path, [LATE_COLUMNS] + [
            [e.student, e.key, "" if e.days_late is None else e.days_late, fmt_score(e.penalty_pct),
             fmt_score(e.original), fmt_score(e.final), e.note] for e in report.late])
        report.paths.append(late_path)
    report.paths.append(write_unmatched(dest.parent, report.unmatched))
    return report


def _kept_value(current: str) -> str:
    """The grade Canvas already has, as we write it back ('' for none or N/A)."""
    if not current or current.upper() == "N/A":
        return ""
    number = parse_number(current)
    if number is not None:
        return fmt_score(number)
    return "EX" if current.upper() == "EX" else current
