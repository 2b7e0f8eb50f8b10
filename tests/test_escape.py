"""Student-controlled text (file names, names parsed from them, hints, statuses, notes) escaped
for every place it is written: HTML (report and feedback pages), matplotlib text (the report's
plots), Markdown (feedback/*.md) and CSV (LMS exports, unmatched.csv, final_grades.csv)."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import html
from pathlib import Path
from urllib.parse import unquote

import matplotlib
import pytest
from bs4 import BeautifulSoup
from click.testing import CliRunner
from markdown_it import MarkdownIt

from autograder.cli import _Group
from autograder.escape import md_hint, md_text, printable, safe_cell, safe_row
from autograder.export import export_canvas, export_long, export_moodle
from autograder.grade.outputs import feedback_markdown
from autograder.report import plots
from autograder.report.cli import report_cmd
from autograder.results import QuestionResult, StudentRef, SubmissionResult
from autograder.results import TestCaseResult as CaseResult   # not collected as a test class
from autograder.results import save_batch

ROOT = Path(__file__).resolve().parent.parent
LMS = Path(__file__).parent / "fixtures" / "lms"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

MATH = [r"$\foo{$", "$$", r"\frac{", r"a $x^{$ b", "$", r"\\"]
TAGS = ["<script>alert(1)</script>", '"><img src=x onerror=1>', "<b onmouseover=alert(1)>x</b>"]
FORMULAS = ["=1+1", "+1+1", "-1+cmd", "@SUM(A1)", "\t=1", "\r=1",
            "=HYPERLINK(\"http://evil.example\",\"x\")", "=cmd|' /C calc'!A0"]
MARKDOWN = ["[click](http://evil.example)", "![img](http://evil.example/x.png)", "**bold** _em_",
            "<http://evil.example>", "http://evil.example", "www.evil.example", "a@evil.example",
            "# heading", "`code` break``out", "&lt;script&gt;", "<!-- c -->", "| a | b |"]
HOSTILE = MATH + TAGS + FORMULAS + MARKDOWN


# Free text the student influences lives in the status itself in older records and in `detail`
# (next to a fixed Status) in newer ones; build both shapes from the same text.
_HAS_DETAIL = "detail" in {f.name for f in dataclasses.fields(SubmissionResult)}


def invalid(text: str) -> dict:
    """SubmissionResult fields of a file that could not be read, the reason quoting `text`."""
    if _HAS_DETAIL:
        from autograder.results import Status
        return {"status": Status.INVALID, "detail": text}
    return {"status": text}


def crashed(text: str) -> dict:
    """QuestionResult fields of a question whose process crashed, the detail being `text`."""
    if _HAS_DETAIL:
        from autograder.results import Status
        return {"status": Status.CRASHED, "detail": text}
    return {"status": f"crashed ({text})"}


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def case(name, points, passed, hidden=False, hint=""):
    return CaseResult(name=name, hidden=hidden, points=points if passed else 0.0,
                      max_points=points, passed=passed, hint="" if passed else hint)


def hostile_result(i: int, text: str, *, lms: str = "canvas", key: str | None = None,
                   readable: bool = True, counts: bool = True, timed_out: bool = False,
                   folder: str = "submissions") -> SubmissionResult:
    """A submission whose file name, student name, login, hints, statuses and note all hold
    `text` (what a student's file name or code can put there)."""
    file = f"{text}_{i}.ipynb"
    hints = (f"class `{text}` is wrong: {text}", f"{text} (hidden)")
    q1 = QuestionResult("q1", 1.0, 2.0, tests=(case("q1_value", 1.0, True),
                                               case("q1_hidden", 1.0, False, True, hints[1])))
    q2 = QuestionResult("q2", 0.0, 2.0, tests=(case("q2_shape", 1.0, False, hint=hints[0]),
                                               case("q2_grad", 1.0, False, hint=text)))
    q3 = (QuestionResult("q3", 0.0, 1.0, **crashed(text),
                         tests=(case("q3_value", 1.0, False, hint=text),)) if timed_out else
          QuestionResult("q3", 1.0, 1.0, tests=(case("q3_value", 1.0, True),)))
    student = StudentRef(lms=lms, key=key or str(2000 + i), login=text, name=text,
                         submission_id=str(70000 + i), original_name=file)
    return SubmissionResult(
        file=file, source=f"{folder}/{text}/{file}" if folder else file, digest=_digest(f"{i}{text}"),
        **({"status": "graded"} if readable else invalid(f"invalid notebook: {text}")),
        questions=(q1, q2, q3) if readable else (), student=student,
        runtime_s=1.0 + i / 10, counts=counts, note=f"note {text}" if not counts else text)


def hostile_batch() -> list[SubmissionResult]:
    results = []
    for i, text in enumerate(HOSTILE):
        results.append(hostile_result(i, text, timed_out=i % 3 == 0, readable=bool(i % 5)))
    # an older file of the first student: superseded, with a hostile note
    first = results[1]
    results.append(SubmissionResult(
        file=f"old {first.file}", source=f"submissions/old {first.file}", digest=_digest("old"),
        status="graded", questions=first.questions, student=first.student, counts=False,
        note=f"superseded by a newer file: {first.source}"))
    return results


def soup(path: Path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


# --------------------------------------------------------------------------- CSV cells

@pytest.mark.parametrize("text", FORMULAS + ["-", "--x", "+", "=", "@", "\uff1dSUM(A1)"])
def test_safe_cell_neutralises_formulas(text):
    if text == "-":
        assert safe_cell(text) == "-"          # Moodle's "never"; cannot be a formula
    else:
        assert safe_cell(text) == "'" + text.replace("\r", "\n")


@pytest.mark.parametrize("value", ["-1.5", "0", "+3", "-2,5", "1e-3", "-7", "-.5", "", "hello",
                                   "    Points Possible", "EX", "'=already", " =1", 0, -1.5, 3, None])
def test_safe_cell_keeps_numbers_and_plain_text(value):
    assert safe_cell(value) == value


def test_safe_row_and_lone_surrogates():
    assert safe_row(["=x", -1, "-1", "ok"]) == ["'=x", -1, "-1", "ok"]
    assert safe_cell("\udcff=x") == "\ufffd=x" and printable("a\udcffb") == "a\ufffdb"
    # a lone carriage return would end the row early (the csv module does not quote it)
    assert safe_cell("a\rb\r\nc") == "a\nb\r\nc"


# --------------------------------------------------------------------------- Markdown

def _render(md: str) -> str:
    # CommonMark with raw HTML allowed (as Jupyter and GitHub do) and GFM's bare-URL autolinks
    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render(md)


@pytest.mark.parametrize("text", HOSTILE)
def test_md_text_renders_as_written(text):
    rendered = _render(f"- x {md_text(text)}")
    body = rendered.removeprefix("<ul>\n<li>x ").removesuffix("</li>\n</ul>\n")
    assert "<" not in body.replace("&lt;", ""), rendered             # no tag of any kind
    assert html.unescape(body) == " ".join(text.split()), rendered   # shown exactly as written


@pytest.mark.parametrize("text", HOSTILE)
def test_md_hint_keeps_code_spans_and_escapes_the_rest(text):
    rendered = _render(f"- x {md_hint(f'class `{text}` is wrong: {text}')}")
    for tag in ("<a", "<img", "<script", "<strong", "<em", "<b ", "<h1", "<table", "<!--"):
        assert tag not in rendered, rendered
    if "`" not in text:
        code = " ".join(f"`{text}`".split())[1:-1]
        assert f"class <code>{html.escape(code, quote=False)}</code> is wrong" in \
            rendered.replace("&quot;", '"')


def test_md_text_blocks_gfm_autolinks():
    for text in ("http://evil.example", "www.evil.example", "a@evil.example"):
        escaped = md_text(text)
        assert "http://" not in escaped and "www." not in escaped and "a@" not in escaped


def test_feedback_markdown_escapes_student_text():
    for i, text in enumerate(HOSTILE):
        for r in (hostile_result(i, text, timed_out=True),
                  hostile_result(i, text, readable=False),
                  hostile_result(i, text, counts=False)):
            md = feedback_markdown(r)
            rendered = _render(md)
            page = BeautifulSoup(rendered, "html.parser")
            tags = {t.name for t in page.find_all(True)}
            assert tags <= {"h1", "h2", "p", "ul", "li", "code", "strong", "em"}, (text, rendered)
            assert md.count("\n# ") == 0 and md.startswith("# Feedback: ")
            # the student's text still reaches the student, as written
            assert " ".join(text.split()) in page.get_text(), (text, rendered)


# --------------------------------------------------------------------------- matplotlib

@pytest.mark.parametrize("text", MATH + TAGS + ["\udcff lone surrogate", "x\x00y"])
def test_plots_draw_hostile_text_literally(text):
    before = dict(matplotlib.rcParams)
    data = plots.top_hints({text: [(f"class `{text}` is wrong", 3), (text, 1)]})
    assert data[:8] == PNG_MAGIC and len(data) > 3000
    data = plots.pass_rates([(text, 1, 1, 1, 0), ("q2", 0, 1, 0, 1)])
    assert data[:8] == PNG_MAGIC
    assert dict(matplotlib.rcParams) == before      # no global state changed


def test_plots_ignore_a_usetex_or_mathtext_rc_setting():
    with matplotlib.rc_context({"text.parse_math": True, "text.usetex": True}):
        data = plots.top_hints({"q1": [(r"$\foo{$ and $$", 2)]})
    assert data[:8] == PNG_MAGIC


# --------------------------------------------------------------------------- the report

@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("hostile")
    results = hostile_batch()
    save_batch(out, results)
    group = _Group(name="autograder", commands=[report_cmd])
    res = CliRunner().invoke(group, ["report", str(out)])
    assert res.exit_code == 0, res.output + repr(res.exception)
    return out, Path(res.output.strip()), results


def test_report_with_hostile_text_renders_every_plot(hostile_report):
    out, index, _ = hostile_report
    imgs = soup(index).find_all("img")
    assert len(imgs) == 4
    for img in imgs:
        data = (index.parent / unquote(img["src"])).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 8000


def _assert_no_injected_markup(path: Path, texts=HOSTILE):
    raw = path.read_text(encoding="utf-8")
    body = raw.split("</head>", 1)[1]
    for tag in ("<script", "<img src=x", "<b onmouseover", "onerror=1>", "<!-- c -->"):
        assert tag not in body, (path, tag)
    page = soup(path)
    assert len(page.find_all("script")) <= 1                     # the report's own check script
    for tag in page.find_all(True):
        assert not any(a.startswith("on") for a in tag.attrs), (path, tag)
    for img in page.find_all("img"):
        assert img["src"].endswith(".png") and "x" != img["src"], img
    return raw, page


def test_report_html_escapes_hostile_text(hostile_report):
    out, index, results = hostile_report
    raw, page = _assert_no_injected_markup(index)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in raw
    assert "&#34;&gt;&lt;img src=x onerror=1&gt;" in raw or "&quot;&gt;&lt;img src=x onerror=1&gt;" in raw
    text = page.get_text()
    for t in HOSTILE:
        assert " ".join(t.split()) in " ".join(text.split()), t
    # every feedback link is percent-encoded, stays local and resolves to its page
    hrefs = [a["href"] for a in page.find_all("a") if not a["href"].startswith("#")]
    assert {Path(unquote(h)).stem for h in hrefs} == {r.key for r in results}
    for href in hrefs:
        assert href.startswith("../feedback/") and "//" not in href and '"' not in href
        assert (index.parent / unquote(href)).resolve().is_file(), href


def test_feedback_pages_escape_hostile_text(hostile_report):
    out, _, results = hostile_report
    for r in results:
        path = out / "feedback" / f"{r.key}.html"
        raw, page = _assert_no_injected_markup(path)
        assert not page.find_all("script")
        assert " ".join((r.student.original_name or r.file).split()) in page.h1.get_text()
        for a in page.find_all("a"):
            assert a["href"].startswith("#") and page.find(id=unquote(a["href"][1:])), a


# --------------------------------------------------------------------------- CSV exports

def _rows(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        return list(csv.reader(f))


def _assert_neutral(rows: list[list[str]]) -> None:
    for row in rows:
        for c in row:
            assert "\r" not in c.replace("\r\n", ""), row
            if c[:1] in ("=", "+", "-", "@", "\t", "\r"):
                assert c == "-" or c.lstrip("+-").replace(".", "", 1).replace(",", "", 1).isdigit(), row


def test_long_csv_neutralises_formulas_and_keeps_numbers(tmp_path):
    results = [hostile_result(i, t, lms="", folder="", timed_out=True) for i, t in enumerate(FORMULAS)]
    negative = QuestionResult("q9", -1.5, 2.0, tests=(CaseResult(
        name="q9_value", hidden=False, points=-1.5, max_points=2.0, passed=False, hint="-1.5"),))
    results.append(SubmissionResult(file="n.ipynb", source="n.ipynb", digest="neg", status="graded",
                                    questions=(negative,)))
    save_batch(tmp_path / "OUT", results)
    dest = tmp_path / "long.csv"
    export_long(tmp_path / "OUT", dest)
    rows = _rows(dest)
    _assert_neutral(rows)
    by_file = {}
    for row in rows[1:]:
        by_file.setdefault(row[1], []).append(row)
    for i, t in enumerate(FORMULAS):
        t = t.replace("\r", "\n")
        file_rows = by_file["'" + f"{t}_{i}.ipynb"]
        assert all(row[0] == "'" + t for row in file_rows)                   # student
        assert "'" + t in [row[7] for row in file_rows]                      # hint
        assert all(not row[6].startswith("'") for row in file_rows)          # not a formula
    assert by_file["n.ipynb"][0][4:8] == ["-1.5", "2", "failed", "-1.5"]      # numbers untouched


def test_canvas_import_neutralises_gradebook_and_file_names(tmp_path):
    gradebook = tmp_path / "gradebook.csv"
    gradebook.write_text(
        "Student,ID,SIS User ID,SIS Login ID,Section,Lab (48213)\n"
        "    Points Possible,,,,,8.00\n"
        '"=HYPERLINK(""http://evil.example"",""x"")",2001,@S1,-jsmith,+Section,\n'
        '"Plain, Name",2002,S2,plain,Section 01,-1.5\n', encoding="utf-8")
    results = [hostile_result(1, "=1+1", key="2001"), hostile_result(2, "@SUM(A1)", key="2002"),
               hostile_result(3, "-2+3", key="2999"), hostile_result(4, "+x", lms="", folder="")]
    save_batch(tmp_path / "OUT", results)
    dest = tmp_path / "import.csv"
    export_canvas(tmp_path / "OUT", gradebook, "Lab (48213)", dest)
    rows = _rows(dest)
    _assert_neutral(rows)
    assert rows[2] == ["'=HYPERLINK(\"http://evil.example\",\"x\")", "2001", "'@S1", "'-jsmith",
                       "'+Section", "2"]
    assert rows[3][0] == "Plain, Name" and rows[3][5] == "2"
    unmatched = _rows(tmp_path / "unmatched.csv")
    _assert_neutral(unmatched)
    assert ["unidentified", "2004", "'+x_4.ipynb"] in [r[:3] for r in unmatched]


def test_moodle_worksheet_neutralises_names_but_keeps_its_dashes(tmp_path):
    worksheet = tmp_path / "worksheet.csv"
    lines = (LMS / "moodle_worksheet.csv").read_text(encoding="utf-8").splitlines()
    lines[1] = lines[1].replace('"José Álvarez Pérez"', '"=cmd|\' /C calc\'!A0"')
    worksheet.write_text("\n".join(lines) + "\n", encoding="utf-8")
    results = [hostile_result(1, "=HYPERLINK(1)", lms="moodle", key="880101", folder=""),
               hostile_result(2, "@x", lms="moodle", key="880199", folder="")]
    save_batch(tmp_path / "OUT", results)
    dest = tmp_path / "moodle.csv"
    export_moodle(tmp_path / "OUT", worksheet, dest)
    rows = _rows(dest)
    _assert_neutral(rows)
    assert rows[1][1] == "'=cmd|' /C calc'!A0" and rows[1][8] == "-"
    assert rows[1][4] == "40"                                          # the grade: a number
    unmatched = _rows(tmp_path / "unmatched.csv")
    _assert_neutral(unmatched)
    assert ["no_gradebook_row", "880199", "'@x/@x_2.ipynb"] in [r[:3] for r in unmatched] or \
           ["no_gradebook_row", "880199", "'@x_2.ipynb"] in [r[:3] for r in unmatched]


def test_final_grades_neutralises_file_and_status(tmp_path):
    zip_path = ROOT / "dist" / "differentiation" / "autograder.zip"
    if not zip_path.is_file():
        pytest.skip(f"{zip_path} is missing: run `autograder build differentiation`")
    from autograder.grade.autograder_zip import load_autograder
    from autograder.grade.outputs import write_final_grades

    ag = load_autograder(zip_path)
    try:
        results = [SubmissionResult(file=f"{t}_{i}.ipynb", source=f"{t}_{i}.ipynb", digest=str(i),
                                    **invalid(f"{t} invalid"))
                   for i, t in enumerate(FORMULAS)]
        results.append(SubmissionResult(file="-1.5", source="-1.5", digest="n", status="graded"))
        full = tuple(QuestionResult(q.name, 1.0, 1.0, tests=tuple(
            case(f"{q.name}_{k}", 1.0, True) for k, _ in enumerate(q.test_file().test_cases)))
            for q in ag.questions)
        results.append(SubmissionResult(file="@full.ipynb", source="@full.ipynb", digest="f",
                                        status="graded", questions=full))
        path = write_final_grades(tmp_path, results, ag)
    finally:
        ag.cleanup()
    rows = list(csv.DictReader(path.open(newline="", encoding="utf-8")))
    data = [r for r in rows if r["file"] != "points-per-question"]
    cells = [(r["file"], r["grading_status"]) for r in data]
    assert sorted(cells) == sorted([("'" + f"{t}_{i}.ipynb".replace("\r", "\n"),
                                     "'" + f"{t} invalid".replace("\r", "\n"))
                                    for i, t in enumerate(FORMULAS)] + [("-1.5", "graded"), ("'@full.ipynb", "Completed")])
    otters_row = [r for r in rows if r["file"] == "points-per-question"]
    assert otters_row and not otters_row[0]["grading_status"].startswith("'")   # otter's "--"
    numeric = [k for k in rows[0] if k not in ("file", "grading_status")]
    assert numeric and all(not r[k].startswith("'") for r in rows for k in numeric)
