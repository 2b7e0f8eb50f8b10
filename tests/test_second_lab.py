"""The second lab (assignments/linear_regression), written the way a course author writes one:
checks-module tests beside plain otter tests (asserts, isinstance, name injection, NumPy, dicts
of floats, torch.nn modules, a second derivative, an autograd Function of two inputs). Its solution and wrong submissions are
graded by `otter run` and by `autograder grade` with the same zip: both must agree on every
question of every submission, and on the scores worked out by hand below.

The wrong submissions are the solution with realistic mistakes typed in (EDITS). The expected
points come from the test cells: every test of this lab is worth 0.5.
"""

from __future__ import annotations

import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from conftest import ROOT, otter_run

LAB = "linear_regression"
ZIP = ROOT / "dist" / LAB / "autograder.zip"
QUESTIONS = [f"q{n}" for n in range(1, 9)]

# submission -> [(text in the solution, what the student typed instead)]
EDITS = {
    "mean_vs_sum_and_signs": [
        ("loss = ((w * X + b - Y) ** 2).mean()", "loss = ((w * X + b - Y) ** 2).sum()"),
        ("w_next = w - lr * w.grad", "w_next = w + lr * w.grad"),
        ("b_next = b - lr * b.grad", "b_next = b + lr * b.grad"),
        ("(dy,) = torch.autograd.grad(y, x, create_graph=True)", "(dy,) = torch.autograd.grad(y, x)"),
        ("out = layer(Xb).sum()", "out = layer(Xb).mean()"),
        ('grads = {"w": w.grad.item(), "b": b.grad.item()}', 'grads = {"w": w.grad, "b": b.grad}'),
        ("slopes = xs.grad.numpy()", "slopes = torch.cos(xs).detach().numpy()"),
        ("return ((w * X + b - Y) ** 2).mean()", "return ((w * X + b - Y) ** 2).sum()"),
    ],
    "structure_mistakes": [
        ("w = torch.tensor(0.5, requires_grad=True)", "w = torch.tensor(0.5)"),
        ("with torch.no_grad():\n    w_next", "if True:\n    w_next"),
        ("y = x ** 4", "y = x ** 3"),
        ("layer = torch.nn.Linear(2, 1)", "layer = torch.nn.Linear(2, 2)"),
        ('grads = {"w": w.grad.item(), "b": b.grad.item()}', 'grads = {"weight": 1.0, "bias": 2.0}'),
        ("torch.sin(xs).sum().backward()  # SOLUTION\nslopes = xs.grad.numpy()", "slopes = xs.detach().numpy()"),
        ("return grad_output * b, grad_output * a", "return grad_output * a, grad_output * b"),
        ("return ((w * X + b - Y) ** 2).mean()", "return ((w * X + b - Y) ** 2).mean().item()"),
    ],
    "state_mistakes": [
        ("loss.backward()", "loss.backward(retain_graph=True)\nloss.backward()"),
        ("out.backward()", "pass"),
        ('grads = {"w": w.grad.item(), "b": b.grad.item()}', "grads = [w.grad.item(), b.grad.item()]"),
        ("slopes = xs.grad.numpy()", "slopes = xs.grad"),
        ("return grad_output * b, grad_output * a", "return b, a"),
        ("return ((w * X + b - Y) ** 2).mean()", "return ((w.detach() * X + b - Y) ** 2).mean()"),
    ],
}
# worked out from the test cells (0.5 a test); "blank" is the student notebook as handed out,
# where only the given `lr = 0.1` line of q2 passes its test
EXPECTED = {
    "solution": {"q1": 3.0, "q2": 3.0, "q3": 2.5, "q4": 2.5, "q5": 2.0, "q6": 2.0, "q7": 2.5, "q8": 2.0},
    # q7's class is all `...`: forward returns None, so even the first check fails
    # q8's mse returns None: no test passes
    "blank": {"q1": 0.0, "q2": 0.5, "q3": 0.0, "q4": 0.0, "q5": 0.0, "q6": 0.0, "q7": 0.0, "q8": 0.0},
    # q1: the sum's gradients fail both value tests; q2: both steps wrong; q3: dy has no graph,
    # d2 never set, only x and dy's value pass; q4: the mean's gradients are wrong; q5: tensors,
    # not floats, of the wrong gradients; q6: the slopes typed by hand are right, and the
    # backward() that still runs fills xs.grad (a plain test cannot tell); q8: the sum is a
    # tracked number, but neither its value nor its gradients are the mean's
    "mean_vs_sum_and_signs": {"q1": 2.0, "q2": 2.0, "q3": 1.0, "q4": 1.5, "q5": 0.5, "q6": 2.0, "q7": 2.5,
                              "q8": 1.0},
    # q1: w does not track (its check and the backward check fail), b's gradient is right;
    # q2: w.grad is None, the step raises, only lr passes; q3: x**3 gives the wrong values;
    # q4: 2 outputs, the broadcast weight.grad still matches, bias.grad.item() raises;
    # q5: wrong keys, float values; q6: no backward: only xs and the array's type pass
    # q7: each input gets the other's gradient: it runs and forward is right (1.0), both
    # gradchecks fail; q8: .item() returns a float: only its value passes
    "structure_mistakes": {"q1": 1.5, "q2": 0.5, "q3": 1.5, "q4": 1.5, "q5": 0.5, "q6": 1.0, "q7": 1.0,
                           "q8": 0.5},
    # q1: backward twice doubles the gradients (the value checks and the plain b test fail;
    # that a pass happened is still true);
    # q2: steps from doubled gradients; q4: no backward; q5: a list; q6: a tensor whose
    # values np.allclose still accepts
    # q7: backward ignores grad_output: it runs and forward is right (1.0)
    # q8: w is detached: a tensor of the right value, but w gets no gradient (and with b not
    # tracking, the result does not track either)
    "state_mistakes": {"q1": 2.0, "q2": 2.0, "q3": 2.5, "q4": 1.0, "q5": 0.0, "q6": 1.5, "q7": 1.0,
                       "q8": 1.0},
}


def _submissions(folder: Path) -> dict[str, Path]:
    solution = next((ROOT / "dist" / LAB / "autograder").glob("*.ipynb"))
    paths = {"solution": folder / "solution.ipynb", "blank": folder / "blank.ipynb"}
    shutil.copy(solution, paths["solution"])
    shutil.copy(ROOT / "student_templates" / LAB / f"{LAB}.ipynb", paths["blank"])
    for name, edits in EDITS.items():
        nb = nbformat.read(solution, as_version=4)
        for old, new in edits:
            cells = [c for c in nb.cells if c.cell_type == "code" and old in c.source]
            assert len(cells) == 1, f"{name}: {old!r} is in {len(cells)} cells"
            cells[0].source = cells[0].source.replace(old, new)
        paths[name] = folder / f"{name}.ipynb"
        nbformat.write(nb, paths[name])
    return paths


def _otter(path: Path, workdir: Path) -> dict[str, float]:
    data = otter_run(ZIP, path, workdir, timeout=180)
    assert "error" not in data, data.get("error")
    return {t["name"]: float(t["score"]) for t in data["tests"] if t.get("name") in QUESTIONS}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    from autograder.grade.batch import grade_batch

    tmp = tmp_path_factory.mktemp("lab2")
    subs = tmp / "subs"
    subs.mkdir()
    paths = _submissions(subs)
    with ThreadPoolExecutor(2) as pool:
        otter = dict(zip(paths, pool.map(lambda kv: _otter(kv[1], tmp / "otter" / kv[0]), paths.items())))
    summary = grade_batch(ZIP, [subs], tmp / "out", progress=False)
    secure = {Path(r.file).stem: {q.name: q.points for q in r.questions} for r in summary.results}
    return otter, secure, {Path(r.file).stem: r for r in summary.results}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_both_graders_give_the_hand_worked_scores(graded, name):
    otter, secure, _ = graded
    assert secure[name] == EXPECTED[name]
    assert otter[name] == EXPECTED[name]


def test_no_submission_is_flagged_or_graded_abnormally(graded):
    _, _, results = graded
    for name, result in results.items():
        assert not result.flagged, (name, [f.describe() for f in result.findings])
        assert result.status == "graded" and all(q.graded_normally for q in result.questions), name


def test_tests_that_raise_on_student_data_reach_staff_not_students(graded):
    _, _, results = graded
    errors = {(q, t) for q, t, _ in results["structure_mistakes"].test_errors}
    assert ("q4", "test_q4_bias_grad") in errors     # bias.grad.item() of a 2-element gradient
    assert ("q8", "test_q8_gradients") in errors     # .backward() of the float mse returned
    for result in results.values():
        for q in result.questions:
            for t in q.tests:
                # the student's own cell error may be named ("stopped with an error (RuntimeError)"),
                # an error of the test itself never
                hint = re.sub(r"stopped with an error \(\w+\)", "", t.hint)
                assert "Error" not in hint, (result.file, t.name, t.hint)


def test_the_test_suite_is_big_enough():
    """The parity corpus: at least 30 tests over at least 6 questions."""
    from autograder.grade.autograder_zip import load_autograder

    autograder = load_autograder(ZIP)
    try:
        cases = sum(len(q.test_file().test_cases) for q in autograder.questions)
        assert len(autograder.questions) >= 6 and cases >= 30
    finally:
        autograder.cleanup()
