"""Shared paths and fixtures for the test suite."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
FIXTURES = TESTS / "fixtures"
LAB = "differentiation"
AUTOGRADER_ZIP = ROOT / "dist" / LAB / "autograder.zip"
SOLUTION = ROOT / "dist" / LAB / "autograder" / f"{LAB}.ipynb"
TEMPLATE = ROOT / "student_templates" / LAB / f"{LAB}.ipynb"
SAMPLES = ROOT / "assignments" / LAB / "samples" / "canvas_submissions"
CORPUS = FIXTURES / "corpus"

if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))


def _readable_notebooks(paths):
    from autograder.grade.submission import InvalidSubmission, read_cells

    good = []
    for path in paths:
        try:
            read_cells(path.read_bytes())
        except InvalidSubmission:
            continue   # the samples hold a deliberately damaged file
        good.append(path)
    return good


# Every honest notebook in the repo: the corpus, the demo samples, the template and solution.
HONEST_NOTEBOOKS = _readable_notebooks(sorted(CORPUS.glob("*.ipynb")) + sorted(SAMPLES.glob("*.ipynb"))
                                       + [TEMPLATE, SOLUTION])


OTTER = Path(sys.executable).parent / "otter"


def otter_run(autograder_zip: Path, notebook: Path, workdir: Path, timeout: float = 120) -> dict:
    """`otter run` on one submission in its own folder: its results.json, or {"error": why}."""
    workdir.mkdir(parents=True)
    shutil.copyfile(notebook, workdir / notebook.name)
    out = workdir / "out"
    out.mkdir()
    cmd = [str(OTTER), "run", "-a", str(autograder_zip), "-o", str(out), notebook.name]
    try:
        proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"otter run timed out after {timeout} s"}
    results = out / "results.json"
    if proc.returncode != 0 or not results.is_file():
        return {"error": f"otter run exited with {proc.returncode} and "
                         f"{'no' if not results.is_file() else 'a'} results.json\n"
                         f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"}
    return json.loads(results.read_text(encoding="utf-8"))
