"""`autograder new LAB`: a master notebook that builds as it is, to start a lab from.

It holds the assignment config the build requires (exception-style tests, the checks module
shipped beside the notebook), the first cell students run, the set-up cell, and one example
question in each test style: the checks module (autograd-aware, with a hidden value check) and
plain otter asserts.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_raw_cell

from ..errors import UserError
from .build import stable_cell_ids

_NAME = re.compile(r"[a-z][a-z0-9_]{0,40}")

CONFIG = """# ASSIGNMENT CONFIG
name: {lab}
init_cell: false
check_all_cell: false
export_cell:
  pdf: false
  instructions: "Upload the zip file this cell makes (or this notebook itself) to your course's assignment page."
files:
  - autograd_checks.py
tests:
  files: true
  ok_format: false"""

FIRST_CELL = """# Run this cell first: it starts the checker for this notebook.
import otter
import autograd_checks  # lets the checks tell a gradient computed by autograd from a hand-typed one
grader = otter.Notebook(tests_dir="tests")"""


def _cells(lab: str) -> list:
    raw, md, code = new_raw_cell, new_markdown_cell, new_code_cell
    return [
        raw(CONFIG.format(lab=lab)),
        md(f"# {lab.replace('_', ' ').title()}\n\nWhat students learn in this lab, in two or three sentences."),
        code(FIRST_CELL),
        md("## Preparation"),
        code("import torch"),
        # --- a question checked with the checks module
        raw("# BEGIN QUESTION\nname: q1\npoints: [0.5, 0.5, 1.0]"),
        md("**Exercise 1.** Create `x` holding 3.0 and tracking gradients, compute `y` $= x^3$ and call\n"
           "`backward()` on `y`. Afterwards `x.grad` holds $dy/dx$ at $x = 3$."),
        raw("# BEGIN SOLUTION"),
        code("x = torch.tensor(3.0, requires_grad=True)  # SOLUTION\ny = x ** 3  # SOLUTION\n"
             "y.backward()  # SOLUTION NO PROMPT"),
        raw("# END SOLUTION"),
        raw("# BEGIN TESTS"),
        code('def test_q1_x(env):\n    import autograd_checks as ac\n'
             '    ac.check_tensor(env, "x", requires_grad=True, leaf=True, shape=())'),
        code('def test_q1_backward(env):\n    import autograd_checks as ac\n'
             '    ac.check_backward_called(env, "x", of="y")'),
        code('# HIDDEN\ndef test_q1_grad_value(env):\n    import autograd_checks as ac\n'
             '    # the reference is a function of the student\'s inputs, evaluated in float64\n'
             '    ac.check_grad_value(env, "x", of="y", reference=lambda x: x ** 3, at={"x": 3.0})'),
        raw("# END TESTS"),
        raw("# END QUESTION"),
        # --- a question with plain otter tests
        raw("# BEGIN QUESTION\nname: q2\npoints: [0.5, 1.5]"),
        md("**Exercise 2.** For $y = e^{2x}$ at $x = 0.5$, let autograd find $dy/dx$ and store it as a\n"
           "Python float named `slope` (`x.grad.item()` gives one)."),
        raw("# BEGIN SOLUTION"),
        code("x = torch.tensor(0.5, requires_grad=True)  # SOLUTION\ny = torch.exp(2 * x)  # SOLUTION\n"
             "y.backward()  # SOLUTION NO PROMPT\nslope = x.grad.item()  # SOLUTION"),
        raw("# END SOLUTION"),
        raw("# BEGIN TESTS"),
        code('def test_q2_slope_is_a_float(slope):\n'
             '    assert isinstance(slope, float), "`slope` should be a Python float: use x.grad.item()"'),
        code('# HIDDEN\ndef test_q2_slope_value(slope):\n    import math\n'
             '    assert abs(slope - 2 * math.exp(1.0)) < 1e-4, "`slope` is not dy/dx at x = 0.5"'),
        raw("# END TESTS"),
        raw("# END QUESTION"),
        md("## Submit\n\nSave the notebook, run the export cell below and upload what it makes."),
    ]


def new_lab(lab: str, *, root: Path) -> Path:
    """Write assignments/LAB/LAB.ipynb (and requirements.txt); refuse to overwrite anything."""
    if not _NAME.fullmatch(lab):
        raise UserError(f"lab name {lab!r}: use lower-case letters, digits and _ (starting with a letter)")
    folder = Path(root) / "assignments" / lab
    if folder.exists():
        raise UserError(f"{folder} already exists: pick another name or edit that lab")
    folder.mkdir(parents=True)
    nb = new_notebook(cells=_cells(lab), metadata={
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"}})
    stable_cell_ids(nb)
    path = folder / f"{lab}.ipynb"
    nbformat.write(nb, path)
    (folder / "requirements.txt").write_text("torch>=2.1\n")
    return path
