"""`autograder new LAB`: the scaffolded master notebook builds as it is, and grades sensibly."""

from __future__ import annotations

import shutil
import subprocess
import sys

import nbformat
import pytest

from autograder.assign import build
from autograder.assign.scaffold import new_lab
from autograder.errors import UserError

from conftest import ROOT


@pytest.fixture(scope="module")
def scaffolded(tmp_path_factory):
    root = tmp_path_factory.mktemp("proj")
    (root / "assignments").mkdir()
    shutil.copy(ROOT / "otter_config.json", root / "otter_config.json")
    done = subprocess.run([sys.executable, "-m", "autograder", "new", "linear_model"], cwd=root,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "autograder build linear_model" in done.stdout
    result = build("linear_model", root=root, student_root=root / "student_templates", dist_root=root / "dist")
    return root, result


def test_scaffold_builds_with_a_question_in_each_style(scaffolded):
    root, result = scaffolded
    assert result.points == {"q1": 2.0, "q2": 2.0}
    master = (root / "assignments" / "linear_model" / "linear_model.ipynb").read_text()
    assert "autograd_checks as ac" in master and "assert isinstance(slope, float)" in master
    student = nbformat.read(result.student_dir / "linear_model.ipynb", as_version=4)
    text = "\n".join(c.source for c in student.cells)
    assert "x ** 3" not in text and "math.exp" not in text   # solutions and hidden tests stay out
    assert 'grader.check("q1")' in text and 'grader.check("q2")' in text


def test_scaffold_grades_blank_at_zero_and_solution_full(scaffolded, tmp_path):
    from autograder.grade.batch import grade_batch

    root, result = scaffolded
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(result.student_dir / "linear_model.ipynb", subs / "blank.ipynb")
    shutil.copy(next(result.solution_dir.glob("*.ipynb")), subs / "solution.ipynb")
    summary = grade_batch(result.autograder_zip, [subs], tmp_path / "out", progress=False)
    scores = {r.file: r.points for r in summary.results}
    assert scores == {"blank.ipynb": 0.0, "solution.ipynb": 4.0}


def test_new_refuses_an_existing_lab_and_a_bad_name(tmp_path):
    (tmp_path / "assignments").mkdir()
    new_lab("lab1", root=tmp_path)
    with pytest.raises(UserError, match="already exists"):
        new_lab("lab1", root=tmp_path)
    with pytest.raises(UserError, match="lower-case"):
        new_lab("../evil", root=tmp_path)
