"""The one result model shared by grading and every exporter.

A batch folder (OUT) keeps one JSON record per graded input file under OUT/records/;
final_grades.csv, results/*.json, feedback, LMS files and the report are all derived from
those records with `load_batch`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

RECORDS_DIR = "records"
GRADED = "graded"


@dataclass(frozen=True)
class StudentRef:
    """Who handed a file in, as far as the LMS download's file or folder name tells."""

    lms: str = ""                  # "canvas" | "moodle" | "" (a plain file)
    key: str = ""                  # the id that joins to the gradebook (Canvas user id, Moodle participant id)
    login: str = ""                # Canvas login name
    name: str = ""                 # Moodle full name
    submission_id: str = ""        # Canvas submission id
    late: bool = False             # Canvas marked the file LATE
    attempt: int = 0               # Canvas resubmission suffix -N (0 when none)
    original_name: str = ""        # the name the student gave the file


@dataclass(frozen=True)
class TestCaseResult:
    __test__ = False   # not a pytest test class, despite the name
    name: str                      # e.g. "test_q1_grad_value"
    hidden: bool
    points: float                  # earned
    max_points: float
    passed: bool
    hint: str = ""                 # the check's message for the student; "" when passed


@dataclass(frozen=True)
class QuestionResult:
    name: str
    points: float
    max_points: float
    status: str = GRADED           # "graded", or why not: "timed out", "memory limit", ...
    tests: tuple[TestCaseResult, ...] = ()

    @property
    def graded_normally(self) -> bool:
        return self.status == GRADED


@dataclass(frozen=True)
class SubmissionResult:
    file: str                      # the input file's base name (otter's `file` column)
    source: str                    # where it came from, relative to the PATH given
    digest: str                    # content + autograder digest: the resume key
    status: str                    # grading_status: "graded" or, in plain words, what went wrong
    questions: tuple[QuestionResult, ...] = ()
    student: StudentRef = field(default_factory=StudentRef)
    runtime_s: float = 0.0
    submitted_at: float = 0.0      # file modification time (seconds since the epoch)
    counts: bool = True            # False for an older file of a student who handed in again
    note: str = ""                 # e.g. "superseded by a newer file: ..."

    @property
    def points(self) -> float:
        return round(sum(q.points for q in self.questions), 6)

    @property
    def max_points(self) -> float:
        return round(sum(q.max_points for q in self.questions), 6)

    @property
    def percent(self) -> float:
        return 100.0 * self.points / self.max_points if self.max_points else 0.0

    @property
    def key(self) -> str:
        """A name unique within the batch, safe as a file name (results/<key>.json): the source
        made safe, plus a short hash of it when making it safe changed it (so 'lab 1' and
        'lab_1' stay apart)."""
        stem = self.source.replace("/", "__") or self.file
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in stem).lstrip(".") or "submission"
        if safe != stem:
            digest = hashlib.sha256(self.source.encode("utf-8", "surrogateescape")).hexdigest()[:8]
            safe = f"{safe}-{digest}"
        return safe

    def question(self, name: str) -> QuestionResult | None:
        return next((q for q in self.questions if q.name == name), None)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "SubmissionResult":
        questions = tuple(
            QuestionResult(**{**q, "tests": tuple(TestCaseResult(**t) for t in q["tests"])})
            for q in d["questions"]
        )
        return cls(**{**d, "questions": questions, "student": StudentRef(**d["student"])})

    def with_counts(self, counts: bool, note: str = "") -> "SubmissionResult":
        return replace(self, counts=counts, note=note)


def write_atomic(path: Path, text: str) -> None:
    """Write text so that a reader (or a crash) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)      # mkstemp makes 0600; outputs are meant to be shared
        os.replace(tmp, path)   # atomic: a reader or a killed run never sees half a file
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def record_path(out: Path, digest: str) -> Path:
    return out / RECORDS_DIR / f"{digest}.json"


def save_record(out: Path, result: SubmissionResult) -> None:
    write_atomic(record_path(out, result.digest), result.to_json())


def load_record(out: Path, digest: str) -> SubmissionResult | None:
    path = record_path(out, digest)
    if not path.is_file():
        return None
    try:
        return SubmissionResult.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError):
        return None  # an unreadable record is re-graded


def load_batch(out: Path) -> list[SubmissionResult]:
    """Every submission result of a graded batch folder, in a stable order."""
    manifest = out / "batch.json"
    if manifest.is_file():
        digests = json.loads(manifest.read_text(encoding="utf-8"))["records"]
    else:
        digests = [p.stem for p in sorted((out / RECORDS_DIR).glob("*.json"))]
    results = []
    for entry in digests:
        digest = entry["digest"] if isinstance(entry, dict) else entry
        record = load_record(out, digest)
        if record is not None:
            if isinstance(entry, dict):
                record = replace(record, file=entry["file"], source=entry["source"],
                                 student=StudentRef(**entry["student"]),
                                 submitted_at=entry["submitted_at"],
                                 counts=entry["counts"], note=entry["note"])
            results.append(record)
    return results


def write_manifest(out: Path, results: list[SubmissionResult]) -> None:
    """OUT/batch.json: one entry per input file (identity), pointing at its record (outcome).
    Identical files share a record, so per-file fields live here."""
    entries = [
        {"digest": r.digest, "file": r.file, "source": r.source, "student": asdict(r.student),
         "submitted_at": r.submitted_at, "counts": r.counts, "note": r.note}
        for r in results
    ]
    write_atomic(out / "batch.json", json.dumps({"records": entries}, indent=1))


def save_batch(out: Path, results: list[SubmissionResult]) -> None:
    """Records plus manifest: what `load_batch` reads back."""
    for r in results:
        save_record(out, r)
    write_manifest(out, results)
