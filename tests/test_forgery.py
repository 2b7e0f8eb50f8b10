"""Gradients injected through legitimate torch API, and the judge's former gaps, graded in one
batch next to honest twins.

Each attack puts the right number into `x.grad` (or the right answer where the judge did not
look) with code the allowlist permits, so the screen does not flag it: the provenance checks
and the judge must. Graded by the grader as it was before these checks (commit 723a4e2), q1 of
autograd_backward_hand, surrogate_graph, hand_then_zero_pass and constant_function earned the
full 2 points (named_surrogate and seeded_pass 1 of 2), the notebook without q5's check cell
earned 1.5 on q5 from q8's tensors, and the wrong-Y and float64-only-Function solutions earned
20/20. Now none of them earns the points at stake; each honest twin earns full marks.
The tangent-line surrogates (right value and slope at the point, curvature 0) are caught by
the curvature fact the tracker measures along a random direction the judge re-derives.
"""

from __future__ import annotations

import json

import pytest

from conftest import AUTOGRADER_ZIP, SOLUTION, TEMPLATE

X = "x = torch.tensor(2.0, requires_grad=True)\n"

# q1 answer cells: (code, tests of q1 that must fail)
Q1_ATTACKS = {
    "autograd_backward_hand": (X + "y = x ** 2\ntorch.autograd.backward([x], [torch.tensor(4.0)])\n",
                               {"test_q1_backward_called", "test_q1_grad_value"}),
    "surrogate_graph": (X + "y = x ** 2\n(torch.tensor(4.0) * x).sum().backward()\n",
                        {"test_q1_backward_called", "test_q1_grad_value"}),
    "named_surrogate": (X + "y = torch.tensor(2.0) * x\ny.backward()\n", {"test_q1_grad_value"}),
    "seeded_pass": (X + "y = x ** 2 / 2\ny.backward(torch.tensor(2.0))\n",
                    {"test_q1_backward_called", "test_q1_grad_value"}),
    "hand_then_zero_pass": (X + "y = x ** 2\nx.grad = torch.tensor(4.0)\n(x * 0).backward()\n",
                            {"test_q1_backward_called", "test_q1_grad_value"}),
    "constant_function": ("class C(torch.autograd.Function):\n    @staticmethod\n    def forward(ctx, i):\n"
                          "        return i ** 2\n    @staticmethod\n    def backward(ctx, g):\n"
                          "        return g * 0 + 4\n" + X + "y = C.apply(x)\ny.backward()\n",
                          {"test_q1_backward_called", "test_q1_grad_value"}),
    # found by the red team: a hand-made gradient from another root, then a pass from y that adds 0
    "extra_root": (X + "(x * torch.tensor(4.0)).backward()\ny = x * 0 + 4\ny.backward()\n",
                   {"test_q1_grad_value"}),   # y.backward() did run: only the value is forged
    # right value and slope at x = 2, wrong function: the curvature gives them away
    "tangent_line": (X + "y = 4 * x - 4\ny.backward()\n", {"test_q1_grad_value"}),
    "detached_value_plus_slope": (X + "y = (x ** 2).detach() + 4 * (x - x.detach())\ny.backward()\n",
                                  {"test_q1_grad_value"}),
    # the output is no scalar, or no tensor at all: its value and the pass's root are still checked
    "output_reshaped_wrong_value": (X + "y = (x ** 2 + 100).reshape(1)\ny.backward()\n", {"test_q1_grad_value"}),
    "output_rebound_to_a_number": (X + "z = x ** 2\nz.backward()\ny = 4.0\n",
                                   {"test_q1_backward_called", "test_q1_grad_value"}),
    "meta_device": ("x = torch.tensor(2.0, requires_grad=True, device='meta')\ny = x ** 2\ny.backward()\n",
                    {"test_q1_x_tracks_gradients", "test_q1_y_from_x", "test_q1_backward_called",
                     "test_q1_grad_value"}),
}
Q1_HONEST = {
    "plain": X + "y = x ** 2\ny.backward()\n",
    "retain_graph_and_grad": X + "y = x ** 2\ny.backward(retain_graph=True)\nprint(torch.autograd.grad(y, x))\n",
    "unit_seed_tensor": X + "y = x ** 2\ny.backward(torch.tensor(1.0))\n",
    "zeroed_and_again": X + "y = x ** 2\ny.backward(retain_graph=True)\nx.grad.zero_()\ny.backward()\n",
    "product_form": X + "y = x * x\ny.backward()\n",
    "retained_non_leaf": X + "z = x * 1\nz.retain_grad()\ny = z ** 2\ny.backward()\nprint(z.grad)\n",
}
SLY_SQ = '''class SQ(torch.autograd.Function):
    @staticmethod
    def forward(ctx, i):
        ctx.save_for_backward(i)
        return i ** 2 if i.dtype == torch.float64 else i ** 3   # right only on the probe's dtype

    @staticmethod
    def backward(ctx, grad_output):
        (i,) = ctx.saved_tensors
        return grad_output * 2 * i
'''


def _cells(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def _solution():
    return json.loads(SOLUTION.read_text(encoding="utf-8"))


def _with_q1(code: str) -> dict:
    nb = json.loads(TEMPLATE.read_text(encoding="utf-8"))
    cell = next(c for c in _cells(nb) if "".join(c["source"]).lstrip().startswith("# x: a tensor"))
    cell["source"] = code
    return nb


def _replace_cell(nb: dict, starts: str, code: str) -> dict:
    cell = next(c for c in _cells(nb) if starts in "".join(c["source"]))
    cell["source"] = code
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    from autograder.grade import Limits, grade_batch

    folder = tmp_path_factory.mktemp("forgery")
    subs = folder / "subs"
    subs.mkdir()
    notebooks = {f"attack_{k}.ipynb": _with_q1(code) for k, (code, _) in Q1_ATTACKS.items()}
    notebooks.update({f"honest_{k}.ipynb": _with_q1(code) for k, code in Q1_HONEST.items()})
    # q5's check cell deleted: the question is not graded on later questions' u, v, f
    no_check = _solution()
    no_check["cells"] = [c for c in no_check["cells"] if "grader.check(\"q5\")" not in "".join(c["source"])]
    notebooks["gap_deleted_check_cell.ipynb"] = no_check
    # q6's Y wrong while its y and gradient are right: Y's values are checked too
    notebooks["gap_q6_wrong_Y.ipynb"] = _replace_cell(
        _solution(), "torch.linspace(-10, 10, 10, requires_grad=True)",
        "x = torch.linspace(-10, 10, 10, requires_grad=True)\nY = x ** 3\ny = torch.sum(x ** 2)\ny.backward()\n")
    # q6 as a tangent at every point: Y's values and the gradient are right, the curvature is 0
    notebooks["gap_q6_tangent_everywhere.ipynb"] = _replace_cell(
        _solution(), "torch.linspace(-10, 10, 10, requires_grad=True)",
        "x = torch.linspace(-10, 10, 10, requires_grad=True)\nx0 = x.detach()\n"
        "Y = x0 ** 2 + 2 * x0 * (x - x0)\ny = torch.sum(Y)\ny.backward()\n")
    # q8 as a sum of one-variable parts: value, slopes and f_uu, f_vv right; the mixed term is missing
    notebooks["gap_q8_separable.ipynb"] = _replace_cell(
        _solution(), "f = u * v + (u * v) ** 2",
        "u = torch.tensor(2.0, requires_grad=True)\nv = torch.tensor(1.0, requires_grad=True)\n"
        "f = 6 + 5 * (u - 2) + 10 * (v - 1) + (u - 2) ** 2 + 4 * (v - 1) ** 2\nf.backward()\n")
    # a Function right only on float64 inputs (the probe's), wrong as students use it
    notebooks["gap_dtype_sly_function.ipynb"] = _replace_cell(_solution(), "class SQ(", SLY_SQ)
    for name, nb in notebooks.items():
        (subs / name).write_text(json.dumps(nb), encoding="utf-8")
    summary = grade_batch(AUTOGRADER_ZIP, [subs], folder / "out",
                          limits=Limits(question_timeout=5, timeout=30), progress=False)
    return {r.file: r for r in summary.results}


def _failed(result, question: str) -> set[str]:
    return {t.name for t in result.question(question).tests if not t.passed}


@pytest.mark.parametrize("name", sorted(Q1_ATTACKS))
def test_injected_gradient_earns_nothing_for_the_gradient(graded, name):
    r = graded[f"attack_{name}.ipynb"]
    assert not r.flagged, [f.describe() for f in r.findings]   # allowlisted code: the checks decide
    expected = Q1_ATTACKS[name][1]
    assert expected <= _failed(r, "q1"), (name, [(t.name, t.passed, t.hint) for t in r.question("q1").tests])


@pytest.mark.parametrize("name", sorted(Q1_HONEST))
def test_honest_twin_passes(graded, name):
    r = graded[f"honest_{name}.ipynb"]
    q1 = r.question("q1")
    assert q1.points == q1.max_points == 2.0, [(t.name, t.hint) for t in q1.tests]
    assert not r.flagged


def test_deleted_check_cell_is_not_graded_on_later_state(graded):
    r = graded["gap_deleted_check_cell.ipynb"]
    q5 = r.question("q5")
    assert q5.points == 0.0 and q5.status == "check cell missing"
    assert "check cell" in q5.tests[0].hint
    assert all(r.question(q).points == r.question(q).max_points for q in ("q1", "q4", "q6", "q8"))


def test_wrong_Y_loses_the_value_test(graded):
    r = graded["gap_q6_wrong_Y.ipynb"]
    assert _failed(r, "q6") == {"test_q6_grad_value"}
    hint = next(t.hint for t in r.question("q6").tests if t.name == "test_q6_grad_value")
    assert "`Y` does not hold the values" in hint


def test_q6_tangent_everywhere_loses_the_value_test(graded):
    r = graded["gap_q6_tangent_everywhere.ipynb"]
    assert _failed(r, "q6") == {"test_q6_grad_value"}
    hint = next(t.hint for t in r.question("q6").tests if t.name == "test_q6_grad_value")
    assert "changes differently around this point" in hint


def test_q8_without_the_mixed_term_loses_both_value_tests(graded):
    r = graded["gap_q8_separable.ipynb"]
    assert _failed(r, "q8") == {"test_q8_u_grad_value", "test_q8_v_grad_value"}
    assert not r.flagged


def test_function_right_only_on_the_probe_dtype_loses_forward(graded):
    r = graded["gap_dtype_sly_function.ipynb"]
    assert "test_q4_forward" in _failed(r, "q4")


def test_hints_never_state_the_reference_gradient(graded):
    for name, r in graded.items():
        for t in r.question("q1").tests:
            assert "4" not in t.hint.replace("q4", ""), (name, t.hint)   # d(x**2)/dx at 2 is 4


def test_every_file_is_one_row(graded):
    assert len(graded) == len(Q1_ATTACKS) + len(Q1_HONEST) + 5
