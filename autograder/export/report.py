"""What an export did: how many grades it wrote, what it could not place, what it penalised."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from ..escape import safe_row
from ..results import write_atomic

UNMATCHED_FILE = "unmatched.csv"
UNMATCHED_COLUMNS = ["kind", "student key", "file", "reason"]

# Kinds of unmatched entries (the `kind` column of unmatched.csv).
NO_GRADEBOOK_ROW = "no_gradebook_row"    # a submission whose student is not in the gradebook
NO_SUBMISSION = "no_submission"          # a gradebook student with no graded submission
UNIDENTIFIED = "unidentified"            # a file whose name does not say which LMS student it is
SUPERSEDED = "superseded"                # an older file of a student who handed in again
DUPLICATE = "duplicate"                  # a second counting file for one student (older one dropped)
NOT_GRADED = "not_graded"                # a submission grading could not finish
NEEDS_REVIEW = "needs_review"            # flagged by the source screen: 0 until accepted
LOCKED = "locked"                        # Moodle: the grade is locked or overridden in the gradebook


@dataclass(frozen=True)
class Unmatched:
    kind: str
    key: str          # the student key (Canvas user id / Moodle participant id), "" if unknown
    file: str         # the submission's path relative to the graded PATH, "" for a gradebook row
    reason: str

    def line(self) -> str:
        who = f"student {self.key}" if self.key else "unknown student"
        where = f" ({self.file})" if self.file else ""
        return f"unmatched {self.kind}: {who}{where}: {self.reason}"


@dataclass(frozen=True)
class LateEntry:
    student: str              # name as the gradebook writes it (or the login)
    key: str
    file: str
    days_late: int | None     # None when it could not be computed
    penalty_pct: float
    original: float           # score before the penalty
    final: float              # score written
    note: str = ""


@dataclass
class ExportReport:
    kind: str                                   # "canvas" | "moodle" | "long"
    matched: int = 0                            # grades (or rows, for long) written
    unmatched: list[Unmatched] = field(default_factory=list)
    late: list[LateEntry] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)   # every file written, the import file first
    warnings: list[str] = field(default_factory=list)

    @property
    def dest(self) -> Path | None:
        return self.paths[0] if self.paths else None

    def summary(self) -> str:
        if self.kind == "long":
            return f"long: {self.matched} rows written"
        text = f"{self.kind}: {self.matched} grades written, {len(self.unmatched)} unmatched"
        if self.late:
            penalised = sum(1 for e in self.late if e.penalty_pct > 0)
            text += f", {len(self.late)} late ({penalised} penalised)"
        return text


def write_unmatched(folder: Path, entries: list[Unmatched]) -> Path:
    """unmatched.csv in `folder`, always written (header only when everything matched) so a
    stale list from an earlier run never survives."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(UNMATCHED_COLUMNS)
    for e in entries:   # file names and reasons quote student-controlled names
        w.writerow(safe_row([e.kind, e.key, e.file, e.reason]))
    path = folder / UNMATCHED_FILE
    write_atomic(path, buf.getvalue())
    return path
