"""`autograder grade` as a batch tool: otter's final_grades.csv format, LMS download layouts,
and interruption + resume."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from autograder.grade import Limits, grade_batch
from autograder.results import load_batch

ROOT = Path(__file__).resolve().parent.parent
ZIP = ROOT / "dist" / "differentiation" / "autograder.zip"
SOLUTION = ROOT / "dist" / "differentiation" / "autograder" / "differentiation.ipynb"
TEMPLATE = ROOT / "student_templates" / "differentiation" / "differentiation.ipynb"
CORPUS = ROOT / "tests" / "fixtures" / "corpus"
LIMITS = Limits(question_timeout=5, timeout=30)


@pytest.fixture(scope="module", autouse=True)
def _built():
    if not ZIP.is_file():
        pytest.fail(f"{ZIP} is missing: run `autograder build differentiation` (make test does)")


def _wrong() -> Path:
    return CORPUS / "q4_ignores_grad_output.ipynb"


def test_final_grades_matches_otters_writer(tmp_path):
    """Our final_grades.csv equals the file otter's own writer makes from otter's own results."""
    from otter.execute import grade_notebook
    from otter.grade.utils import merge_scores_to_df

    subs = tmp_path / "subs"
    subs.mkdir()
    files = {"sol.ipynb": SOLUTION, "blank.ipynb": TEMPLATE, "wrong.ipynb": _wrong()}
    for name, source in files.items():
        shutil.copy(source, subs / name)
    out = tmp_path / "out"
    grade_batch(ZIP, [subs], out, limits=LIMITS, progress=False)

    ag = tmp_path / "ag"
    zipfile.ZipFile(ZIP).extractall(ag)
    scores = []
    for name in sorted(files):
        work = tmp_path / "otter" / name
        work.mkdir(parents=True)
        shutil.copy(subs / name, work / name)
        shutil.copy(ag / "files" / "autograd_checks.py", work)
        cwd = os.getcwd()
        os.chdir(work)
        try:
            results = grade_notebook(str(work / name), tests_glob=sorted(str(p) for p in (ag / "tests").glob("*.py")),
                                     cwd=str(work), test_dir=str(ag / "tests"))
        finally:
            os.chdir(cwd)
        results.file = name
        scores.append(results)
    expected = merge_scores_to_df(scores).to_csv(index=False)
    assert (out / "final_grades.csv").read_text() == expected


def _canvas_zip(path: Path) -> None:
    """Canvas stamps each entry with its submission time; leea handed in twice."""
    entries = [
        ("smithj_12345_900001_differentiation.ipynb", SOLUTION, (2026, 11, 20, 10, 0, 0)),
        ("doej_LATE_23456_900002_lab.ipynb", TEMPLATE, (2026, 11, 22, 9, 30, 0)),
        ("leea_34567_900003_differentiation.ipynb", _wrong(), (2026, 11, 19, 8, 0, 0)),
        ("leea_34567_900004_differentiation-1.ipynb", TEMPLATE, (2026, 11, 20, 23, 59, 0)),
    ]
    with zipfile.ZipFile(path, "w") as z:
        for name, source, when in entries:
            z.writestr(zipfile.ZipInfo(name, when), source.read_bytes())
        z.writestr("leea_34567_900005_notes.txt", "not a submission")


def test_canvas_download_zip(tmp_path):
    download = tmp_path / "submissions.zip"
    _canvas_zip(download)
    out = tmp_path / "out"
    summary = grade_batch(ZIP, [download], out, limits=LIMITS, progress=False)
    by_source = {r.source: r for r in summary.results}
    assert len(by_source) == 4
    smith = by_source["smithj_12345_900001_differentiation.ipynb"]
    assert smith.student.lms == "canvas" and smith.student.key == "12345" and smith.points == 20
    late = by_source["doej_LATE_23456_900002_lab.ipynb"]
    assert late.student.late and late.points == 0
    old, new = by_source["leea_34567_900003_differentiation.ipynb"], by_source["leea_34567_900004_differentiation-1.ipynb"]
    assert new.counts and not old.counts and "superseded" in old.note
    rows = list(csv.DictReader(open(out / "final_grades.csv")))
    assert len(rows) == 1 + 4
    assert [r.source for r in load_batch(out)] == [r.source for r in summary.results]


def test_moodle_download_folder(tmp_path):
    download = tmp_path / "moodle"
    for folder, source in [("Ana María López_101_assignsubmission_file_", SOLUTION),
                           ("Bob Stone_102_assignsubmission_file_", TEMPLATE)]:
        (download / folder).mkdir(parents=True)
        shutil.copy(source, download / folder / "differentiation.ipynb")
    summary = grade_batch(ZIP, [download], tmp_path / "out", limits=LIMITS, progress=False)
    by_key = {r.student.key: r for r in summary.results}
    assert by_key["101"].student.lms == "moodle" and by_key["101"].points == 20
    assert by_key["101"].student.name == "Ana María López"
    assert by_key["102"].points == 0
    assert len({r.file for r in summary.results}) == 2, "rows must stay distinguishable"


def _normalised(out: Path) -> dict[str, str]:
    """Every output file, minus measured run times (they differ between any two runs)."""
    files = {}
    for path in sorted(out.rglob("*")):
        if not path.is_file():
            continue
        text = path.read_text()
        if path.suffix == ".json":
            data = json.loads(text)
            for key in ("execution_time", "runtime_s"):
                data.pop(key, None) if isinstance(data, dict) else None
            text = json.dumps(data, sort_keys=True)
        files[path.relative_to(out).as_posix()] = text
    return files


def test_interrupted_batch_resumes_to_the_same_files(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    sources = sorted(CORPUS.glob("*.ipynb"))
    for i in range(24):
        data = json.loads(sources[i % len(sources)].read_text())
        data["metadata"]["copy"] = i       # distinct content, distinct records
        (subs / f"s{i:02d}.ipynb").write_text(json.dumps(data))
    command = [sys.executable, "-m", "autograder", "grade", "-a", str(ZIP), "-q",
               "--containers", "1", str(subs)]

    whole = tmp_path / "whole"
    subprocess.run(command + ["-o", str(whole)], check=True, capture_output=True)

    resumed = tmp_path / "resumed"
    process = subprocess.Popen(command + ["-o", str(resumed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list((resumed / "records").glob("*.json"))) < 6:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = len(list((resumed / "records").glob("*.json")))
    assert 6 <= done_before < 24, "the kill should land mid-batch"
    assert not (resumed / "final_grades.csv").exists()

    rerun = subprocess.run(command + ["-o", str(resumed)], check=True, capture_output=True, text=True)
    assert f"{24 - done_before} run" in rerun.stdout
    assert _normalised(resumed) == _normalised(whole)
