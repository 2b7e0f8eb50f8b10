"""The `autograder grade` command line: usage errors are one line and a non-zero exit, the
sandbox is required unless --no-sandbox (which warns), and a finished batch exits 0."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ZIP = ROOT / "dist" / "differentiation" / "autograder.zip"
SOLUTION = ROOT / "dist" / "differentiation" / "autograder" / "differentiation.ipynb"
TEMPLATE = ROOT / "student_templates" / "differentiation" / "differentiation.ipynb"


def _grade(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder", "grade", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


def _one_line_error(done: subprocess.CompletedProcess, *needles: str) -> None:
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("autograder: error:"), done.stderr
    assert "Traceback" not in done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_missing_zip(tmp_path):
    shutil.copy(SOLUTION, tmp_path / "a.ipynb")
    _one_line_error(_grade("-a", str(tmp_path / "nope.zip"), "-o", str(tmp_path / "out"), str(tmp_path / "a.ipynb")),
                    "autograder zip not found")


def test_no_submissions_found(tmp_path):
    (tmp_path / "empty").mkdir()
    _one_line_error(_grade("-a", str(ZIP), "-o", str(tmp_path / "out"), str(tmp_path / "empty")),
                    "no submissions")


def test_unwritable_output(tmp_path):
    shutil.copy(SOLUTION, tmp_path / "a.ipynb")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    _one_line_error(_grade("-a", str(ZIP), "-o", str(blocker / "out"), str(tmp_path / "a.ipynb")),
                    "cannot write to the output folder")


def test_refuses_without_a_sandbox_unless_told(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(SOLUTION, subs / "sol.ipynb")
    shutil.copy(TEMPLATE, subs / "blank.ipynb")
    no_bwrap = {**os.environ, "PATH": str(tmp_path / "empty-path")}   # bwrap cannot be found
    _one_line_error(_grade("-a", str(ZIP), "-o", str(tmp_path / "out"), str(subs), env=no_bwrap),
                    "bubblewrap", "--no-sandbox")

    done = _grade("-a", str(ZIP), "-o", str(tmp_path / "out"), "--no-sandbox", "-q", str(subs), env=no_bwrap)
    assert done.returncode == 0, done.stderr
    assert "without isolation" in done.stderr
    grades = (tmp_path / "out" / "final_grades.csv").read_text()
    assert "sol.ipynb,2.0,2.0,2.0,4,3.0,2.0,2.0,3.0,20.0,1.0,Completed" in grades
    assert "blank.ipynb,0.0" in grades


def test_finished_batch_exits_zero_whatever_the_scores(tmp_path):
    (tmp_path / "bad.ipynb").write_text("{not json")
    shutil.copy(TEMPLATE, tmp_path / "blank.ipynb")
    done = _grade("-a", str(ZIP), "-o", str(tmp_path / "out"), "--summaries",
                  str(tmp_path / "bad.ipynb"), str(tmp_path / "blank.ipynb"))
    assert done.returncode == 0, done.stderr
    assert "graded 2 submissions" in done.stdout
    assert "graded 2/2" in done.stderr        # plain progress lines when not on a terminal
    assert (tmp_path / "out" / "feedback" / "bad.ipynb.md").is_file()
