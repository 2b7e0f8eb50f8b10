"""Run the solution and the untouched student template in a real Jupyter kernel, as a student
would, and look at what every `grader.check("qN")` cell prints.

Each notebook runs in a temporary copy of student_templates/differentiation/, so that
`import autograd_checks` and the public tests in tests/ resolve exactly as for a student.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
STUDENT_DIR = ROOT / "student_templates" / "differentiation"
TEMPLATE = STUDENT_DIR / "differentiation.ipynb"
SOLUTION = ROOT / "dist" / "differentiation" / "autograder" / "differentiation.ipynb"
QUESTIONS = [f"q{n}" for n in range(1, 9)]
CHECK = re.compile(r'^\s*grader\.check\("(q\d+)"\)\s*$')

# What autograd_checks says about each question of the untouched template.
TEMPLATE_MESSAGES = {
    "q1": "`x` is still `...`", "q2": "`x` is still `...`", "q3": "`x` is still `...`",
    "q4": "Calling SQ.apply(t)", "q5": "`u` is still `...`",
    "q6": "`x` is still `...`", "q7": "`x` is still `...`", "q8": "`u` is still `...`",
}


def _execute(notebook: Path, tmp_path: Path) -> nbformat.NotebookNode:
    for needed in (STUDENT_DIR, notebook):
        if not needed.exists():
            pytest.fail(f"{needed} is missing: run `autograder build differentiation` first.")
    work = tmp_path / "differentiation"
    shutil.copytree(STUDENT_DIR, work)
    nb = nbformat.read(notebook, as_version=4)
    nbformat.write(nb, work / "differentiation.ipynb")  # what the export cell finds on disk
    client = NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(work)}})
    client.execute()
    return nb


def _text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out["output_type"] == "stream":
            parts.append(out["text"])
        elif out["output_type"] in ("execute_result", "display_data"):
            parts.append(out["data"].get("text/plain", ""))
        elif out["output_type"] == "error":
            parts.append("\n".join([f"{out['ename']}: {out['evalue']}", *out["traceback"]]))
    return "\n".join(parts)


def _check_cells(nb) -> dict[str, nbformat.NotebookNode]:
    cells = {}
    for cell in nb.cells:
        m = CHECK.match(cell.source) if cell.cell_type == "code" else None
        if m:
            assert m.group(1) not in cells, f"two check cells for {m.group(1)}"
            cells[m.group(1)] = cell
    assert sorted(cells) == QUESTIONS, f"check cells found: {sorted(cells)}"
    return cells


def test_solution_passes_every_check(tmp_path):
    """Each check cell, and grader.check_all() at the end: later exercises reuse x and y, but
    each question is checked on what its own cells set."""
    nb = nbformat.read(SOLUTION, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("grader.check_all()"))
    solution = tmp_path / "with_check_all.ipynb"
    nbformat.write(nb, solution)
    nb = _execute(solution, tmp_path)
    check_all = _text(nb.cells[-1])
    for q in QUESTIONS:
        assert f"{q} results: All test cases passed!" in check_all, check_all
    errors = [(cell.source, _text(cell)) for cell in nb.cells if cell.cell_type == "code"
              and any(o["output_type"] == "error" for o in cell.get("outputs", []))]
    assert not errors, "the solution raised in a cell:\n" + "\n\n".join(
        f"{src}\n---\n{text}" for src, text in errors)
    for q, cell in _check_cells(nb).items():
        text = _text(cell)
        assert f"{q} results: All test cases passed!" in text, f"{q}:\n{text}"


def test_template_checks_explain_what_is_missing(tmp_path):
    nb = _execute(TEMPLATE, tmp_path)
    for q, cell in _check_cells(nb).items():
        text = _text(cell)
        assert not any(o["output_type"] == "error" for o in cell.outputs), f"{q}:\n{text}"
        assert "Traceback" not in text, f"{q}:\n{text}"
        assert TEMPLATE_MESSAGES[q] in text, f"{q}:\n{text}"
        # every failed case reports the checks' message, once (the same failure repeats as
        # "the same as above"), without the test's code or the exception's name
        failed = text.count("Test case failed")
        assert failed >= 1, f"{q}:\n{text}"
        assert text.count(TEMPLATE_MESSAGES[q]) == 1, f"{q}:\n{text}"
        assert "ac.check_" not in text and "CheckFailed" not in text and "Error at line" not in text, f"{q}:\n{text}"
        # Jupyter shows the HTML: names as code, no raw backticks
        page = "".join(o["data"].get("text/html", "") for o in cell.outputs
                       if o["output_type"] in ("execute_result", "display_data"))
        assert "`" not in page and "checks did not pass" in page, f"{q}:\n{page}"
        assert ("<code>" in page) == ("`" in TEMPLATE_MESSAGES[q]), f"{q}:\n{page}"


def test_each_check_sees_only_what_its_own_cells_set(tmp_path):
    """The stale-state rule in the student's kernel: q2's emptied answer leaves q1's x in place,
    and q2's check says so; q3 sets its own x and passes; the lab's own cells (the SQ demo after
    q4) set names every question may use."""
    nb = nbformat.read(SOLUTION, as_version=4)
    answer = next(c for c in nb.cells if c.cell_type == "code" and "x ** 2 + 2 * x + 1" in c.source)
    answer.source = "# not done yet"
    solution = tmp_path / "partial.ipynb"
    nbformat.write(nb, solution)
    checks = _check_cells(_execute(solution, tmp_path))
    q2 = _text(checks["q2"])
    assert "`x` was not set in this question's cells (it still holds the value from q1)" in q2, q2
    assert "StaleName" not in q2 and "Traceback" not in q2, q2
    for q in ("q1", "q3", "q4", "q5", "q6", "q7", "q8"):
        assert f"{q} results: All test cases passed!" in _text(checks[q]), _text(checks[q])


def test_a_cell_that_raised_is_named_by_the_check(tmp_path):
    """An integer tensor cannot require gradients: q5's u = torch.tensor(1, ...) raises, and its
    check names that error instead of calling u undefined; q2's x = torch.tensor(2, ...) raises
    the same way, and its check says so instead of judging q1's x."""
    nb = nbformat.read(SOLUTION, as_version=4)
    for old, new in (("x = torch.tensor(2.0, requires_grad=True)  # SOLUTION", "x = torch.tensor(2, requires_grad=True)"),
                     ("u = torch.tensor(1.0, requires_grad=True)  # SOLUTION", "u = torch.tensor(1, requires_grad=True)")):
        cells = [c for c in nb.cells if c.cell_type == "code" and old in c.source]
        cells[-1].source = cells[-1].source.replace(old, new)   # x: q2's cell, not q1's
    path = tmp_path / "raises.ipynb"
    nbformat.write(nb, path)
    checks = _check_cells(_execute(path, tmp_path))
    q2, q5 = _text(checks["q2"]), _text(checks["q5"])
    assert ("`x` was not set in this question's cells (it still holds the value from q1): the cell that sets it "
            "stopped with an error (RuntimeError: Only Tensors of floating point") in q2, q2
    assert "`u` was not set: the cell that sets it stopped with an error (RuntimeError: Only Tensors" in q5, q5
    for q in ("q1", "q3", "q4", "q6", "q7"):
        assert f"{q} results: All test cases passed!" in _text(checks[q]), _text(checks[q])


def test_an_exercise_run_before_the_first_cell_is_not_called_hand_made(tmp_path):
    """A student runs q1's cells before the notebook's first cell (which imports the checks):
    the check says the gradient was filled before the checks started, not that it was typed."""
    nb = nbformat.read(SOLUTION, as_version=4)
    first = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "import autograd_checks" in c.source)
    answer = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "y = x ** 2  # SOLUTION" in c.source)
    setup = nb.cells.pop(first)
    nb.cells.insert(answer, setup)   # after q1's answer cell (which moved up by one), before its check
    path = tmp_path / "late_setup.ipynb"
    nbformat.write(nb, path)
    q1 = _text(_check_cells(_execute(path, tmp_path))["q1"])
    assert "`x.grad` was filled before the notebook's first cell ran" in q1, q1
    assert "by hand" not in q1, q1


# Typical mistakes, typed into the solution; each must get its message at its own check cell.
# (question, text in the solution, what the student typed, what the check says)
MISTAKES = {
    "a": [
        ("q1", "y = x ** 2  # SOLUTION\n", "y = x ** 2\ny.backward(retain_graph=True)\n",
         "backward() ran 2 times, so `x.grad` adds up 2 passes"),
        ("q2", "y.backward()  # SOLUTION NO PROMPT", "y.backward()\nx = torch.tensor(3.0)",
         "`x` does not track gradients now, but `y` was computed from a tensor that did"),
        ("q4", "return grad_output * 2 * i", "return i ** 2",
         "torch.autograd.gradcheck finds that SQ.backward() does not match SQ.forward()"),
    ],
    "b": [
        ("q4", "return grad_output * 2 * i", "return 2 * i",
         "torch.autograd.gradcheck finds that SQ.backward() does not match SQ.forward()"),
        ("q6", "Y = x ** 2  # SOLUTION", "Y = x.data ** 2",
         "`Y` has no grad_fn, so autograd cannot differentiate it: it was computed with `x.data`"),
    ],
}


@pytest.mark.parametrize("variant", sorted(MISTAKES))
def test_typical_mistakes_get_their_message_at_their_own_check(tmp_path, variant):
    nb = nbformat.read(SOLUTION, as_version=4)
    for question, old, new, _ in MISTAKES[variant]:
        cells = [c for c in nb.cells if c.cell_type == "code" and old in c.source]
        cell = cells[0] if question != "q2" else cells[1]   # q2's backward line is the second one
        cell.source = cell.source.replace(old, new)
    path = tmp_path / f"mistakes_{variant}.ipynb"
    nbformat.write(nb, path)
    checks = _check_cells(_execute(path, tmp_path))
    mistaken = {q for q, *_ in MISTAKES[variant]}
    for question, _, _, message in MISTAKES[variant]:
        text = _text(checks[question])
        assert message in text and "Traceback" not in text, f"{question}:\n{text}"
    for q in set(QUESTIONS) - mistaken:
        assert f"{q} results: All test cases passed!" in _text(checks[q]), _text(checks[q])
