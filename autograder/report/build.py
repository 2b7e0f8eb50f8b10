"""OUT/report/index.html (class statistics with PNG plots) and OUT/feedback/<key>.html (one page
per submission, what its student may see), both derived from the batch records.

Only what the records hold is shown: scores, pass/fail, test names of public tests and the
checks' hints. Hidden tests appear as "hidden test" with pass/fail and hint only; test code and
reference solutions never reach the records, so they cannot reach these pages.
"""

from __future__ import annotations

import functools
import os
import re
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import jinja2
from markupsafe import Markup, escape

from ..errors import UserError
from ..escape import printable, url_part
from ..results import GRADED, RECORDS_DIR, Status, SubmissionResult, load_batch
from . import plots
from .templates import CHECK_SCRIPT, FEEDBACK, INDEX, STYLE

REPORT_DIR = "report"
FEEDBACK_DIR = "feedback"

def graded_normally(r: SubmissionResult) -> bool:
    return r.status == GRADED and bool(r.questions) and all(q.graded_normally for q in r.questions)


def status_text(x) -> str:
    """A result's or question's status in words, with its detail when the record has one."""
    return str(getattr(x, "status_text", None) or x.status)


def problem(r: SubmissionResult) -> str:
    """What happened, in plain words: "graded", "timed out in q3", "invalid notebook: ..."."""
    if not r.questions:
        return status_text(r)
    issues = [f"{status_text(q)} in {q.name}" for q in r.questions if not q.graded_normally]
    if r.status != GRADED:
        issues.insert(0, status_text(r))
    return "; ".join(issues) if issues else "graded"


def who(r: SubmissionResult) -> str:
    s = r.student
    name = s.name or s.login
    if name and s.key:
        return f"{name} ({s.key})"
    return name or s.key or "\u2014"


def explain(status: str) -> str:
    """What a status means for the student (one place: the Status enum)."""
    return Status.parse(status)[0].student


def _median(values: list[float]) -> float:
    return plots._median(values)


@dataclass
class BatchStats:
    """The numbers behind the report; only counting submissions (not superseded files)."""

    files: int                                  # every file of the batch
    counting: int                               # files that count (newest per student)
    superseded: int
    normal: int                                 # counting and graded normally
    abnormal: list[SubmissionResult]            # counting, not graded normally
    flagged: list[SubmissionResult]             # every file the source screen flagged
    superseded_results: list[SubmissionResult]
    scores: list[float]                         # points of counting files that have questions
    unscored: int                               # counting files with no score at all (invalid)
    mean: float
    median: float
    max_points: float
    question_names: list[str]
    # question -> (full marks, partial, no points, not graded normally)
    question_outcomes: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    # question -> [(hint, submissions with it)], most frequent first
    hints: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    # (question, test, error, submissions it happened in), for staff: tests that could not run
    test_errors: list[tuple[str, str, str, int]] = field(default_factory=list)


def batch_stats(results: list[SubmissionResult]) -> BatchStats:
    counting = [r for r in results if r.counts]
    scored = [r for r in counting if r.questions]
    scores = [r.points for r in scored]
    names: list[str] = []
    for r in results:
        for q in r.questions:
            if q.name not in names:
                names.append(q.name)
    outcomes, hints = {}, {}
    for name in names:
        full = partial = zero = abnormal = 0
        counter: Counter[str] = Counter()
        for r in scored:
            q = r.question(name)
            if q is None:
                continue
            if not q.graded_normally:
                abnormal += 1
                continue
            if q.points >= q.max_points:
                full += 1
            elif q.points > 0:
                partial += 1
            else:
                zero += 1
            # one count per submission and hint, however many of its tests gave that hint
            counter.update({t.hint.strip() for t in q.tests if not t.passed and t.hint.strip()})
        outcomes[name] = (full, partial, zero, abnormal)
        hints[name] = _most_frequent(counter)
    return BatchStats(
        files=len(results), counting=len(counting), superseded=len(results) - len(counting),
        normal=sum(1 for r in counting if graded_normally(r)),
        abnormal=[r for r in counting if not graded_normally(r)],
        flagged=[r for r in results if r.flagged],
        superseded_results=[r for r in results if not r.counts],
        scores=scores, unscored=len(counting) - len(scored),
        mean=sum(scores) / len(scores) if scores else 0.0, median=_median(scores),
        max_points=max((r.max_points for r in scored), default=0.0),
        question_names=names, question_outcomes=outcomes, hints=hints,
        test_errors=_test_errors(results),
    )


def _test_errors(results: list[SubmissionResult]) -> list[tuple[str, str, str, int]]:
    counter: Counter[tuple[str, str, str]] = Counter()
    for r in results:
        counter.update(set(r.test_errors))
    return [(*key, n) for key, n in _most_frequent(counter)]


def _most_frequent(counter: Counter) -> list:
    """(item, count) pairs, most frequent first, ties in item order."""
    return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))


def _pts(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{int(value)}"


_CODE = re.compile(r"`([^`\n]+)`")


def _hint_html(text: str) -> Markup:
    """A hint, HTML-escaped, with its `code` spans shown as <code>."""
    return Markup(_CODE.sub(r"<code>\1</code>", str(escape(text))))


@functools.lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.DictLoader({"index.html": INDEX, "feedback.html": FEEDBACK}),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=False, lstrip_blocks=False)
    env.filters["pts"] = _pts
    env.filters["hint"] = _hint_html
    env.filters["url"] = url_part      # a name inside href/src: percent-encoded (then HTML-escaped)
    env.globals.update(who=who, problem=problem, explain=explain, status=status_text)
    return env


def _write_bytes(path: Path, data: bytes) -> None:
    """Atomically, and readable by others (mkstemp's 0600 would keep a web server out)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _write_text(path: Path, text: str) -> None:
    _write_bytes(path, printable(text).encode("utf-8"))   # a lone surrogate would not encode


def feedback_html(result: SubmissionResult) -> str:
    name = result.student.original_name or result.file
    return _env().get_template("feedback.html").render(r=result, name=name, style=Markup(STYLE))


def write_feedback_pages(out: Path, results: list[SubmissionResult]) -> dict[str, Path]:
    """OUT/feedback/<key>.html for every result; returns {result.key: path}."""
    out = Path(out)
    pages = {}
    for r in results:
        path = out / FEEDBACK_DIR / f"{r.key}.html"
        _write_text(path, feedback_html(r))
        pages[r.key] = path
    return pages


def _png_size(data: bytes) -> tuple[int, int]:
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def write_report(out: Path) -> Path:
    """Write OUT/report/index.html with its PNG plots and OUT/feedback/*.html; return index.html."""
    out = Path(out)
    if not (out / RECORDS_DIR).is_dir() and not (out / "batch.json").is_file():
        raise UserError(f"{out} is not a graded batch folder (it has no {RECORDS_DIR}/): "
                        f"run `autograder grade -a AUTOGRADER_ZIP -o {out} PATHS` first")
    results = load_batch(out)
    if not results:
        raise UserError(f"{out} has no grading records: run `autograder grade -a AUTOGRADER_ZIP "
                        f"-o {out} PATHS` first")
    stats = batch_stats(results)
    write_feedback_pages(out, results)

    report = out / REPORT_DIR
    counting = [r for r in results if r.counts]
    figures = [
        ("scores", "score_histogram.png",
         plots.score_histogram(stats.scores, stats.max_points),
         "Histogram of submission scores with mean and median",
         "Scores of the counting submissions that produced a score."),
        ("pass-rate", "pass_rate.png",
         plots.pass_rates([(q, *stats.question_outcomes[q]) for q in stats.question_names]),
         "Per-question bar chart: share of submissions with all tests passed, partial credit, "
         "no points, or not graded normally",
         "Per question: the share of graded submissions that passed every test (the pass rate), "
         "got partial credit, got no points, or were not graded normally."),
        ("hints", "top_hints.png",
         plots.top_hints(stats.hints),
         "Bar charts of the most frequent hints for each question",
         "The most frequent hints per question; full texts are in the tables below."),
        ("runtime", "runtime.png",
         plots.runtimes([(r.runtime_s, graded_normally(r)) for r in counting]),
         "Bar chart of grading runtime per submission, slowest first",
         "Wall-clock grading time of each counting submission, slowest first."),
    ]
    images = []
    for name, filename, data, alt, caption in figures:
        _write_bytes(report / filename, data)
        width, height = _png_size(data)
        images.append({"name": name, "file": filename, "alt": alt, "caption": caption,
                       "width": width, "height": height})

    def feedback_href(r: SubmissionResult) -> str:
        return f"../{FEEDBACK_DIR}/{url_part(r.key)}.html"

    html = _env().get_template("index.html").render(
        title=out.resolve().name, s=stats, images=images, all_results=results,
        feedback_href=feedback_href, style=Markup(STYLE), script=Markup(CHECK_SCRIPT),
        generated=datetime.now().strftime("%Y-%m-%d %H:%M"),
    )
    index = report / "index.html"
    _write_text(index, html)
    return index
