"""Shared paths and fixtures for the test suite."""

from __future__ import annotations

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
