"""Pieces every exporter shares: loading a batch, reading and writing CSV, choosing the one
result that counts per student, and writing numbers the way gradebooks read them."""

from __future__ import annotations

import codecs
import csv
import io
import os
import tempfile
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import UserError
from ..escape import safe_cell
from ..results import GRADED, SubmissionResult, load_batch
from .report import DUPLICATE, NEEDS_REVIEW, NOT_GRADED, SUPERSEDED, UNIDENTIFIED, Unmatched

Results = Path | str | Sequence[SubmissionResult]


def load_results(out: Results) -> list[SubmissionResult]:
    """The results of a graded batch folder, or the list itself when given one."""
    if not isinstance(out, (str, Path)):
        return list(out)
    folder = Path(out)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder: give the batch folder OUT that grading wrote")
    results = load_batch(folder)
    if not results:
        raise UserError(f"{folder} holds no graded submissions (no batch.json or records/): "
                        f"grade into it first")
    return results


# --------------------------------------------------------------------------- CSV in and out

@dataclass
class CsvTable:
    rows: list[list[str]]          # every row, the header included, as the file has them
    bom: bool                      # the file started with a UTF-8 byte order mark
    newline: str                   # "\r\n" or "\n", as the file ends its lines
    delimiter: str


def read_csv(path: Path, what: str, how_to_get: str) -> CsvTable:
    """Read a CSV an LMS gave us: UTF-8 with or without BOM, comma or semicolon separated."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} {path} does not exist; {how_to_get}")
    raw = path.read_bytes()
    bom = raw.startswith(codecs.BOM_UTF8)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{what} {path} is not UTF-8 text (byte {exc.start}); {how_to_get}, "
                        f"or save it from your spreadsheet as \"CSV UTF-8\"") from None
    first = text.split("\n", 1)[0]
    newline = "\r\n" if first.endswith("\r") else "\n"
    delimiter = max((",", ";", "\t"), key=first.count)
    if first.count(delimiter) == 0:
        delimiter = ","
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise UserError(f"{what} {path} is empty; {how_to_get}")
    return CsvTable(rows=rows, bom=bom, newline=newline, delimiter=delimiter)


def csv_text(rows: Iterable[Sequence[object]], newline: str = "\n", delimiter: str = ",") -> str:
    """Every text cell goes through safe_cell: names, file names and hints are student-controlled
    and must not reach a spreadsheet as a formula (numbers such as -1.5 are left alone)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator=newline, delimiter=delimiter)
    for row in rows:
        w.writerow(["" if c is None else safe_cell(c) for c in row])
    return buf.getvalue()


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Like results.write_atomic, but byte-exact (no newline translation on any platform)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_csv(path: Path, rows: Iterable[Sequence[object]], *, bom: bool = False,
              newline: str = "\n") -> Path:
    data = csv_text(rows, newline).encode("utf-8")
    write_bytes_atomic(path, (codecs.BOM_UTF8 if bom else b"") + data)
    return path


def check_dest(dest: Path) -> Path:
    dest = Path(dest)
    if dest.is_dir():
        raise UserError(f"-o {dest} is a folder; give the file name to write, e.g. {dest / 'grades.csv'}")
    return dest


def column(header: Sequence[str], *names: str) -> int | None:
    """Index of the first header cell equal (ignoring case and outer spaces) to one of names."""
    wanted = [n.casefold() for n in names]
    for want in wanted:
        for i, cell in enumerate(header):
            if cell.strip().casefold() == want:
                return i
    return None


def cell(row: Sequence[str], index: int | None) -> str:
    if index is None or index >= len(row):
        return ""
    return row[index]


# --------------------------------------------------------------------------- numbers

def parse_number(text: str) -> float | None:
    """'7.50', '7,50', ' 10 ' -> float; anything else (EX, N/A, '', a letter grade) -> None."""
    t = text.strip()
    if "," in t and "." not in t:
        t = t.replace(",", ".")
    try:
        value = float(t)
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None


def round2(x: float) -> Decimal:
    """Half-up to 2 decimals, from the shortest repr (so 2.675 -> 2.68, not 2.67)."""
    try:
        return Decimal(repr(float(x))).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    except InvalidOperation:  # pragma: no cover - only for inf/nan, which never reach here
        raise ValueError(f"not a finite number: {x!r}")


def fmt_score(x: float, decimal: str = ".") -> str:
    """A score as gradebooks read it: at most 2 decimals, no trailing zeros ('7.5', '10', '0')."""
    d = round2(x)
    text = format(d, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("-0", ""):
        text = "0"
    return text.replace(".", decimal)


def fmt_points(x: float) -> str:
    """Points in feedback and the long CSV: up to 6 significant decimals, no trailing zeros."""
    text = f"{x:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


# --------------------------------------------------------------------------- choosing results

def where(r: SubmissionResult) -> str:
    return r.source or r.file


def student_label(r: SubmissionResult) -> str:
    s = r.student
    return s.name or s.login or s.key or Path(r.file).stem


def _newness(r: SubmissionResult) -> tuple:
    sid = r.student.submission_id
    return (r.submitted_at, r.student.attempt, int(sid) if sid.isdigit() else -1, where(r))


@dataclass
class Chosen:
    graded: dict[str, SubmissionResult]       # student key -> the one result that counts
    failed: dict[str, SubmissionResult]       # student key -> counting result grading could not finish
    unmatched: list[Unmatched]


def choose_counting(results: Sequence[SubmissionResult], lms: str, lms_title: str,
                    name_shape: str) -> Chosen:
    """One result per student of this LMS: the counting one (counts=True); if two count anyway,
    the newest by submitted_at. Everything left out is listed with the reason."""
    unmatched: list[Unmatched] = []
    by_key: dict[str, list[SubmissionResult]] = {}
    for r in results:
        if r.student.lms != lms or not r.student.key:
            origin = (f"a {r.student.lms.capitalize()} submission" if r.student.lms
                      else "its name does not say who handed it in")
            unmatched.append(Unmatched(
                UNIDENTIFIED, r.student.key, where(r),
                f"{origin}; only {lms_title} download names ({name_shape}) can be joined "
                f"to the {lms_title} gradebook"))
        elif not r.counts:
            unmatched.append(Unmatched(
                SUPERSEDED, r.student.key, where(r),
                r.note or "an older file of a student who handed in again; not counted"))
        else:
            by_key.setdefault(r.student.key, []).append(r)
    graded: dict[str, SubmissionResult] = {}
    failed: dict[str, SubmissionResult] = {}
    for key, group in by_key.items():
        group = sorted(group, key=_newness, reverse=True)
        keep = group[0]
        for other in group[1:]:
            unmatched.append(Unmatched(
                DUPLICATE, key, where(other),
                f"two counting files for this student; kept the newer {where(keep)}"))
        if keep.held:
            unmatched.append(Unmatched(
                NEEDS_REVIEW, key, where(keep),
                "flagged by the source screen: 0 written until staff accept it (autograder review)"))
        if keep.status != GRADED:
            failed[key] = keep
            unmatched.append(Unmatched(
                NOT_GRADED, key, where(keep),
                f"grading did not finish ({keep.status_text}); no grade written, grade it by hand"))
        else:
            graded[key] = keep
    return Chosen(graded=graded, failed=failed, unmatched=unmatched)
