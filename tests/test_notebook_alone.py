"""The student notebook as the only file a student has (downloaded alone from the LMS, or on Colab).

A fresh folder holds nothing but the notebook; its kernel runs in a fresh venv that has what
Colab has (torch, numpy, matplotlib, IPython) but not otter-grader, not this project and no
autograd_checks. The notebook's first cell must install otter-grader, unpack its own checks and
public tests, and every check and the export must then work. The exported zip is graded by the
secure grader as a student's upload would be.

The venv borrows the project venv's packages through a .pth file pointing at a folder of links
to them, leaving out otter-grader and this project (a venv's own .pth files are not read from
such a folder, so the editable install of `autograder` is not visible either). Installing torch
afresh would add a minute and test nothing of ours.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import nbformat
import pytest
from conftest import AUTOGRADER_ZIP, LAB, SOLUTION
from nbclient import NotebookClient
from test_notebooks_kernel import _text   # a cell's outputs as text

# what the fresh venv must not see: otter-grader, this project, pip's own (the venv has its own)
LEFT_OUT = re.compile(r"^(otter|otter_grader|autograder|__editable__|_distutils_hack|pip|setuptools|pkg_resources)\b"
                      r"|\.pth$|^autograd_checks", re.I)


@pytest.fixture(scope="module")
def fresh_kernel(tmp_path_factory):
    """(kernel name, JUPYTER_PATH, python) of a fresh venv without otter-grader."""
    root = tmp_path_factory.mktemp("alone")
    venv = root / "venv"
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    borrowed = root / "borrowed"
    borrowed.mkdir()
    site = Path(sysconfig.get_paths()["purelib"])
    for entry in site.iterdir():
        if not LEFT_OUT.search(entry.name):
            (borrowed / entry.name).symlink_to(entry)
    fresh_site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                     check=True, capture_output=True, text=True).stdout.strip())
    (fresh_site / "borrowed.pth").write_text(f"{borrowed}\n")
    probe = subprocess.run([str(python), "-c", "import importlib.util as u; import torch, ipykernel; "
                            "print([m for m in ('otter', 'autograd_checks', 'autograder') if u.find_spec(m)])"],
                           capture_output=True, text=True, cwd=root)
    assert probe.returncode == 0 and probe.stdout.strip() == "[]", probe.stdout + probe.stderr
    spec = root / "jupyter" / "kernels" / "alone"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "fresh venv", "language": "python"}))
    return "alone", str(root / "jupyter"), python


def test_the_notebook_alone_installs_otter_unpacks_its_checks_and_exports(fresh_kernel, tmp_path, monkeypatch):
    kernel, jupyter_path, python = fresh_kernel
    monkeypatch.setenv("JUPYTER_PATH", jupyter_path)
    folder = tmp_path / "Downloads"
    folder.mkdir()
    notebook = folder / f"{LAB}.ipynb"
    nb = nbformat.read(SOLUTION, as_version=4)   # a student's finished notebook
    nbformat.write(nb, notebook)   # the export cell zips the file on disk
    client = NotebookClient(nb, timeout=240, kernel_name=kernel, allow_errors=True,
                            resources={"metadata": {"path": str(folder)}})
    client.execute()

    setup = next(c for c in nb.cells if c.cell_type == "code")
    assert "Installing otter-grader" in _text(setup), _text(setup)
    assert not any(o["output_type"] == "error" for o in setup.outputs), _text(setup)
    errors = [_text(c) for c in nb.cells if c.cell_type == "code" and any(o["output_type"] == "error" for o in c.outputs)]
    assert errors == [], errors
    checks = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith("grader.check(")]
    assert len(checks) == 8
    for cell in checks:
        assert "All test cases passed!" in _text(cell), (cell.source, _text(cell))
    installed = subprocess.run([str(python), "-c", "import otter; print(otter.__version__)"],
                               capture_output=True, text=True)
    assert installed.stdout.strip() == "7.0.0", installed.stderr
    assert (folder / ".autograd_lab" / LAB / "autograd_checks.py").is_file()

    export = _text(nb.cells[[i for i, c in enumerate(nb.cells) if "grader.export(" in c.source][0]])
    assert "Your submission received the following results" in export, export
    assert "All test cases passed!" in export and "failed" not in export.lower(), export
    zips = sorted(folder.glob(f"{LAB}_*.zip"))
    assert len(zips) == 1, sorted(p.name for p in folder.iterdir())

    # the student's upload, graded by the secure grader: the first cell is replaced, not run
    from autograder.grade.batch import grade_solution
    from autograder.results import GRADED
    with zipfile.ZipFile(zips[0]) as archive:
        uploaded = tmp_path / "uploaded.ipynb"
        uploaded.write_bytes(archive.read(f"{LAB}.ipynb"))
    result = grade_solution(AUTOGRADER_ZIP, uploaded)
    assert result.status == GRADED and not result.findings, (result.status_text, result.findings)
    assert result.points == pytest.approx(result.max_points) and result.max_points > 0


def test_the_packed_files_are_the_student_folders_public_files():
    """The first cell carries exactly what otter assign wrote beside the student notebook (no
    hidden test, no solution), so embedding gives a student nothing the folder did not."""
    import base64
    import io

    from conftest import ROOT, TEMPLATE
    nb = nbformat.read(TEMPLATE, as_version=4)
    setup = next(c for c in nb.cells if c.cell_type == "code")
    packed = re.search(r"_autograd_lab_setup\('[^']+', '[^']+', '([A-Za-z0-9+/=]+)'\)", setup.source).group(1)
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(packed))) as archive:
        carried = {name: archive.read(name) for name in archive.namelist()}
    folder = ROOT / "student_templates" / LAB
    on_disk = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*")
               if p.is_file() and p.suffix != ".ipynb"}
    assert carried == on_disk
    tests = [name for name in carried if name.startswith("tests/")]
    assert tests and all(b"hidden=True" not in carried[name] for name in tests)
    assert b"hidden=True" in (ROOT / "dist" / LAB / "autograder" / "tests" / "q1.py").read_bytes()   # the check can fail
    assert setup.metadata.get("jupyter", {}).get("source_hidden") is True
    assert setup.source.startswith("#@title ") and setup.metadata.get("cellView") == "form"
