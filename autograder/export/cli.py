"""`autograder export canvas|moodle|long OUT ...`: register with `cli.add_command(export_group)`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from ..errors import UserError
from .report import ExportReport

_PATH = click.Path(path_type=Path)


def parse_due(text: str) -> datetime:
    """An ISO 8601 date and time; one without a UTC offset is taken as this machine's local time."""
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise UserError(f"--due {text!r} is not an ISO 8601 date and time; write it like "
                        f"2024-03-01T23:59:00+01:00 (or 2024-03-01T23:59 for local time)") from None


def _show(report: ExportReport) -> None:
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    for entry in report.unmatched:
        click.echo(entry.line(), err=True)
    for entry in report.late:
        days = "?" if entry.days_late is None else entry.days_late
        click.echo(f"late: {entry.student} ({entry.key}): {days} day(s), -{entry.penalty_pct:g}%"
                   + (f"; {entry.note}" if entry.note else ""), err=True)
    click.echo(report.summary())
    for path in report.paths:
        click.echo(f"  wrote {path}")


@click.group("export")
def export_group():
    """Write grades from a graded batch folder OUT for Canvas, Moodle or analysis."""


@export_group.command("canvas")
@click.argument("out", type=_PATH)
@click.option("--gradebook", required=True, type=_PATH,
              help="Canvas gradebook export (Grades > Export > Export Entire Gradebook).")
@click.option("--assignment", required=True, metavar="'NAME (ID)'",
              help="The assignment's column header from the export, id included.")
@click.option("-o", "--output", "dest", type=_PATH, default=None,
              help="Import CSV to write [default: OUT/canvas_import.csv].")
@click.option("--points", type=float, default=None, metavar="N",
              help="Scale scores so a full score is N points [default: raw points].")
@click.option("--missing-zero", is_flag=True,
              help="Write 0 for students with no submission (a grade Canvas has is kept).")
@click.option("--late-penalty", type=float, default=None, metavar="PCT",
              help="Percent taken off per started day late (files Canvas marked LATE); needs --due.")
@click.option("--due", default=None, metavar="ISO8601",
              help="Due date, e.g. 2024-03-01T23:59:00+01:00 (no offset: local time).")
def canvas_cmd(out, gradebook, assignment, dest, points, missing_zero, late_penalty, due):
    """Fill one assignment column of a Canvas gradebook import CSV."""
    from .canvas import export_canvas

    report = export_canvas(out, gradebook, assignment, dest or out / "canvas_import.csv",
                           points=points, missing_zero=missing_zero, late_penalty=late_penalty,
                           due=parse_due(due) if due is not None else None)
    _show(report)


@export_group.command("moodle")
@click.argument("out", type=_PATH)
@click.option("--worksheet", required=True, type=_PATH,
              help="Moodle offline grading worksheet (Grading action > Download grading worksheet).")
@click.option("-o", "--output", "dest", type=_PATH, default=None,
              help="Filled worksheet to write [default: OUT/moodle_grades.csv].")
@click.option("--points", type=float, default=None, metavar="N",
              help="Scale grades to N points [default: each row's Maximum grade].")
def moodle_cmd(out, worksheet, dest, points):
    """Fill Grade and Feedback comments of a Moodle grading worksheet."""
    from .moodle import export_moodle

    _show(export_moodle(out, worksheet, dest or out / "moodle_grades.csv", points=points))


@export_group.command("long")
@click.argument("out", type=_PATH)
@click.option("-o", "--output", "dest", type=_PATH, default=None,
              help="CSV to write [default: OUT/grades_long.csv].")
def long_cmd(out, dest):
    """One row per test case of every graded file, for analysis."""
    from .long import export_long

    _show(export_long(out, dest or out / "grades_long.csv"))
