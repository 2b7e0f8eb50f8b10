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
from enum import StrEnum
from pathlib import Path

RECORDS_DIR = "records"
REVIEWS_FILE = "reviews.json"


class Status(StrEnum):
    """Every outcome a submission or one of its questions can have. Each member carries what a
    student is told and what staff are told; `text` adds the detail of one case."""

    def __new__(cls, value: str, student: str, staff: str):
        member = str.__new__(cls, value)
        member._value_ = value
        member.student = student
        member.staff = staff
        return member

    GRADED = ("graded", "", "")
    # the submission as a whole
    NEEDS_REVIEW = ("needs review",
                    "Your notebook uses code that the grader does not run without a person looking at "
                    "it first; course staff will review it and publish your score.",
                    "The source screen found constructs outside the allowlist (listed with cell and "
                    "line). The submission earns 0 until you accept it with `autograder review`.")
    INVALID = ("invalid submission",
               "Your file could not be graded. Check that you submitted the lab's notebook (.ipynb) "
               "or the zip made by its last cell.",
               "The file could not be read as a notebook; the detail says why.")
    GRADER_ERROR = ("grader error",
                    "Something went wrong on the grader's side; course staff will grade it again.",
                    "A failure of the grader, not of the submission: it is not recorded, so the next "
                    "run grades it again.")
    TAMPERING = ("tampering detected",
                 "Your notebook's code interfered with the grader, so its results could not be trusted.",
                 "The run sent data that does not follow the grader's protocol; nothing it sent was used.")
    # one question
    TIMED_OUT = ("timed out",
                 "This question's code ran longer than the time limit: look for a loop that never "
                 "ends or a computation far bigger than the exercise needs.",
                 "The question's cells exceeded --question-timeout (or the submission's --timeout).")
    MEMORY_LIMIT = ("memory limit",
                    "This question's code used more memory than allowed: look for very large tensors.",
                    "A MemoryError in the question's cells (--memory-mb).")
    KILLED = ("killed (CPU or memory limit)",
              "This question's code was stopped for using too much memory or CPU time.",
              "The run was killed by SIGKILL: the memory cgroup, the OOM killer or a CPU limit.")
    CPU_LIMIT = ("CPU time limit",
                 "This question's code used more CPU time than allowed.",
                 "RLIMIT_CPU was reached (SIGXCPU).")
    OUTPUT_LIMIT = ("output limit",
                    "This question's code produced far more data than the grader accepts.",
                    "The run sent more than --max-output-mb of observations.")
    EXITED = ("exited",
              "This question's code ended the Python process (sys.exit, os._exit or similar), so "
              "the grader could not look at the results.",
              "The run's process exited during the question's cells.")
    CRASHED = ("crashed",
               "The Python process running this question's code crashed.",
               "The run died from a signal (named in the detail).")
    STOPPED_REPORTING = ("stopped reporting (closed the grader's channel)",
                         "This question's code closed the grader's connection, so nothing could be checked.",
                         "The run closed its record channel and did not finish.")
    SANDBOX_FAILED = ("sandbox setup failed",
                      "Something went wrong on the grader's side; course staff will grade it again.",
                      "The per-run isolation could not be set up; no student code ran.")
    NOT_REACHED = ("not reached",
                   "The grader did not get to this question (an earlier problem used up the time).",
                   "The run ended before this question's check cell.")
    NOT_CHECKED = ("check cell missing",
                   "This question's check cell (grader.check) is missing from your notebook, so the "
                   "question could not be graded. Keep the check cells the notebook came with.",
                   "The submission has no grader.check cell for this question.")
    NOT_RUN = ("not run",
               "This question's code could not be run.",
               "The run could not start.")
    INVALID_OBSERVATION = ("invalid observation data",
                           "The grader could not read what this question's code produced.",
                           "An observation failed validation in the judge.")

    @classmethod
    def parse(cls, text: str) -> tuple["Status", str]:
        """A status as written in words ("crashed (SIGSEGV)", "grader error: ...", a reason an
        input is invalid) back to its member and detail."""
        if isinstance(text, Status):
            return text, ""
        try:
            return cls(text), ""
        except ValueError:
            pass
        if text.startswith("crashed (") and text.endswith(")"):
            return cls.CRASHED, text[len("crashed ("):-1]
        for member in cls:
            if member.value and text.startswith(member.value + ": "):
                return member, text[len(member.value) + 2:]
        return cls.INVALID, text

    def text(self, detail: str = "") -> str:
        """The status as one phrase: "crashed (SIGSEGV)", "needs review: ...", "graded"."""
        if not detail:
            return self.value
        if self is Status.INVALID:
            return detail
        if self in (Status.CRASHED,):
            return f"{self.value} ({detail})"
        return f"{self.value}: {detail}"


GRADED = Status.GRADED


def _normalise_status(result) -> None:
    """Results built from words (older records, tests) get their member and detail."""
    if not isinstance(result.status, Status):
        status, detail = Status.parse(result.status)
        object.__setattr__(result, "status", status)
        if detail and not result.detail:
            object.__setattr__(result, "detail", detail)


@dataclass(frozen=True)
class Finding:
    """A construct the source screen does not allow, where it is (code cells count from 1)."""

    cell: int
    line: int
    what: str

    def describe(self) -> str:
        return f"code cell {self.cell}, line {self.line}: {self.what}"


@dataclass(frozen=True)
class Review:
    """Staff's recorded decision on a flagged submission (OUT/reviews.json)."""

    decision: str          # "accept": its graded score counts | "reject": it stays at 0
    by: str
    at: str                # ISO time
    reason: str = ""


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
    error: str = ""                # for staff only: why the test itself could not run


@dataclass(frozen=True)
class QuestionResult:
    name: str
    points: float
    max_points: float
    status: Status = GRADED        # graded, or why not: timed out, memory limit, ...
    tests: tuple[TestCaseResult, ...] = ()
    detail: str = ""               # e.g. the signal of a crash

    def __post_init__(self) -> None:
        _normalise_status(self)

    @property
    def graded_normally(self) -> bool:
        return self.status == GRADED

    @property
    def status_text(self) -> str:
        return self.status.text(self.detail)


@dataclass(frozen=True)
class SubmissionResult:
    file: str                      # the input file's base name (otter's `file` column)
    source: str                    # where it came from, relative to the PATH given
    digest: str                    # content + autograder digest: the resume key
    status: Status                 # graded, or what went wrong (detail says more)
    questions: tuple[QuestionResult, ...] = ()
    student: StudentRef = field(default_factory=StudentRef)
    runtime_s: float = 0.0
    submitted_at: float = 0.0      # file modification time (seconds since the epoch)
    counts: bool = True            # False for an older file of a student who handed in again
    note: str = ""                 # e.g. "superseded by a newer file: ..."
    detail: str = ""               # what the status means in this case (e.g. why a file is invalid)
    findings: tuple[Finding, ...] = ()   # what the source screen flagged
    review: Review | None = None   # staff's decision on the findings

    def __post_init__(self) -> None:
        _normalise_status(self)

    @property
    def flagged(self) -> bool:
        return bool(self.findings)

    @property
    def held(self) -> bool:
        """Flagged and not accepted by staff: the score does not count (it is 0)."""
        return self.flagged and (self.review is None or self.review.decision != "accept")

    @property
    def graded_points(self) -> float:
        """What the questions earned, whether or not the score counts."""
        return round(sum(q.points for q in self.questions), 6)

    @property
    def points(self) -> float:
        return 0.0 if self.held else self.graded_points

    @property
    def status_text(self) -> str:
        if self.flagged:
            where = "; ".join(f.describe() for f in self.findings[:5])
            more = f" (and {len(self.findings) - 5} more)" if len(self.findings) > 5 else ""
            if self.review is not None:
                return f"reviewed ({self.review.decision}ed by {self.review.by}): {where}{more}"
            return Status.NEEDS_REVIEW.text(where + more)
        return Status(self.status).text(self.detail)

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

    @property
    def test_errors(self) -> tuple[tuple[str, str, str], ...]:
        """(question, test, error) for each test that raised instead of passing or failing: a
        bug in the test or a construct the secure grader does not support, for staff to see."""
        return tuple((q.name, t.name, t.error) for q in self.questions for t in q.tests if t.error)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "SubmissionResult":
        questions = tuple(
            QuestionResult(**{**q, "tests": tuple(TestCaseResult(**t) for t in q["tests"])})
            for q in d["questions"]
        )
        review = d.get("review")
        return cls(**{**d, "questions": questions,
                      "student": StudentRef(**d["student"]),
                      "findings": tuple(Finding(**f) for f in d.get("findings", ())),
                      "review": Review(**review) if review else None})

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
    reviews = load_reviews(out)
    return [replace(r, review=reviews[r.digest]) if r.flagged and r.digest in reviews else r
            for r in results]


def load_reviews(out: Path) -> dict[str, Review]:
    """Staff decisions on flagged submissions, by record digest."""
    path = Path(out) / REVIEWS_FILE
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return {digest: Review(**entry) for digest, entry in data.items()}


def save_review(out: Path, digest: str, review: Review) -> None:
    path = Path(out) / REVIEWS_FILE
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    data[digest] = asdict(review)
    write_atomic(path, json.dumps(data, indent=1, sort_keys=True))


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
