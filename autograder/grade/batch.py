"""`autograder grade`: a whole batch, every submission isolated, nothing lost.

Flow: discover inputs -> read and validate each (invalid files become rows at once) ->
warm sandboxed workers run the rest -> the judge turns observations into results -> each
result is written atomically as it finishes -> final_grades.csv and the manifest at the end.
A record per (file content, autograder) makes an interrupted batch resume where it stopped.
"""

from __future__ import annotations

import os
import sys
import threading
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from ..autograd_checks import cell_fingerprint
from ..errors import UserError
from ..results import GRADED, Status, SubmissionResult, load_record, save_record, write_manifest
from .autograder_zip import Autograder, load_autograder, source_digest
from .isolate import Limits
from .judge import Judge, build_job
from .protocol import Job
from .outputs import load_ag_config, write_feedback, write_final_grades, write_results_json
from .sandbox import RunAnswer, WorkerPool
from .screen import screen_cells
from .submission import InputFile, InvalidSubmission, content_digest, discover, read_notebook

# Runs of one submission at most: the first, then again with the calls of the student's code
# the tests made. Calls a test makes before it looks at their results come in one round (until
# then a call returns zeros); a test that asserts on each call before the next needs a round per call.
CALL_ROUNDS = 6

# otter assign tags the cells students answer in (and, in its solution notebook, the solutions)


@dataclass(frozen=True)
class BatchSummary:
    out: Path
    results: list[SubmissionResult]
    graded_now: int
    reused: int
    seconds: float

    @property
    def final_grades(self) -> Path:
        return self.out / "final_grades.csv"


class _Progress:
    """A progress bar on a terminal, plain lines otherwise."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.done, self.start = total, 0, time.monotonic()
        self.bar = None
        self.enabled = enabled
        self.last_line = 0.0
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=total, unit="sub", desc="grading", dynamic_ncols=True)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.monotonic()
        if self.enabled and (now - self.last_line >= 2.0 or self.done == self.total):
            self.last_line = now
            elapsed = now - self.start
            rate = self.done / elapsed if elapsed > 0 else 0.0
            eta = (self.total - self.done) / rate if rate > 0 else 0.0
            print(f"graded {self.done}/{self.total} ({rate:.1f}/s, ETA {eta:.0f}s)", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _why(exc: Exception, what: str) -> str:
    """A failure to read or parse a file, in the words of its grading_status."""
    if isinstance(exc, InvalidSubmission):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return f"{what} ({exc.strerror})"
    return f"{what} ({type(exc).__name__})"


def _invalid(item: InputFile, digest: str, reason: str, status: Status = Status.INVALID) -> SubmissionResult:
    return SubmissionResult(file=item.file, source=item.source, digest=digest, status=status, detail=reason,
                            student=item.student, submitted_at=item.submitted_at)


def _identity(result: SubmissionResult, item: InputFile) -> SubmissionResult:
    """A record is keyed by content; the file it belongs to in this batch is the item's."""
    return replace(result, file=item.file, source=item.source, student=item.student,
                   submitted_at=item.submitted_at, counts=True, note="")


def mark_resubmissions(results: list[SubmissionResult]) -> list[SubmissionResult]:
    """Two files of one LMS student: both graded, the newest counts, the older says so."""
    newest: dict[tuple[str, str], SubmissionResult] = {}
    files = Counter((r.student.lms, r.student.key) for r in results if r.student.key)
    for r in results:
        if not r.student.key:
            continue
        k = (r.student.lms, r.student.key)
        order = (r.submitted_at, r.student.attempt, r.source)
        if k not in newest or order > (newest[k].submitted_at, newest[k].student.attempt, newest[k].source):
            newest[k] = r
    marked = []
    for r in results:
        k = (r.student.lms, r.student.key)
        if r.student.key and newest[k] is not r:
            marked.append(r.with_counts(False, f"superseded by a newer file: {newest[k].source}"))
        elif r.student.key and files[k] > 1:
            marked.append(r.with_counts(True, "newest of several files from this student: this one counts"))
        else:
            marked.append(r)
    return marked


def grade_batch(autograder_zip: Path, paths: list[Path], out: Path, *, ext: str = "ipynb",
                containers: int | None = None, limits: Limits = Limits(), sandbox: bool = True,
                summaries: bool = False, progress: bool = True) -> BatchSummary:
    started = time.monotonic()
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to the output folder {out}: {exc.strerror}") from None
    if ext not in ("ipynb", "zip"):
        raise UserError("--ext must be ipynb or zip")
    items = discover([Path(p) for p in paths], ext)
    if not items:
        raise UserError(f"no submissions (*.{ext}) found in: {', '.join(str(p) for p in paths)}")
    if not sandbox:
        warnings.warn("grading WITHOUT a sandbox: submissions can read the hidden tests, the "
                      "network and each other's files; use this only for trusted code", stacklevel=2)
        print("autograder: warning: --no-sandbox: submissions run without isolation", file=sys.stderr)

    autograder = load_autograder(Path(autograder_zip))
    try:
        return _grade(autograder, items, out, containers, limits, sandbox, summaries, progress, started)
    finally:
        autograder.cleanup()


def grade_solution(autograder_zip: Path, notebook: Path) -> SubmissionResult:
    """The secure grader's verdict on course staff's own solution notebook (for the build's
    gate). Staff code is trusted, so it runs without the sandbox; the judge is the same."""
    autograder = load_autograder(Path(autograder_zip))
    try:
        with tempfile.TemporaryDirectory(prefix="autograder-gate-") as out:
            items = discover([Path(notebook)], "ipynb")
            summary = _grade(autograder, items, Path(out), 1, Limits(), False, False, False, time.monotonic())
            return summary.results[0]
    finally:
        autograder.cleanup()


def _grade(autograder, items, out, containers, limits, sandbox, summaries, progress, started) -> BatchSummary:
    size = max(1, min(containers or os.cpu_count() or 1, len(items)))
    pool = WorkerPool(size, autograder.public_dir, sandbox, limits)   # warms up meanwhile
    try:
        return _grade_with(pool, autograder, items, out, limits, summaries, progress, started)
    finally:
        pool.close()


def _grade_with(pool, autograder, items, out, limits, summaries, progress, started) -> BatchSummary:
    ag_config = load_ag_config(autograder)
    judge = Judge(autograder)
    results: list[SubmissionResult | None] = [None] * len(items)
    waiting: dict[str, list[int]] = {}   # digest -> indexes of the items with that content
    jobs: list[tuple[str, Job]] = []
    findings: dict[str, tuple] = {}
    reused = 0
    meter = _Progress(len(items), progress)

    def finish(index: int, result: SubmissionResult, fresh: bool) -> None:
        result = _identity(result, items[index])
        results[index] = result
        if fresh and result.status is not Status.GRADER_ERROR:   # grader errors are retried
            save_record(out, result)
        write_results_json(out, result, autograder, ag_config)
        meter.update()

    for index, item in enumerate(items):
        try:
            data = item.read()
        except Exception as exc:   # whatever a broken file does, it is this file's row only
            finish(index, _invalid(item, f"unreadable-{index}", _why(exc, "could not read the file")), fresh=False)
            continue
        digest = content_digest(data, autograder.digest)
        cached = load_record(out, digest)
        if cached is not None:
            reused += 1
            finish(index, cached, fresh=False)
            continue
        if digest in waiting:
            waiting[digest].append(index)
            continue
        waiting[digest] = [index]
        try:
            notebook = read_notebook(data)
            cells, answers = lab_cells_replaced([cell.source for cell in notebook.code_cells], autograder)
        except Exception as exc:
            reason = _why(exc, "invalid notebook")
            for i in waiting.pop(digest):
                finish(i, _invalid(items[i], digest, reason), fresh=True)
            continue
        del data
        if not cells:
            for i in waiting.pop(digest):
                finish(i, _invalid(items[i], digest, "no code cells (empty notebook)"), fresh=True)
            continue
        screened = screen_cells(cells, autograder.allowlist)
        findings[digest] = screened.findings
        jobs.append((digest, build_job(digest, cells, screened, autograder, limits, digest + autograder.digest,
                                       answers)))

    graded_now = 0
    if jobs:
        pool.start()
        probes = {digest: [list(job.probe[0]), list(job.probe[1])] for digest, job in jobs}

        def feed() -> None:
            for _, job in jobs:
                pool.submit(job)

        threading.Thread(target=feed, daemon=True).start()
        by_digest = dict(jobs)
        rounds = dict.fromkeys(by_digest, 1)
        outstanding = len(jobs)
        while outstanding:
            answer = pool.answers.get()
            outstanding -= 1
            digest = answer.id
            item = items[waiting[digest][0]]
            job = by_digest[digest]
            final = rounds[digest] >= CALL_ROUNDS
            judge.missing = []
            try:
                result = _judged(judge, answer, probes[digest], item, digest, findings[digest], job.calls, final)
            except Exception as exc:   # a bug of ours on this submission: its row says so, the batch goes on
                result = _invalid(item, digest, f"the judge failed ({type(exc).__name__}: {exc})"[:300],
                                  Status.GRADER_ERROR)
            if judge.missing and not final:
                # the tests called the student's code: run the submission again, answering those calls
                by_digest[digest] = replace(job, calls=job.calls + tuple(judge.missing))
                rounds[digest] += 1
                outstanding += 1
                pool.submit(by_digest[digest])
                continue
            for i in waiting.pop(digest):
                finish(i, result, fresh=True)
            graded_now += 1
    meter.close()

    final = mark_resubmissions([r for r in results if r is not None])
    write_manifest(out, final)
    write_final_grades(out, final, autograder)
    if summaries:
        for r in final:
            write_feedback(out, r)
    return BatchSummary(out=out, results=final, graded_now=graded_now, reused=reused,
                        seconds=time.monotonic() - started)


def lab_cells_replaced(sources: list[str], autograder: Autograder) -> tuple[list[str], list[bool]]:
    """The cells to run (the notebook's self-contained first cell replaced by the master's own
    cell) and which of them are answer cells: any cell that is not one of the lab's own, by
    content, not metadata."""
    cells, answers = [], []
    for source in sources:
        original = autograder.setup_sources.get(source_digest(source)) if autograder.setup_sources else None
        if original is None:
            fp = cell_fingerprint(source)
            original = autograder.setup_cells.get(fp)
        if original is not None:
            cells.append(original)
            answers.append(False)
            continue
        cells.append(source)
        answers.append(autograder.provided_cells is not None and fp not in autograder.provided_cells)
    return cells, answers


def _judged(judge: Judge, answer: RunAnswer, probe, item: InputFile, digest: str, findings, calls=(),
            final: bool = True) -> SubmissionResult:
    if answer.error:
        return _invalid(item, digest, answer.error, Status.GRADER_ERROR)
    if answer.setup_error:   # our failure, not the student's: not recorded, so the next run retries it
        return _invalid(item, digest, f"sandbox setup failed ({answer.setup_error})", Status.GRADER_ERROR)
    status = GRADED
    detail = ""
    if answer.tampered:   # forged records may hide among real ones: trust none of them
        status, detail = Status.TAMPERING, "the submission wrote to the grader's channel"
        answer = replace(answer, observations={},
                         status={q: (Status.TAMPERING, "") for q in answer.status})
    questions = judge.judge(answer, probe, calls, final)
    return SubmissionResult(file=item.file, source=item.source, digest=digest, status=status, detail=detail,
                            questions=questions, runtime_s=float(answer.seconds), findings=tuple(findings))
