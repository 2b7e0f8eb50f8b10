"""Malformed submissions (not malicious, just broken), from the threat notes' last section.

Every input is built here, in a temporary folder (nothing large is committed), and graded in
batches: notebooks from a folder with ext="ipynb" (plus a .py path given directly); zips given
one by one with ext="zip"; and, on their own because they trip grader bugs that abort a whole
batch today (strict xfails below), a non-UTF-8 file name and damaged export zips.

Each input must be exactly one row of final_grades.csv with a grading_status in plain words and
zeros where it cannot be graded; the batch must finish; nothing may be written outside the
output folder. Inputs that are only unusual (nbformat 3, a wrong kernel name, 100 MB of outputs,
a non-UTF-8 file name, Canvas names, otter's export zip, a ../ member of a download archive) are
the solution underneath and must get 20/20: a submission grades the same whatever it is called
or wrapped in. Two files of one Canvas student are both graded; the newest counts and the older
says so (in its note, its feedback and batch.json).
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import io
import json
import os
import stat
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
AUTOGRADER_ZIP = ROOT / "dist" / "differentiation" / "autograder.zip"
SOLUTION = ROOT / "dist" / "differentiation" / "autograder" / "differentiation.ipynb"
TEMPLATE = ROOT / "student_templates" / "differentiation" / "differentiation.ipynb"
QUESTIONS = [f"q{n}" for n in range(1, 9)]
TOTAL = 20.0
LIMITS = dict(question_timeout=5.0, timeout=30.0, memory_mb=1024)

# a file name that is not valid UTF-8 (bytes 0xff 0xfe and a Latin-1 e-acute)
NON_UTF8_NAME = os.fsdecode(b"\xff\xfe_solution_caf\xe9.ipynb")
CANVAS_OLD = "smithj_12345_111_differentiation.ipynb"
CANVAS_NEW = "smithj_12345_222_differentiation-1.ipynb"
CANVAS_SOLUTION = "doej_777_888_differentiation.ipynb"
DOTDOT_MEMBER = "../../escapee_4242_99_differentiation.ipynb"
SPACED_NAME, UNDERSCORED_NAME = "lab 1.ipynb", "lab_1.ipynb"


def printable_name(name: str) -> str:
    """How a non-UTF-8 (surrogate-escaped) file name must appear in final_grades.csv."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _solution() -> dict:
    return json.loads(SOLUTION.read_text(encoding="utf-8"))


def _dump(nb: dict) -> bytes:
    return (json.dumps(nb, indent=1) + "\n").encode("utf-8")


# --------------------------------------------------------------------------- inputs

def _nbformat3(nb: dict) -> bytes:
    import nbformat
    node = nbformat.reads(json.dumps(nb), as_version=4)   # sources as strings, as nbformat wants
    old = nbformat.convert(node, 3)
    return nbformat.writes(old, version=3).encode("utf-8")


def _huge_outputs(nb: dict, megabytes: int = 100) -> bytes:
    nb = copy.deepcopy(nb)
    line = "x" * 1023 + "\n"
    text = line * (megabytes * 1024)
    cell = next(c for c in nb["cells"] if c.get("id") == "cell-009")   # the print cell after q1
    cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": text}]
    cell["execution_count"] = 3
    return _dump(nb)


def _wrong_kernel(nb: dict) -> bytes:
    nb = copy.deepcopy(nb)
    nb["metadata"]["kernelspec"] = {"name": "conda-env-foo", "display_name": "Python [conda env:foo]",
                                    "language": "python"}
    return _dump(nb)


def _r_notebook() -> bytes:
    return _dump({
        "cells": [{"cell_type": "code", "execution_count": None, "id": "r1", "metadata": {}, "outputs": [],
                   "source": "x <- 2\ny <- x^2\nD(expression(x^2), 'x')\n"}],
        "metadata": {"kernelspec": {"name": "ir", "display_name": "R", "language": "R"},
                     "language_info": {"name": "R", "version": "4.3.1"}},
        "nbformat": 4, "nbformat_minor": 5})


PYTHON_SCRIPT = b"""import torch

x = torch.tensor(2.0, requires_grad=True)
y = x ** 2
y.backward()
print(x.grad)
"""

# name -> (bytes, what the grader must do: "full" = 20/20 graded normally, or a substring of the
# plain-words grading_status of a file it cannot grade)
NOTEBOOK_CASES = {
    "not_json.ipynb": (b"this is not JSON at all {", "not valid JSON"),
    "truncated.ipynb": (None, "not valid JSON"),       # the solution cut in half (built below)
    "empty_file.ipynb": (b"", "empty file"),
    "binary.ipynb": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\x00", "not a notebook"),
    "json_list.ipynb": (b"[1, 2, 3]", "not a notebook document"),
    "cells_not_a_list.ipynb": (b'{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": "x = 1"}',
                               "no list of cells"),
    "nbformat3.ipynb": (None, "full"),
    "nbformat3_broken.ipynb": (b'{"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": 7}',
                               "nbformat 3"),
    "empty_notebook.ipynb": (b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}',
                             "no code cells"),
    "no_code_cells.ipynb": (_dump({"cells": [{"cell_type": "markdown", "id": "m1", "metadata": {},
                                              "source": "# My answers\nI did it on paper."}],
                                   "metadata": {}, "nbformat": 4, "nbformat_minor": 5}), "no code cells"),
    "huge_outputs.ipynb": (None, "full"),
    "wrong_kernel.ipynb": (None, "full"),
    "r_notebook.ipynb": (None, "not a Python one"),
    "python_code.ipynb": (PYTHON_SCRIPT, "Python script"),
    CANVAS_SOLUTION: (None, "full"),
    # two students whose file names differ only in a character the output file names replace
    SPACED_NAME: (None, "full"),
    UNDERSCORED_NAME: (None, "blank"),
}
DIRECT_CASES = {"script.py": (PYTHON_SCRIPT, "Python script")}   # given as a path, not in the folder


def _write_notebooks(folder: Path) -> dict[str, tuple[bytes, str]]:
    nb = _solution()
    solution = SOLUTION.read_bytes()
    built = {"truncated.ipynb": solution[: len(solution) // 2], "nbformat3.ipynb": _nbformat3(nb),
             "huge_outputs.ipynb": _huge_outputs(nb), "wrong_kernel.ipynb": _wrong_kernel(nb),
             "r_notebook.ipynb": _r_notebook(), CANVAS_SOLUTION: solution, SPACED_NAME: solution,
             UNDERSCORED_NAME: TEMPLATE.read_bytes()}
    cases = {}
    for name, (data, expect) in NOTEBOOK_CASES.items():
        data = built[name] if data is None else data
        (folder / name).write_bytes(data)
        cases[name] = (data, expect)
    # the same Canvas student twice: an older blank file and a newer (resubmitted) solution
    now = time.time()
    (folder / CANVAS_OLD).write_bytes(TEMPLATE.read_bytes())
    os.utime(folder / CANVAS_OLD, (now - 7200, now - 7200))
    (folder / CANVAS_NEW).write_bytes(solution)
    os.utime(folder / CANVAS_NEW, (now - 60, now - 60))
    return cases


def _export_zip(path: Path, members: list[tuple[str, bytes]], *, links: dict[str, str] | None = None,
                compression: int = zipfile.ZIP_DEFLATED) -> None:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members:
            zf.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)


def _zip_bomb(path: Path, megabytes: int) -> None:
    """One notebook member of `megabytes` MB of spaces: compresses about 1000:1."""
    block = b" " * (1 << 20)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open("differentiation.ipynb", "w", force_zip64=True) as member:
            for _ in range(megabytes):
                member.write(block)
        zf.writestr(".OTTER_LOG", b"log")


def _flag_member(data: bytes, *, flag: int = 0, method: int | None = None) -> bytes:
    """Set general-purpose flag bits / the compression method of the first member, in both its
    local and its central directory header (as an encrypting or Deflate64 zip tool would)."""
    d = bytearray(data)
    central = d.find(b"PK\x01\x02")      # the first central header: the first member
    d[6] |= flag
    d[central + 8] |= flag
    if method is not None:
        d[8], d[central + 10] = method, method
    return bytes(d)


def _stored_export(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return buffer.getvalue()


def _damaged_members() -> dict[str, bytes]:
    """Export zips whose notebook member cannot be read, for reasons zipfile reports with
    exceptions other than BadZipFile-at-open: encrypted, an unsupported method, bad CRC, bad data."""
    solution = SOLUTION.read_bytes()
    stored = _stored_export([("differentiation.ipynb", solution), (".OTTER_LOG", b"log")])
    bad_crc = bytearray(stored)
    bad_crc[30 + len("differentiation.ipynb") + 200] ^= 0x01
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("differentiation.ipynb", solution)
    bad_deflate = bytearray(buffer.getvalue())
    for i in range(30 + len("differentiation.ipynb") + 200, 30 + len("differentiation.ipynb") + 250):
        bad_deflate[i] ^= 0xFF
    return {"encrypted": _flag_member(stored, flag=0x1), "deflate64": _flag_member(stored, method=9),
            "bad_crc": bytes(bad_crc), "bad_deflate": bytes(bad_deflate)}


def _damaged_zips(folder: Path) -> list[str]:
    """The damaged export zips of _damaged_members(), written as damaged_<kind>.zip."""
    names = []
    for kind, data in _damaged_members().items():
        (folder / f"damaged_{kind}.zip").write_bytes(data)
        names.append(f"damaged_{kind}.zip")
    return names


def _write_zips(folder: Path) -> dict[str, str]:
    solution = SOLUTION.read_bytes()
    log = b"\x80\x04otter log (pickled in real exports)"
    stamp = b"differentiation_2026_11_27T03_00_00_000000.zip"
    _export_zip(folder / "export_ok.zip", [("differentiation.ipynb", solution), (".OTTER_LOG", log),
                                           ("__zip_filename__", stamp)])
    _export_zip(folder / "export_two_notebooks.zip", [("differentiation.ipynb", solution),
                                                      ("differentiation-copy.ipynb", solution),
                                                      (".OTTER_LOG", log)])
    _export_zip(folder / "export_dotdot.zip", [("differentiation.ipynb", solution),
                                               ("../../zip_slip_escaped.txt", b"escaped!"),
                                               (".OTTER_LOG", log)])
    _export_zip(folder / "export_symlink.zip", [(".OTTER_LOG", log)],
                links={"differentiation.ipynb": "/etc/passwd"})
    _export_zip(folder / "export_symlink_extra.zip", [("differentiation.ipynb", solution)],
                links={"secrets": "../../../../etc/shadow"})
    _zip_bomb(folder / "zip_bomb_ratio.zip", 60)
    _zip_bomb(folder / "zip_bomb_huge.zip", 210)
    (folder / "not_a_zip.zip").write_bytes(b"PK\x03\x04 this is no zip at all" + os.urandom(64))
    # a "download all submissions" archive whose member climbs out with ../ (zip slip): nothing
    # is ever extracted, so it is just a file with an odd name, graded in memory
    _export_zip(folder / "download_dotdot.zip", [(DOTDOT_MEMBER, solution)])
    return {DOTDOT_MEMBER: "full", "export_ok.zip": "full", "export_two_notebooks.zip": "2 notebooks",
            "export_dotdot.zip": "unsafe path", "export_symlink.zip": "link",
            "export_symlink_extra.zip": "link", "zip_bomb_ratio.zip": "zip bomb",
            "zip_bomb_huge.zip": "too large", "not_a_zip.zip": "not a valid zip"}


# --------------------------------------------------------------------------- grading


@dataclass
class Graded:
    out: Path
    results: dict          # file -> SubmissionResult
    rows: list[dict]
    seconds: float
    error: BaseException | None = None


def _grade(paths: list[Path], out: Path, ext: str, *, catch: bool = False) -> Graded:
    from autograder.grade import Limits, grade_batch
    started = time.monotonic()
    results, error = {}, None
    try:
        summary = grade_batch(AUTOGRADER_ZIP, paths, out, ext=ext, limits=Limits(**LIMITS), summaries=True,
                              progress=False)
        results = {r.file: r for r in summary.results}
    except Exception as exc:        # only where a known grader bug is demonstrated (catch=True)
        if not catch:
            raise
        error = exc
    rows = []
    if (out / "final_grades.csv").is_file():
        with (out / "final_grades.csv").open(newline="", encoding="utf-8") as f:
            rows = [r for r in csv.DictReader(f) if r["file"] != "points-per-question"]
    return Graded(out=out, results=results, rows=rows, seconds=time.monotonic() - started, error=error)


def _listing(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    if not AUTOGRADER_ZIP.is_file():
        pytest.fail(f"{AUTOGRADER_ZIP} is missing: run `autograder build differentiation` first.")
    base = tmp_path_factory.mktemp("malformed")
    notebooks, zips, direct = base / "notebooks", base / "deep" / "er" / "zips", base / "direct"
    odd_names, damaged = base / "odd_names", base / "damaged"
    for folder in (notebooks, zips, direct, odd_names, damaged):
        folder.mkdir(parents=True)
    notebook_cases = _write_notebooks(notebooks)
    (odd_names / NON_UTF8_NAME).write_bytes(SOLUTION.read_bytes())
    damaged_names = _damaged_zips(damaged)
    for name, (data, _) in DIRECT_CASES.items():
        (direct / name).write_bytes(data)
    zip_cases = _write_zips(zips)
    outside_before = _listing(base)

    a = _grade([notebooks] + [direct / n for n in DIRECT_CASES], base / "out_ipynb", "ipynb")
    b = _grade(sorted(zips.iterdir()), base / "out_zip", "zip")
    c = _grade([odd_names], base / "out_odd", "ipynb", catch=True)
    d = _grade([damaged / n for n in damaged_names] + [notebooks / CANVAS_SOLUTION], base / "out_damaged", "zip",
               catch=True)
    outside_after = {p for p in _listing(base)
                     if not p.startswith(("out_ipynb", "out_zip", "out_odd", "out_damaged"))}

    expect = {printable_name(name): e for name, (_, e) in notebook_cases.items()}
    expect.update({name: e for name, (_, e) in DIRECT_CASES.items()})
    expect[CANVAS_OLD] = "canvas-old"
    expect[CANVAS_NEW] = "full"
    return {"ipynb": a, "zip": b, "odd": c, "damaged": d, "damaged_names": damaged_names,
            "expect_ipynb": expect, "expect_zip": zip_cases,
            "outside_before": outside_before, "outside_after": outside_after}


def _cases():
    notebook = [printable_name(n) for n in NOTEBOOK_CASES] + list(DIRECT_CASES) + [CANVAS_OLD, CANVAS_NEW]
    zips = ["export_ok.zip", "export_two_notebooks.zip", "export_dotdot.zip", "export_symlink.zip",
            "export_symlink_extra.zip", "zip_bomb_ratio.zip", "zip_bomb_huge.zip", "not_a_zip.zip",
            DOTDOT_MEMBER]
    return [pytest.param("ipynb", n, id=n.encode("ascii", "backslashreplace").decode()) for n in notebook] + \
           [pytest.param("zip", n, id=n) for n in zips]


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("batch, name", _cases())
def test_malformed_input(graded, batch, name):
    g: Graded = graded[batch]
    expect = graded["expect_" + batch][name]
    rows = [r for r in g.rows if r["file"] == name]
    assert len(rows) == 1, f"{name}: {len(rows)} rows in final_grades.csv ({[r['file'] for r in g.rows]})"
    row, result = rows[0], g.results[name]
    status = row["grading_status"]
    why = f"{name}: {result.points} [{status}] {[(q.name, q.points, q.status) for q in result.questions]}"
    assert status.strip() and "Traceback" not in status and "\n" not in status, why
    if expect == "full":
        assert result.points == TOTAL and status == "Completed", why
        assert all(float(row[q]) == q_full for q, q_full in zip(QUESTIONS, (2, 2, 2, 4, 3, 2, 2, 3))), why
    elif expect in ("canvas-old", "blank"):
        assert result.points == 0.0 and status == "Completed", why
    else:
        assert expect.lower() in status.lower(), why
        assert result.points == 0.0 and float(row["total_points_earned"]) == 0.0, why
        assert all(float(row[q]) == 0.0 for q in QUESTIONS), why
    assert (g.out / "results" / f"{result.key}.json").is_file()
    assert (g.out / "feedback" / f"{result.key}.md").is_file()


def test_distinct_files_get_distinct_results_and_feedback(graded):
    g: Graded = graded["ipynb"]
    spaced, underscored = g.results[SPACED_NAME], g.results[UNDERSCORED_NAME]
    assert spaced.key != underscored.key, f"both are written to results/{spaced.key}.json"
    assert "Score: 20 / 20" in (g.out / "feedback" / f"{spaced.key}.md").read_text(encoding="utf-8")
    assert "Score: 0 / 20" in (g.out / "feedback" / f"{underscored.key}.md").read_text(encoding="utf-8")


def test_every_input_is_one_row(graded):
    for batch in ("ipynb", "zip"):
        g: Graded = graded[batch]
        files = [r["file"] for r in g.rows]
        assert sorted(files) == sorted(graded["expect_" + batch]), batch
        assert len(set(files)) == len(files)


def test_same_canvas_student_twice_newest_counts(graded):
    g: Graded = graded["ipynb"]
    old, new = g.results[CANVAS_OLD], g.results[CANVAS_NEW]
    assert old.student.key == new.student.key == "12345"
    assert new.counts and not old.counts
    assert "superseded" in old.note and CANVAS_NEW in old.note
    assert "this one counts" in new.note
    assert new.points == TOTAL and old.points == 0.0     # both graded
    feedback = (g.out / "feedback" / f"{old.key}.md").read_text(encoding="utf-8")
    assert "superseded" in feedback
    manifest = json.loads((g.out / "batch.json").read_text(encoding="utf-8"))["records"]
    entry = next(e for e in manifest if e["file"] == CANVAS_OLD)
    assert entry["counts"] is False and "superseded" in entry["note"]


def test_canvas_named_solution_grades_like_the_solution(graded):
    r = graded["ipynb"].results[CANVAS_SOLUTION]
    assert r.student.lms == "canvas" and r.student.key == "777"
    assert r.points == TOTAL and r.counts and not r.note


def test_non_utf8_name_is_graded_and_printable(graded):
    """The grades themselves survive a file name that is not UTF-8 (final_grades.csv is written
    before the feedback files that trip over it, see the next test)."""
    g: Graded = graded["odd"]
    name = printable_name(NON_UTF8_NAME)
    assert [r["file"] for r in g.rows] == [name]
    row = g.rows[0]
    assert float(row["total_points_earned"]) == TOTAL and row["grading_status"] == "Completed"
    name.encode("utf-8")                                   # no lone surrogates left in the row


def test_non_utf8_name_with_summaries_does_not_crash_the_batch(graded):
    g: Graded = graded["odd"]
    assert g.error is None, f"grade_batch raised {type(g.error).__name__}: {g.error}"
    r = g.results[printable_name(NON_UTF8_NAME)]
    assert r.points == TOTAL and r.key.isascii()
    feedback = (g.out / "feedback" / f"{r.key}.md").read_text(encoding="utf-8")
    assert "Score: 20 / 20" in feedback


def test_nothing_written_outside_the_output_folders(graded):
    assert graded["outside_after"] == graded["outside_before"]
    assert not (ROOT / "zip_slip_escaped.txt").exists()
    for g in (graded["ipynb"], graded["zip"]):
        for path in g.out.rglob("*"):
            assert path.resolve().is_relative_to(g.out.resolve()), path


def test_export_zip_grades_like_the_notebook(graded):
    r = graded["zip"].results["export_ok.zip"]
    assert r.points == TOTAL and r.status == "graded"


def test_damaged_zip_is_one_row_and_does_not_stop_the_batch(graded):
    g: Graded = graded["damaged"]
    assert g.error is None, f"grade_batch raised {type(g.error).__name__}: {g.error}"
    files = sorted(r["file"] for r in g.rows)
    assert files == sorted(graded["damaged_names"] + [CANVAS_SOLUTION])
    for row in g.rows:
        if row["file"] in graded["damaged_names"]:
            assert float(row["total_points_earned"]) == 0.0 and row["grading_status"] != "Completed"
        else:
            assert float(row["total_points_earned"]) == TOTAL


@pytest.mark.parametrize("kind", ["encrypted", "deflate64", "bad_crc", "bad_deflate"])
def test_unreadable_zip_member_is_an_invalid_submission(kind):
    from autograder.grade.submission import InvalidSubmission, read_cells
    data = _damaged_members()[kind]
    try:
        read_cells(data)
    except InvalidSubmission:
        return
    except Exception as exc:
        raise AssertionError(f"read_cells raised {type(exc).__name__}: {exc}") from None
    raise AssertionError("read_cells accepted a damaged zip")


# --------------------------------------------------------------------------- reading within limits
#
# read_notebook / read_cells run in the unsandboxed supervisor on the raw bytes, so whatever a
# file holds may cost only about its own size: outputs are skipped as a stream of JSON events,
# never built. These tests call the reader directly (no grading) on inputs built in memory.


def _reader():
    from autograder.grade import submission
    return submission


def _with_output(nb: dict, output: bytes) -> bytes:
    """The notebook with `output` (raw JSON text, however big) as the outputs of cell-009,
    spliced in as bytes so that the test itself never builds it as Python objects."""
    nb = copy.deepcopy(nb)
    cell = next(c for c in nb["cells"] if c.get("id") == "cell-009")
    cell["outputs"], cell["execution_count"] = "@@OUTPUTS@@", 3
    head, tail = _dump(nb).split(b'"@@OUTPUTS@@"')
    return b"".join((head, output, tail))


def _peak_memory(call):
    """call()'s result and the peak of Python's allocations (tracemalloc) while it ran, beyond
    what was allocated before (the input bytes)."""
    import tracemalloc
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    try:
        result = call()
    finally:
        peak = tracemalloc.get_traced_memory()[1] - before
        if started:
            tracemalloc.stop()
    return result, peak


def _solution_cells() -> list[str]:
    return _reader().read_cells(SOLUTION.read_bytes())


def test_150mb_output_string_costs_a_fraction_of_the_file():
    """One output string of 150 MB (as a print loop makes): json.loads held about 26x that."""
    line = b"x" * 1023 + b"\\n"
    data = _with_output(_solution(), b'[{"name": "stdout", "output_type": "stream", "text": "'
                        + line * (150 * 1024) + b'"}]')
    assert len(data) > 150 * 2**20
    started = time.monotonic()
    cells, peak = _peak_memory(lambda: _reader().read_cells(data))
    seconds = time.monotonic() - started
    assert cells == _solution_cells()
    # measured: about 0.02x (3 MB) and 1 s; yajl is never given the string itself
    assert peak < len(data) // 4, f"peak {peak / len(data):.3f}x the file size ({peak >> 20} MB)"
    assert seconds < 30, f"{seconds:.1f} s"


def test_half_a_million_output_items_cost_a_fraction_of_the_file():
    item = b'{"name": "stdout", "output_type": "stream", "text": "epoch 0000001 loss 0.123456\\n"}'
    data = _with_output(_solution(), b"[" + b",".join([item] * 500_000) + b"]")
    assert len(data) > 35 * 2**20
    cells, peak = _peak_memory(lambda: _reader().read_cells(data))
    assert cells == _solution_cells()
    # events are read 64 KB of text at a time and dropped (measured on 2M items: about 0.02x)
    assert peak < len(data) // 4, f"peak {peak / len(data):.3f}x the file size ({peak >> 20} MB)"


def _quickly(call, seconds: float = 2.0):
    """call()'s result or its InvalidSubmission, within `seconds`; anything else fails."""
    sub = _reader()
    started = time.monotonic()
    try:
        result = call()
    except sub.InvalidSubmission as exc:
        result = exc
    took = time.monotonic() - started
    assert took < seconds, f"took {took:.1f} s"
    return result


DEPTH = 100_000


def test_deep_nesting_in_an_output_is_skipped():
    deep = b"[" * DEPTH + b"]" * DEPTH
    data = _with_output(_solution(), b'[{"output_type": "execute_result", "data": {"application/json": '
                        + deep + b'}, "metadata": {}, "execution_count": 3}]')
    assert _quickly(lambda: _reader().read_cells(data)) == _solution_cells()


def test_deep_nesting_at_top_level_is_not_a_notebook():
    for data in (b"[" * DEPTH + b"]" * DEPTH, b'{"cells": ' + b"[" * DEPTH + b"]" * DEPTH + b"}",
                 b"[" * DEPTH):
        result = _quickly(lambda: _reader().read_cells(data))
        assert isinstance(result, _reader().InvalidSubmission) or result == [], repr(result)[:200]
    assert "not a notebook document" in str(_quickly(lambda: _reader().read_cells(b"[" * DEPTH + b"]" * DEPTH)))
    assert "not valid JSON" in str(_quickly(lambda: _reader().read_cells(b"[" * DEPTH)))


def test_deep_nesting_in_cell_metadata_drops_the_metadata():
    nb = {"cells": [{"cell_type": "code", "metadata": "@@", "source": "x = 1"}], "metadata": {},
          "nbformat": 4, "nbformat_minor": 5}
    data = _dump(nb).replace(b'"@@"', b'{"a": ' + b"[" * DEPTH + b"]" * DEPTH + b"}")
    notebook = _quickly(lambda: _reader().read_notebook(data))
    assert [(c.source, c.metadata) for c in notebook.code_cells] == [("x = 1", {})]


def test_nesting_beyond_the_limit_is_refused():
    sub = _reader()
    levels = sub.MAX_DEPTH + 10
    data = _with_output(_solution(), b"[" * levels + b"]" * levels)
    result = _quickly(lambda: sub.read_cells(data), seconds=10)
    assert isinstance(result, sub.InvalidSubmission) and "levels deep" in str(result)


def _v3(nb: dict) -> bytes:
    return json.dumps(nb).encode("utf-8")


def _as_nbformat_converted(data: bytes) -> list[tuple[str, dict]]:
    """The code cells as nbformat's own v3 -> v4 conversion gives them (what read_cells used)."""
    import nbformat
    node = nbformat.reads(data.decode("utf-8"), as_version=4)
    return [(c.source, dict(c.metadata)) for c in node.cells if c.cell_type == "code"]


def test_nbformat3_gives_the_cells_nbformat_converts():
    sub = _reader()
    data = _nbformat3(_solution())
    assert sub.read_cells(data) == _solution_cells()
    assert [(c.source, c.metadata) for c in sub.read_notebook(data).code_cells] == _as_nbformat_converted(data)
    # several worksheets, lines without newlines (nbformat 3 joined those with "\n"), a code cell
    # without input, a collapsed cell (its flag moves into the metadata), headings
    code = {"cell_type": "code", "language": "python", "metadata": {}, "outputs": [], "collapsed": False}
    worksheets = [
        {"cells": [{**code, "input": ["import torch\n", "x = torch.ones(2)"]},
                   {"cell_type": "heading", "level": 1, "metadata": {}, "source": ["Title"]},
                   {**code, "input": ["a = 1", "b = 2", "print(a + b)"], "collapsed": True},
                   {**code, "metadata": {"tags": ["t"]}}],
         "metadata": {}},
        {"cells": [{**code, "input": "y = 3\n", "prompt_number": 4},
                   {"cell_type": "markdown", "metadata": {}, "source": ["some ", "text"]}],
         "metadata": {}},
    ]
    data = _v3({"metadata": {"name": "lab", "signature": ""}, "nbformat": 3, "nbformat_minor": 0,
                "worksheets": worksheets})
    expected = _as_nbformat_converted(data)
    assert [s for s, _ in expected] == ["import torch\nx = torch.ones(2)", "a = 1\nb = 2\nprint(a + b)", "", "y = 3\n"]
    notebook = sub.read_notebook(data)
    assert [(c.source, c.metadata) for c in notebook.code_cells] == expected
    assert [c.index for c in notebook.code_cells] == [0, 2, 3, 4]


def test_read_notebook_returns_cell_metadata_and_positions():
    sub = _reader()
    nb = _solution()
    notebook = sub.read_notebook(SOLUTION.read_bytes())
    expected = [(i, "".join(c["source"]), c["metadata"]) for i, c in enumerate(nb["cells"])
                if c["cell_type"] == "code"]
    assert [(c.index, c.source, c.metadata) for c in notebook.code_cells] == expected
    assert any(c.metadata for c in notebook.code_cells)       # the solution has some
    assert isinstance(notebook.code_cells, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        notebook.code_cells = ()
    # metadata that is not an object, or larger than the cap, is dropped; the cell is kept
    nb = {"cells": [{"cell_type": "code", "metadata": 7, "source": "a"},
                    {"cell_type": "code", "metadata": {"big": "x" * (sub.MAX_CELL_METADATA + 1)}, "source": "b"},
                    {"cell_type": "code", "metadata": {"n": 1.5, "ok": [True, None, {"k": "v"}]}, "source": "c"}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    notebook = sub.read_notebook(_dump(nb))
    assert [(c.source, c.metadata) for c in notebook.code_cells] == \
        [("a", {}), ("b", {}), ("c", {"n": 1.5, "ok": [True, None, {"k": "v"}]})]


def test_code_is_limited_to_1_mb():
    sub = _reader()
    assert sub.MAX_CODE_BYTES == 2**20
    line = "x = 1  # some code\n"
    fits = line * (sub.MAX_CODE_BYTES // len(line) // 2)
    for source in (fits, [fits]):   # one long string (read on its own, beside the parser), or lines
        nb = {"cells": [{"cell_type": "code", "metadata": {}, "source": source},
                        {"cell_type": "code", "metadata": {}, "source": "y = 2"}],
              "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
        assert sub.read_cells(_dump(nb)) == [fits, "y = 2"]
        nb["cells"].append({"cell_type": "code", "metadata": {}, "source": source})
        with pytest.raises(sub.InvalidSubmission, match="the notebook holds more than 1 MB of code"):
            sub.read_cells(_dump(nb))
    nb = {"cells": [{"cell_type": "code", "source": line * (sub.MAX_CODE_BYTES // len(line) + 1)}], "metadata": {}}
    with pytest.raises(sub.InvalidSubmission, match="more than 1 MB of code"):
        sub.read_cells(_dump(nb))
    # markdown is not code: a big image pasted into a markdown cell is fine
    nb = {"cells": [{"cell_type": "markdown", "source": "![](data:image/png;base64," + "A" * 3 * 2**20 + ")"},
                    {"cell_type": "code", "source": "z = 3"}], "metadata": {}}
    assert sub.read_cells(_dump(nb)) == ["z = 3"]


def test_cells_are_limited():
    sub = _reader()
    nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": ""}] * sub.MAX_CELLS
          + [{"cell_type": "code", "metadata": {}, "source": "x"}], "metadata": {}}
    with pytest.raises(sub.InvalidSubmission, match=f"more than {sub.MAX_CELLS} cells"):
        sub.read_cells(_dump(nb))
    nb["cells"] = nb["cells"][1:]
    assert sub.read_cells(_dump(nb)) == ["x"]


def test_long_strings_are_checked_like_the_rest():
    """Strings too long to hand to the parser are checked on the side, the same way."""
    sub = _reader()
    long = b"y" * (2 * 2**20)

    def output(text: bytes) -> bytes:
        return _with_output(_solution(), b'[{"name": "stdout", "output_type": "stream", "text": "' + text + b'"}]')

    assert sub.read_cells(output(long + b'\\" \\\\ \\u00e9 \\n' + long)) == _solution_cells()
    for broken in (long + b"\x01" + long, long + b"\\x" + long, long + b"\\u12" + long, long + b"\n" + long):
        with pytest.raises(sub.InvalidSubmission, match="not valid JSON"):
            sub.read_cells(output(broken))
    with pytest.raises(sub.InvalidSubmission, match="not text"):
        sub.read_cells(output(long + b"\xff" + long))
    with pytest.raises(sub.InvalidSubmission, match="not valid JSON"):         # never closed
        sub.read_cells(b'{"cells": [], "metadata": {}, "x": "' + long)
    with pytest.raises(sub.InvalidSubmission, match="not valid JSON"):         # a number that long
        sub.read_cells(output(b'", "execution_count": ' + b"7" * 2**20 + b', "x": "'))


def test_invalid_utf8_inside_the_json_is_not_text():
    sub = _reader()
    data = SOLUTION.read_bytes().replace(b"Run this cell first", b"Run this c\xe9ll first", 1)
    with pytest.raises(sub.InvalidSubmission, match="not a notebook: the file is not text"):
        sub.read_cells(data)


def test_encodings_json_allows_are_read():
    text = SOLUTION.read_text(encoding="utf-8")
    for data in (b"\xef\xbb\xbf" + text.encode("utf-8"), text.encode("utf-16"), text.encode("utf-32-le")):
        assert _reader().read_cells(data) == _solution_cells()
