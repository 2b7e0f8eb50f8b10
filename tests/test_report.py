"""The class report (OUT/report/index.html + PNG plots) and the per-student feedback pages.

A realistic batch of 32 files is built from result objects (no grading): full marks, partial
credit with known hints, timeouts, a memory limit, a crash, invalid files and a superseded
resubmission. The rendered HTML is parsed with BeautifulSoup (a dependency of nbconvert).
"""

from __future__ import annotations

import hashlib
import statistics
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from click.testing import CliRunner

from autograder.cli import _Group
from autograder.errors import UserError
from autograder.report import batch_stats, write_feedback_pages, write_report
from autograder.report.cli import report_cmd
from autograder.results import QuestionResult, StudentRef, SubmissionResult
from autograder.results import TestCaseResult as CaseResult   # not collected as a test class
from autograder.results import save_batch

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# The lab: q1 (2 pts), q2 (2 pts), q3 (4 pts) = 8 points. (test name, points, hidden)
LAYOUT = {
    "q1": [("q1_value", 1.0, False), ("q1_hidden_grad", 1.0, True)],
    "q2": [("q2_shape", 1.0, False), ("q2_hidden_grad", 1.0, True)],
    "q3": [("q3_value", 2.0, False), ("q3_hidden_big", 1.5, True), ("q3_hidden_small", 0.5, True)],
}
HIDDEN_NAMES = [n for tests in LAYOUT.values() for n, _, hidden in tests if hidden]

HINT_BY_HAND = "`x.grad` was set or changed by hand, not by autograd. Remove that line and call backward()."
HINT_SHAPE = "`y` has shape (3,), but this exercise needs shape (3, 1)."
HINT_SIGN = "`w.grad` has the wrong sign. Check the signs in `loss`."
HINT_SCRIPT = "Your function printed <script>alert('x')</script> & then stopped."
INVALID = "invalid notebook: the file is not valid JSON (truncated or damaged?)"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def make_questions(hints: dict[str, str] | None = None, status: dict[str, str] | None = None):
    """Questions of the lab; `hints` maps failing test names to their hint, `status` marks a
    question not graded normally (all its tests fail, as the judge records them)."""
    hints, status = hints or {}, status or {}
    out = []
    for q, tests in LAYOUT.items():
        cases = []
        for name, points, hidden in tests:
            if q in status:
                passed, hint = False, f"This question could not be graded: {status[q]}."
            else:
                passed, hint = name not in hints, hints.get(name, "")
            cases.append(CaseResult(name=name, hidden=hidden, points=points if passed else 0.0,
                                    max_points=points, passed=passed, hint=hint))
        out.append(QuestionResult(name=q, points=sum(c.points for c in cases),
                                  max_points=sum(c.max_points for c in cases),
                                  status=status.get(q, "graded"), tests=tuple(cases)))
    return tuple(out)


def submission(i: int, *, hints=None, status=None, invalid: str = "", runtime: float = 2.0,
               counts: bool = True, note: str = "", key: str | None = None, attempt: int = 0):
    key = key or str(1000 + i)
    suffix = f"-{attempt}" if attempt else ""
    file = f"student{i}_{key}_{50000 + i}_lab{suffix}.ipynb"
    student = StudentRef(lms="canvas", key=key, login=f"student{i}", submission_id=str(50000 + i),
                         attempt=attempt, original_name=f"lab{suffix}.ipynb")
    return SubmissionResult(
        file=file, source=f"submissions/{file}", digest=_digest(file),
        status=invalid or "graded",
        questions=() if invalid else make_questions(hints, status),
        student=student, runtime_s=0.0 if invalid else runtime, counts=counts, note=note)


def build_batch() -> tuple[list[SubmissionResult], dict]:
    """32 files: 31 counting submissions plus one superseded older file."""
    results, expect = [], {"abnormal": set(), "hints": {"q1": {}, "q2": {}, "q3": {}}}

    def hint(q, text, n=1):
        expect["hints"][q][text] = expect["hints"][q].get(text, 0) + n

    for i in range(12):                                        # full marks
        results.append(submission(i, runtime=1.5 + 0.1 * i))
    for i in range(12, 18):                                    # q1 public test: grad set by hand
        results.append(submission(i, hints={"q1_value": HINT_BY_HAND}, runtime=2.5))
        hint("q1", HINT_BY_HAND)
    for i in range(12, 16):                                    # ... and q2 (public + hidden, same hint)
        results[i] = submission(i, hints={"q1_value": HINT_BY_HAND, "q2_shape": HINT_SHAPE,
                                          "q2_hidden_grad": HINT_SHAPE}, runtime=2.5)
        hint("q2", HINT_SHAPE)                                 # counted once per submission
    for i in range(18, 22):                                    # q3 hidden test: wrong sign
        results.append(submission(i, hints={"q3_hidden_big": HINT_SIGN}, runtime=3.0))
        hint("q3", HINT_SIGN)
    results.append(submission(22, hints={"q2_shape": HINT_SCRIPT}, runtime=2.2))
    hint("q2", HINT_SCRIPT)
    for i in range(23, 26):                                    # timed out in q3
        r = submission(i, status={"q3": "timed out"}, runtime=60.0)
        results.append(r)
        expect["abnormal"].add(r.key)
    r = submission(26, status={"q2": "memory limit"}, runtime=8.0)
    results.append(r)
    expect["abnormal"].add(r.key)
    r = submission(27, hints={"q2_shape": HINT_SHAPE}, status={"q1": "crashed (SIGSEGV)"}, runtime=4.0)
    results.append(r)
    expect["abnormal"].add(r.key)
    hint("q2", HINT_SHAPE)
    for i in (28, 29):                                         # files that could not be graded
        r = submission(i, invalid=INVALID)
        results.append(r)
        expect["abnormal"].add(r.key)
    # student 30 handed in twice: the older file timed out, the newer one is perfect
    newer = submission(30, runtime=1.9, attempt=1, key="1030",
                       note="newest of several files from this student: this one counts")
    older = submission(31, status={"q3": "timed out"}, runtime=60.0, key="1030", counts=False,
                       note=f"superseded by a newer file: {newer.source}")
    results += [older, newer]
    expect["superseded"] = {older.key}
    expect["counting"] = [r for r in results if r.counts]
    return results, expect


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    out = tmp_path_factory.mktemp("batch")
    results, expect = build_batch()
    save_batch(out, results)
    index = write_report(out)
    return out, index, results, expect


def soup(path: Path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def test_batch_is_realistic():
    results, expect = build_batch()
    assert len(results) == 32 and len(expect["counting"]) == 31
    assert len({r.key for r in results}) == len(results)


def test_index_images_are_valid_pngs(batch):
    out, index, _, _ = batch
    assert index == out / "report" / "index.html" and index.is_file()
    imgs = soup(index).find_all("img")
    assert len(imgs) == 4
    for img in imgs:
        assert img.get("alt", "").strip(), img
        path = (index.parent / img["src"]).resolve()
        assert path.is_file() and path.parent == index.parent.resolve()
        data = path.read_bytes()
        assert data[:8] == PNG_MAGIC, path
        assert len(data) > 8000, (path, len(data))
        assert int(img["width"]) >= 600 and int(img["height"]) >= 200


def test_links_resolve_and_page_is_offline(batch):
    out, index, results, _ = batch
    page = soup(index)
    hrefs = [a["href"] for a in page.find_all("a") if not a["href"].startswith("#")]
    assert hrefs
    for href in hrefs:
        assert href.startswith("../feedback/") and href.endswith(".html"), href
        assert (index.parent / href).resolve().is_file(), href
    assert {Path(h).stem for h in hrefs} == {r.key for r in results}
    for tag in page.find_all(["img", "script", "link", "a"]):
        for attr in ("src", "href"):
            assert "//" not in tag.get(attr, ""), tag     # nothing remote: works offline
    assert not page.find_all("link") and not page.find_all("script", src=True)


def test_not_graded_table_lists_exactly_the_abnormal_submissions(batch):
    _, index, results, expect = batch
    page = soup(index)
    rows = page.find(id="not-graded-table").tbody.find_all("tr")
    assert {row["data-key"] for row in rows} == expect["abnormal"]
    text = {row["data-key"]: row.get_text(" ", strip=True) for row in rows}
    by_key = {r.key: r for r in results}
    for key, row_text in text.items():
        r = by_key[key]
        expected = {23: "timed out in q3", 24: "timed out in q3", 25: "timed out in q3",
                    26: "memory limit in q2", 27: "crashed (SIGSEGV) in q1"}
        i = int(r.student.login.removeprefix("student"))
        assert (expected.get(i) or INVALID) in row_text
    superseded = page.find(id="superseded-table").tbody.find_all("tr")
    assert {row["data-key"] for row in superseded} == expect["superseded"]
    assert "superseded by a newer file" in superseded[0].get_text()


def test_summary_counts_only_counting_submissions(batch):
    _, index, _, expect = batch
    stats = batch_stats(batch[2])
    counting = expect["counting"]
    scores = [r.points for r in counting if r.questions]
    assert stats.counting == 31 and stats.files == 32 and stats.superseded == 1
    assert stats.normal == 31 - len(expect["abnormal"]) == 24
    assert stats.unscored == 2 and stats.max_points == 8
    assert stats.mean == pytest.approx(statistics.mean(scores))
    assert stats.median == pytest.approx(statistics.median(scores))
    cards = {c.find(class_="l").get_text(strip=True): c.find(class_="v").get_text(strip=True)
             for c in soup(index).find_all(class_="card")}
    assert cards["submissions"] == "31"
    assert cards["graded normally"] == "24"
    assert cards["not graded normally"] == "7"
    assert cards["max points"] == "8"
    assert cards["median score"] == f"{statistics.median(scores):g}"
    # q3 outcomes: 3 timeouts (the superseded timeout is not counted), 4 lost the hidden test
    assert stats.question_outcomes["q3"] == (29 - 3 - 4, 4, 0, 3)


def test_hint_tables_count_each_submission_once(batch):
    _, index, _, expect = batch
    tables = {t["data-question"]: t for t in soup(index).find_all("table", class_="hints")}
    assert set(tables) == {"q1", "q2", "q3"}
    for q, table in tables.items():
        got = {}
        for row in table.tbody.find_all("tr"):
            hint_cell, count_cell = row.find_all("td")
            got[hint_cell.get_text()] = int(count_cell.get_text())
        want = {h.replace("`", ""): n for h, n in expect["hints"][q].items()}
        assert got == want, q
    # hints of questions not graded normally (timeouts) are not "mistakes"
    assert "This question could not be graded" not in index.read_text()
    assert tables["q2"].find("code").get_text() == "y"      # `code` spans rendered as <code>
    q2_counts = [int(r.find_all("td")[1].get_text()) for r in tables["q2"].tbody.find_all("tr")]
    assert q2_counts == sorted(q2_counts, reverse=True) == [5, 1]


def test_nothing_hidden_leaks(batch):
    out, index, results, _ = batch
    pages = sorted((out / "feedback").glob("*.html"))
    assert len(pages) == len(results)
    for path in [index, *pages]:
        text = path.read_text(encoding="utf-8")
        assert "def test_" not in text and "import torch" not in text, path
        for name in HIDDEN_NAMES:            # hidden tests are never named
            assert name not in text, (path, name)
    # the hidden test's hint does reach its student
    r19 = next(r for r in results if r.student.login == "student19")
    page = (out / "feedback" / f"{r19.key}.html").read_text(encoding="utf-8")
    assert "has the wrong sign" in page and "hidden test" in page


def test_feedback_page_shows_questions_points_and_escapes_hints(batch):
    out, index, results, _ = batch
    r22 = next(r for r in results if r.student.login == "student22")
    path = out / "feedback" / f"{r22.key}.html"
    text = path.read_text(encoding="utf-8")
    assert "<script>" not in text and "&lt;script&gt;alert" in text
    assert "<script>" not in index.read_text(encoding="utf-8").split("</head>", 1)[1]
    page = soup(path)
    assert "Score: 7 / 8" in page.get_text()
    rows = page.find("table", class_="questions").tbody.find_all("tr")
    assert [r.find_all("td")[1].get_text(strip=True) for r in rows] == ["2 / 2", "1 / 2", "4 / 4"]
    assert "1 of 2 tests failed" in rows[1].get_text()
    assert "Your function printed <script>alert('x')</script> & then stopped." in page.get_text()


def test_feedback_page_for_ungradable_and_timed_out_files(batch):
    out, _, results, _ = batch
    r28 = next(r for r in results if r.student.login == "student28")
    text = soup(out / "feedback" / f"{r28.key}.html").get_text(" ", strip=True)
    assert "We could not grade this file" in text and INVALID in text
    assert "ask course staff" in text
    r23 = next(r for r in results if r.student.login == "student23")
    text = soup(out / "feedback" / f"{r23.key}.html").get_text(" ", strip=True)
    assert "not graded normally: timed out" in text and "time limit" in text


def test_write_feedback_pages_returns_paths(tmp_path):
    results, _ = build_batch()
    pages = write_feedback_pages(tmp_path, results[:3])
    assert set(pages) == {r.key for r in results[:3]}
    assert all(p.is_file() and p.parent == tmp_path / "feedback" for p in pages.values())


def test_batch_of_only_invalid_files_gets_placeholders(tmp_path):
    results = [submission(i, invalid=INVALID) for i in range(3)]
    save_batch(tmp_path, results)
    index = write_report(tmp_path)
    page = soup(index)
    for img in page.find_all("img"):
        data = (index.parent / img["src"]).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 3000
    assert len(page.find(id="not-graded-table").tbody.find_all("tr")) == 3


def test_cli_prints_index_and_rejects_a_folder_without_records(batch, tmp_path):
    out, index, _, _ = batch
    group = _Group(name="autograder", commands=[report_cmd])
    ok = CliRunner().invoke(group, ["report", str(out)])
    assert ok.exit_code == 0, ok.output
    assert ok.output.strip() == str(index)
    bad = CliRunner().invoke(group, ["report", str(tmp_path)])
    assert bad.exit_code == 2
    assert "not a graded batch folder" in bad.output
    (tmp_path / "records").mkdir()
    with pytest.raises(UserError, match="no grading records"):
        write_report(tmp_path)
