"""Grade the corpus of realistic student submissions with `otter run` and compare.

The corpus (tests/fixtures/corpus/*.ipynb) and its expected scores and hints
(tests/fixtures/corpus/expected.json) are written by tests/fixtures/make_corpus.py, where every
expected score is worked out from the test files' points and the checks' logic. This file builds
nothing: it needs dist/differentiation/autograder.zip from `autograder build differentiation`
(the Makefile builds before it tests).

All submissions are graded once per module, two at a time (otter run takes a few seconds each).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import OTTER, otter_run

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "fixtures" / "corpus"
MAKE_CORPUS = ROOT / "tests" / "fixtures" / "make_corpus.py"
AUTOGRADER_ZIP = ROOT / "dist" / "differentiation" / "autograder.zip"
OTTER_TIMEOUT = 120  # seconds per submission
WORKERS = 2

QUESTIONS = [f"q{n}" for n in range(1, 9)]
MAX_SCORES = {"q1": 2, "q2": 2, "q3": 2, "q4": 4, "q5": 3, "q6": 2, "q7": 2, "q8": 3}
EXPECTED: dict[str, dict] = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))
NAMES = sorted(EXPECTED)


def _grade(name: str, workdir: Path) -> dict:
    """Run otter on one submission in its own folder; its per-question tests, or what went wrong."""
    data = otter_run(AUTOGRADER_ZIP, CORPUS / name, workdir, OTTER_TIMEOUT)
    if "error" in data:
        return data
    return {"tests": {t["name"]: t for t in data["tests"] if t.get("name") in QUESTIONS}}


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict[str, dict]:
    if not AUTOGRADER_ZIP.is_file():
        pytest.fail(f"{AUTOGRADER_ZIP} is missing: run `autograder build differentiation` "
                    f"(or `make build`) first.")
    if not OTTER.is_file():
        pytest.fail(f"{OTTER} is missing: install the project into the venv (`make venv`).")
    base = tmp_path_factory.mktemp("otter_corpus")
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = {name: pool.submit(_grade, name, base / Path(name).stem) for name in NAMES}
        return {name: future.result() for name, future in futures.items()}


def _tests(graded: dict, name: str) -> dict:
    result = graded[name]
    if "error" in result:
        pytest.fail(f"{name}: {result['error']}")
    missing = [q for q in QUESTIONS if q not in result["tests"]]
    assert not missing, f"{name}: results.json has no entry for {missing}"
    return result["tests"]


@pytest.mark.parametrize("name", NAMES)
def test_scores_match_expected(graded, name):
    tests = _tests(graded, name)
    got = {q: tests[q]["score"] for q in QUESTIONS}
    want = {q: EXPECTED[name][q] for q in QUESTIONS}
    assert got == want, (
        f"{name}: per-question scores differ (otter got / expected):\n"
        + "\n".join(f"  {q}: {got[q]} / {want[q]}" for q in QUESTIONS if got[q] != want[q])
        + "\n\n" + "\n\n".join(tests[q]["output"] for q in QUESTIONS if got[q] != want[q]))
    assert {q: tests[q]["max_score"] for q in QUESTIONS} == MAX_SCORES
    for q in QUESTIONS:  # full marks must come with otter's all-passed message
        if want[q] == MAX_SCORES[q]:
            assert "All test cases passed" in tests[q]["output"], f"{name} {q}: {tests[q]['output']}"


@pytest.mark.parametrize("name", NAMES)
def test_feedback_contains_hints(graded, name):
    tests = _tests(graded, name)
    missing = {q: hint for q, hint in EXPECTED[name]["hints"].items()
               if hint not in tests[q]["output"]}
    assert not missing, (
        f"{name}: feedback lacks the expected hints:\n"
        + "\n".join(f"  {q}: {hint!r}\n--- {q} output ---\n{tests[q]['output']}"
                    for q, hint in missing.items()))


def test_corpus_and_expected_agree():
    notebooks = sorted(p.name for p in CORPUS.glob("*.ipynb"))
    assert notebooks == NAMES, "corpus notebooks and expected.json list different files"
    for name, entry in EXPECTED.items():
        assert set(entry) == {*QUESTIONS, "hints"}, name
        assert all(0 <= entry[q] <= MAX_SCORES[q] for q in QUESTIONS), name
        for q, hint in entry["hints"].items():
            assert q in QUESTIONS and hint.strip(), (name, q)
            assert entry[q] < MAX_SCORES[q], f"{name}: a hint for {q}, which gets full marks"
        for q in QUESTIONS:
            if entry[q] < MAX_SCORES[q]:
                assert q in entry["hints"], f"{name}: {q} loses points but has no expected hint"
    totals = {name: sum(e[q] for q in QUESTIONS) for name, e in EXPECTED.items()}
    assert totals["solution.ipynb"] == 20 and totals["honest_variants.ipynb"] == 20
    assert totals["template.ipynb"] == 0
    assert sum(0 < t < 20 for t in totals.values()) >= 14, "fewer than 14 wrong submissions"


def test_corpus_is_up_to_date(tmp_path):
    """The committed corpus is exactly what make_corpus.py writes from the current solution."""
    spec = importlib.util.spec_from_file_location("make_corpus", MAKE_CORPUS)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    if not module.SOLUTION.is_file():
        pytest.fail(f"{module.SOLUTION} is missing: run `autograder build differentiation` first.")
    module.write_corpus(tmp_path)
    fresh = sorted(p.name for p in tmp_path.iterdir())
    committed = sorted(p.name for p in CORPUS.iterdir() if p.suffix in (".ipynb", ".json"))
    assert fresh == committed
    stale = [n for n in fresh if (tmp_path / n).read_bytes() != (CORPUS / n).read_bytes()]
    assert not stale, (f"{stale} differ from what tests/fixtures/make_corpus.py writes now: "
                       f"rerun it (the solution notebook or the generator changed)")


# --- parity: the secure grader gives the same per-question scores as `otter run` ------------


@pytest.fixture(scope="module")
def secure(tmp_path_factory) -> dict[str, dict[str, float]]:
    from autograder.grade import Limits, grade_batch

    out = tmp_path_factory.mktemp("secure_corpus")
    summary = grade_batch(AUTOGRADER_ZIP, [CORPUS], out, limits=Limits(question_timeout=10, timeout=60),
                          progress=False)
    return {r.file: {"points": {q.name: q.points for q in r.questions},
                     "hints": {q.name: " ".join(t.hint for t in q.tests) for q in r.questions}}
            for r in summary.results}


@pytest.mark.parametrize("name", NAMES)
def test_secure_grader_matches_otter_run(name, graded, secure):
    otter = {q: float(t["score"]) for q, t in _tests(graded, name).items()}
    assert secure[name]["points"] == otter, f"{name}: autograder grade {secure[name]['points']} vs otter run {otter}"


@pytest.mark.parametrize("name", NAMES)
def test_secure_grader_gives_the_expected_hints(name, secure):
    missing = {q: hint for q, hint in EXPECTED[name]["hints"].items() if hint not in secure[name]["hints"][q]}
    assert not missing, f"{name}: {missing}\n" + "\n".join(secure[name]["hints"][q] for q in missing)
