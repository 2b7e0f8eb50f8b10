"""`autograder build`: reproducible output, stale-template detection, and build errors that name
the question and the cell."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder.assign import build
from autograder.errors import BuildError

ROOT = Path(__file__).resolve().parent.parent
LAB = "differentiation"


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def fresh_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    result = build(LAB, root=ROOT, student_root=out / "student_templates", dist_root=out / "dist")
    return out, result


def test_committed_template_is_up_to_date(fresh_build):
    """Fails when the master notebook or the checks changed without `make build` + commit."""
    out, _ = fresh_build
    built, committed = _tree(out / "student_templates" / LAB), _tree(ROOT / "student_templates" / LAB)
    assert sorted(built) == sorted(committed), "student_templates/ is stale: run `autograder build differentiation`"
    stale = [name for name in built if built[name] != committed[name]]
    assert not stale, f"stale files in student_templates/{LAB}: {stale}; run `autograder build {LAB}` and commit"


def test_rebuild_is_byte_identical(fresh_build, tmp_path):
    out, first = fresh_build
    second = build(LAB, root=ROOT, student_root=tmp_path / "s", dist_root=tmp_path / "d")
    assert _tree(out / "student_templates" / LAB) == _tree(tmp_path / "s" / LAB)
    assert first.autograder_zip.read_bytes() == second.autograder_zip.read_bytes()


def test_outputs_and_points(fresh_build):
    out, result = fresh_build
    assert result.autograder_zip == out / "dist" / LAB / "autograder.zip"
    assert (result.solution_dir / f"{LAB}.ipynb").is_file()
    assert result.points == {"q1": 2, "q2": 2, "q3": 2, "q4": 4, "q5": 3, "q6": 2, "q7": 2, "q8": 3}
    names = zipfile.ZipFile(result.autograder_zip).namelist()
    assert "files/autograd_checks.py" in names and "tests/q4.py" in names
    config = json.loads(zipfile.ZipFile(result.autograder_zip).read("otter_config.json"))
    project = json.loads((ROOT / "otter_config.json").read_text())
    assert all(config[k] == v for k, v in project.items()), "otter_config.json was not used by the build"


def test_student_notebook_hides_solutions_and_hidden_tests(fresh_build):
    out, _ = fresh_build
    student = out / "student_templates" / LAB
    nb = nbformat.read(student / f"{LAB}.ipynb", as_version=4)
    text = "\n".join(c.source for c in nb.cells)
    assert "grad_output * 2 * i" not in text and "y = x ** 2  " not in text
    assert 'grader.check("q8")' in text
    for test in (student / "tests").glob("*.py"):
        assert "hidden=True" not in test.read_text() and "check_grad_value" not in test.read_text()


def test_student_notebook_does_not_depend_on_its_file_name(fresh_build):
    out, _ = fresh_build
    nb = nbformat.read(out / "student_templates" / LAB / f"{LAB}.ipynb", as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert f"{LAB}.ipynb" not in code, "a cell names the notebook file: renamed submissions would break"


def _master_copy(tmp_path: Path) -> tuple[Path, nbformat.NotebookNode]:
    root = tmp_path / "proj"
    (root / "assignments").mkdir(parents=True)
    shutil.copytree(ROOT / "assignments" / LAB, root / "assignments" / LAB, symlinks=False)
    shutil.copy(ROOT / "otter_config.json", root / "otter_config.json")
    path = root / "assignments" / LAB / f"{LAB}.ipynb"
    return root, nbformat.read(path, as_version=4)


def _cell_index(nb, startswith: str) -> int:
    return next(i for i, c in enumerate(nb.cells) if c.source.startswith(startswith))


def _build_error(root: Path, nb) -> str:
    nbformat.write(nb, root / "assignments" / LAB / f"{LAB}.ipynb")
    with pytest.raises(BuildError) as info:
        build(LAB, root=root, student_root=root / "s", dist_root=root / "d")
    return str(info.value)


def test_bad_yaml_names_the_cell(tmp_path):
    root, nb = _master_copy(tmp_path)
    index = _cell_index(nb, "# BEGIN QUESTION\nname: q3")
    nb.cells[index].source = "# BEGIN QUESTION\nname: q3\npoints: [0.25, 0.25\n"
    message = _build_error(root, nb)
    assert f"cell {index}" in message and "YAML" in message


def test_question_without_tests_names_the_question(tmp_path):
    root, nb = _master_copy(tmp_path)
    start = _cell_index(nb, "# BEGIN QUESTION\nname: q6")
    begin = next(i for i in range(start, len(nb.cells)) if nb.cells[i].source.startswith("# BEGIN TESTS"))
    end = next(i for i in range(begin, len(nb.cells)) if nb.cells[i].source.startswith("# END TESTS"))
    del nb.cells[begin + 1:end]
    message = _build_error(root, nb)
    assert "q6" in message and f"cell {start}" in message and "no tests" in message


def test_unknown_otter_setting_is_refused(tmp_path):
    root, nb = _master_copy(tmp_path)
    (root / "otter_config.json").write_text(json.dumps({"show_stdot": True}))
    message = _build_error(root, nb)
    assert "show_stdot" in message


def test_solution_failing_its_own_tests_names_the_question(tmp_path):
    root, nb = _master_copy(tmp_path)
    index = next(i for i, c in enumerate(nb.cells) if "y = 2 * x ** 3 + x  # SOLUTION" in c.source)
    nb.cells[index].source = nb.cells[index].source.replace("y = 2 * x ** 3 + x  # SOLUTION", "y = 3 * x ** 3 + x  # SOLUTION")
    message = _build_error(root, nb)
    assert "q3" in message and "fails its own tests" in message


def test_cli_build_error_is_one_line(tmp_path):
    root, nb = _master_copy(tmp_path)
    nb.cells[0].source = "# ASSIGNMENT CONFIG\nname: [unclosed\n"
    nbformat.write(nb, root / "assignments" / LAB / f"{LAB}.ipynb")
    done = subprocess.run([sys.executable, "-m", "autograder", "build", LAB], cwd=root,
                          capture_output=True, text=True)
    assert done.returncode != 0
    assert done.stderr.startswith("autograder: error:") and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def _replace_test(nb, name: str, source: str) -> None:
    index = next(i for i, c in enumerate(nb.cells) if f"def {name}(" in c.source)
    nb.cells[index].source = source


def test_doctest_format_is_refused(tmp_path):
    """otter's default (OK) format defines `def test_...` functions and never calls them."""
    root, nb = _master_copy(tmp_path)
    nb.cells[0].source = nb.cells[0].source.replace("  ok_format: false", "  ok_format: true")
    assert "ok_format: false" in _build_error(root, nb)
    nb.cells[0].source = nb.cells[0].source.replace("\n  ok_format: true", "")
    assert "never call them" in _build_error(root, nb)


def test_plain_otter_test_that_raises_on_student_data_is_reported_to_staff(tmp_path):
    """A plain test (x.grad.item()) passes on the solution in both graders; on a student whose
    x.grad is None it raises: the student sees a plain line, staff see the error and where."""
    from autograder.grade.batch import grade_batch
    from autograder.report.build import batch_stats

    root, nb = _master_copy(tmp_path)
    _replace_test(nb, "test_q1_backward_called",
                  "def test_q1_backward_called(x):\n    assert abs(x.grad.item() - 4.0) < 1e-6")
    nbformat.write(nb, root / "assignments" / LAB / f"{LAB}.ipynb")
    built = build(LAB, root=root, student_root=root / "s", dist_root=root / "d")
    student = nbformat.read(next((root / "d" / LAB / "autograder").glob("*.ipynb")), as_version=4)
    for cell in student.cells:   # the solution without its backward() call
        cell.source = cell.source.replace("y.backward()", "pass")
    subs = tmp_path / "subs"
    subs.mkdir()
    nbformat.write(student, subs / "no_backward.ipynb")
    summary = grade_batch(built.autograder_zip, [subs], tmp_path / "out", sandbox=False, progress=False)
    (result,) = summary.results
    errors = result.test_errors
    assert [(q, t) for q, t, _ in errors] == [("q1", "test_q1_backward_called")]
    assert "AttributeError" in errors[0][2] and "x.grad.item()" in errors[0][2]
    (case,) = [t for t in result.question("q1").tests if t.name == "test_q1_backward_called"]
    assert "AttributeError" not in case.hint and "could not run" in case.hint
    assert batch_stats(summary.results).test_errors == [("q1", "test_q1_backward_called", errors[0][2], 1)]


# Tests otter run passes on the solution but the secure grader cannot judge, each with the
# words the gate's message must say about it. One build holds them all (a build takes ~20 s);
# the gate lists every problem it finds, so each one is checked on its own.
UNSUPPORTED_TESTS = {
    "keyword_arguments": ("test_q1_backward_called",
                          "def test_q1_backward_called(square):\n    import torch\n"
                          "    assert float(square(t=torch.tensor(3.0))) == 9.0", "keyword arguments"),
    "numpy_argument": ("test_q1_grad_value",
                       "def test_q1_grad_value(square):\n    import numpy as np\n"
                       "    assert float(square(np.array(3.0))) == 9.0", "passed a NumPy array to the student's code"),
    "function_in_a_container": ("test_q4_forward",
                                "def test_q4_forward(both):\n    import torch\n"
                                "    assert float(both[0].apply(torch.tensor(3.0))) == 9.0", "not bound to a name"),
    # q2's test reads what q1's answer cell set: both graders would call it stale for students
    "earlier_questions_name": ("test_q2_backward_called",
                               "def test_q2_backward_called(offset):\n    assert offset == 3",
                               "tests may use only names its own cells set"),
}
# Tests in the same master that the secure grader judges as otter run does: calls of the
# student's function and Function, gradients through a call, torch's gradcheck in a hidden test
SUPPORTED_TESTS = {
    "test_q4_upstream_gradient": "def test_q4_upstream_gradient(SQ):\n    import torch\n"
                                 "    assert float(SQ.apply(torch.tensor(3.0))) == 9.0",
    "test_q4_gradcheck": "def test_q4_gradcheck(SQ):\n    import torch\n"
                         "    t = torch.tensor([0.5, 1.5], dtype=torch.float64, requires_grad=True)\n"
                         "    assert torch.autograd.gradcheck(SQ.apply, (t,))",
    "test_q1_x_tracks_gradients": "def test_q1_x_tracks_gradients(square):\n    import torch\n"
                       "    t = torch.tensor(3.0, requires_grad=True)\n    square(t).backward()\n"
                       "    assert float(square(torch.tensor(3.0))) == 9.0 and float(t.grad) == 6.0",
}


@pytest.fixture(scope="module")
def gate_message(tmp_path_factory):
    """The build error for a master with every unsupported test above and a solution that
    imports os (which the source screen flags)."""
    root, nb = _master_copy(tmp_path_factory.mktemp("gate"))
    index = next(i for i, c in enumerate(nb.cells) if "x = torch.tensor(2.0, requires_grad=True)  # SOLUTION" in c.source)
    nb.cells[index].source += "\ndef square(t):\n    return t ** 2\nimport os\noffset = 3\n"
    sq = next(i for i, c in enumerate(nb.cells) if "class SQ(" in c.source)
    nb.cells[sq].source += "\nboth = [SQ, SQ]\n"
    for name, source, _ in UNSUPPORTED_TESTS.values():
        _replace_test(nb, name, source)
    for name, source in SUPPORTED_TESTS.items():
        _replace_test(nb, name, source)
    return _build_error(root, nb)


@pytest.mark.parametrize("construct", sorted(UNSUPPORTED_TESTS))
def test_gate_refuses_each_unsupported_construct(gate_message, construct):
    name, _, words = UNSUPPORTED_TESTS[construct]
    assert "secure grader does not give the solution full marks" in gate_message
    problem = next(part for part in gate_message.split("; ") if f", {name}: " in part)
    assert words in problem and "question q" in problem


@pytest.mark.parametrize("name", sorted(SUPPORTED_TESTS))
def test_gate_accepts_calls_of_the_students_code(gate_message, name):
    assert f", {name}: " not in gate_message


def test_gate_refuses_a_solution_the_screen_flags(gate_message):
    assert "source screen flags the solution" in gate_message and "`os`" in gate_message
    assert "allow:" in gate_message
