"""Unit tests for autograder/autograd_checks.py, the checks of the autograd lab.

Every check is exercised on live objects (as in the student's kernel) and, for a
representative set of situations, on Facts that went through JSON (as in the secure
grader's judge process): both must give the same verdict and the same message.
"""

from __future__ import annotations

import json
import re

import pytest
import torch

from autograder import autograd_checks as ac

# ------------------------------------------------------------------------ helpers


def fails(check, *args, **kwargs) -> str:
    """Run a check that must fail; return its student-facing message."""
    with pytest.raises(ac.CheckFailed) as info:
        check(*args, **kwargs)
    assert isinstance(info.value, AssertionError)
    return str(info.value)


def outcome(check, *args, **kwargs) -> tuple[str, str | None]:
    try:
        check(*args, **kwargs)
    except ac.CheckFailed as exc:
        return "fail", str(exc)
    return "pass", None


def leaf(value, **kwargs) -> torch.Tensor:
    return torch.tensor(value, requires_grad=True, **kwargs)


def run(fn, *leaves, times: int = 1) -> torch.Tensor:
    """Compute fn(*leaves) and call backward() on it `times` times, each on a fresh graph
    (as a student does by re-running the cell that computes y and calls backward)."""
    out = None
    for _ in range(times):
        out = fn(*leaves)
        out.backward()
    return out


def numbers(text: str) -> set[str]:
    return set(re.findall(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", text))


# The exercises of the lab (reference function and point), as in the master notebook.
Q1 = dict(reference=lambda x: x ** 2, at={"x": 2.0})
Q2 = dict(reference=lambda x: x ** 2 + 2 * x + 1, at={"x": 2.0})
Q3 = dict(reference=lambda x: 2 * x ** 3 + x, at={"x": 1.0})
Q5 = dict(reference=lambda u, v: u * v + u ** 2, at={"u": 1.0, "v": 2.0})
Q6 = dict(reference=lambda x: torch.sum(x ** 2), at={"x": torch.linspace(-10, 10, 10)})
Q7 = dict(reference=lambda x: torch.sum(torch.relu(x)), at={"x": torch.linspace(-10, 10, 1000)})
Q8 = dict(reference=lambda u, v: u * v + (u * v) ** 2, at={"u": 2.0, "v": 1.0})


# Custom autograd Functions for exercise 4 (SQ: forward i**2).

class SQ(torch.autograd.Function):  # correct
    @staticmethod
    def forward(ctx, i):
        ctx.save_for_backward(i)
        return i ** 2

    @staticmethod
    def backward(ctx, grad_output):
        (i,) = ctx.saved_tensors
        return grad_output * 2 * i


class SQIgnoresUpstream(torch.autograd.Function):
    @staticmethod
    def forward(ctx, i):
        ctx.save_for_backward(i)
        return i ** 2

    @staticmethod
    def backward(ctx, grad_output):
        (i,) = ctx.saved_tensors
        return 2 * i


class SQWrongBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, i):
        ctx.save_for_backward(i)
        return i ** 2

    @staticmethod
    def backward(ctx, grad_output):
        (i,) = ctx.saved_tensors
        return grad_output * i


class SQWrongForward(torch.autograd.Function):  # doubles, consistently with its backward
    @staticmethod
    def forward(ctx, i):
        ctx.save_for_backward(i)
        return i * 2

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output * 2


class SQReturnsNone(torch.autograd.Function):
    @staticmethod
    def forward(ctx, i):
        ctx.save_for_backward(i)  # forgot the return

    @staticmethod
    def backward(ctx, grad_output):
        (i,) = ctx.saved_tensors
        return grad_output * 2 * i


class SQSums(torch.autograd.Function):
    @staticmethod
    def forward(ctx, i):
        ctx.save_for_backward(i)
        return (i ** 2).sum()

    @staticmethod
    def backward(ctx, grad_output):
        (i,) = ctx.saved_tensors
        return grad_output * 2 * i


class SQForgetsToSave(torch.autograd.Function):
    @staticmethod
    def forward(ctx, i):
        return i ** 2

    @staticmethod
    def backward(ctx, grad_output):
        (i,) = ctx.saved_tensors
        return grad_output * 2 * i


class NotAFunction:
    @staticmethod
    def forward(ctx, i):
        return i ** 2


SQ_REF = dict(reference=lambda t: t ** 2)
FUNCTION_CHECKS = [
    (ac.check_function, {}),
    (ac.check_function_forward, SQ_REF),
    (ac.check_function_gradcheck, {}),
    (ac.check_function_upstream, SQ_REF),
]
FUNCTION_CHECK_IDS = ["function", "forward", "gradcheck", "upstream"]


# ------------------------------------------------------------------- check_tensor


def test_tensor_missing():
    msg = fails(ac.check_tensor, {}, "x")
    assert "`x` is not defined yet" in msg


def test_tensor_still_ellipsis():
    msg = fails(ac.check_tensor, {"x": ...}, "x", requires_grad=True)
    assert "`x` is still `...`" in msg


@pytest.mark.parametrize("value, type_name", [(2.0, "float"), ([2.0], "list"), (2, "int")])
def test_tensor_not_a_tensor(value, type_name):
    msg = fails(ac.check_tensor, {"x": value}, "x", requires_grad=True)
    assert "`x` should be a torch tensor" in msg
    assert f"it is a {type_name}." in msg


def test_tensor_integer_dtype_with_requires_grad():
    msg = fails(ac.check_tensor, {"x": torch.tensor(2)}, "x", requires_grad=True)
    assert "whole numbers (torch.int64)" in msg
    assert "decimal point" in msg


def test_tensor_integer_dtype_fine_without_requires_grad():
    facts = ac.check_tensor({"x": torch.tensor(2)}, "x")
    assert facts.data.dtype == "torch.int64"


def test_tensor_requires_grad_not_set():
    msg = fails(ac.check_tensor, {"x": torch.tensor(2.0)}, "x", requires_grad=True)
    assert "`x` does not track gradients" in msg
    assert "requires_grad=True" in msg


def test_tensor_not_a_leaf():
    x = leaf(2.0) * 1
    msg = fails(ac.check_tensor, {"x": x}, "x", requires_grad=True, leaf=True)
    assert "`x` should be a leaf tensor" in msg
    assert "computed from other tensors" in msg


def test_tensor_non_leaf_fine_when_leaf_not_requested():
    ac.check_tensor({"x": leaf(2.0) * 1}, "x", requires_grad=True)


def test_tensor_wrong_shape():
    msg = fails(ac.check_tensor, {"x": leaf([2.0])}, "x", requires_grad=True, leaf=True, shape=())
    assert "`x` has shape (1,), but this exercise needs shape ()" in msg


def test_tensor_passes_for_correct_leaf():
    facts = ac.check_tensor({"x": leaf(2.0)}, "x", requires_grad=True, leaf=True, shape=())
    assert facts.kind == "tensor" and facts.requires_grad and facts.is_leaf
    assert facts.data.shape == () and facts.data.values == (2.0,)


def test_tensor_passes_for_vector_and_parameter():
    ac.check_tensor({"x": torch.linspace(-10, 10, 10, requires_grad=True)}, "x",
                    requires_grad=True, leaf=True, shape=(10,))
    ac.check_tensor({"x": torch.nn.Parameter(torch.tensor(2.0))}, "x",
                    requires_grad=True, leaf=True, shape=())


# ------------------------------------------------------------- check_computed_from


def test_computed_from_item_gives_python_number():
    x = leaf(2.0)
    msg = fails(ac.check_computed_from, {"x": x, "y": x.item() ** 2}, "y", "x", scalar=True)
    assert "`y` should be a torch tensor, but it is a float" in msg


def test_computed_from_no_grad_fn():
    x = leaf(2.0)
    y = torch.tensor(x.item() ** 2)
    msg = fails(ac.check_computed_from, {"x": x, "y": y}, "y", "x", scalar=True)
    assert "`y` has no grad_fn" in msg
    assert ".item()" in msg


def test_computed_from_detached_has_no_grad_fn():
    x = leaf(2.0)
    msg = fails(ac.check_computed_from, {"x": x, "y": x.detach() ** 2}, "y", "x")
    assert "`y` has no grad_fn" in msg


def test_computed_from_an_old_x():
    old_x = leaf(2.0)
    y = old_x ** 2
    x = leaf(2.0)  # the student re-ran the cell that creates x, but not the one for y
    msg = fails(ac.check_computed_from, {"x": x, "y": y}, "y", "x", scalar=True)
    assert "`y` was not computed from this `x`" in msg
    # the same y does come from the old x
    ac.check_computed_from({"x": old_x, "y": y}, "y", "x", scalar=True)


def test_computed_from_not_scalar():
    x = torch.linspace(-10, 10, 10, requires_grad=True)
    msg = fails(ac.check_computed_from, {"x": x, "Y": x ** 2}, "Y", "x", scalar=True)
    assert "`Y` has shape (10,); backward() needs a single number" in msg
    assert ".sum()" in msg


def test_computed_from_leaf_must_track_gradients():
    x = torch.tensor(2.0)
    msg = fails(ac.check_computed_from, {"x": x, "y": x ** 2}, "y", "x")
    assert "`x` does not track gradients" in msg


def test_computed_from_passes():
    x = leaf(2.0)
    facts = ac.check_computed_from({"x": x, "y": x ** 2 + 2 * x + 1}, "y", "x", scalar=True)
    assert id(x) in facts.reaches and facts.grad_fn is not None
    xs = torch.linspace(-10, 10, 10, requires_grad=True)
    Y = xs ** 2
    env = {"x": xs, "Y": Y, "y": torch.sum(Y)}
    ac.check_computed_from(env, "Y", "x")
    ac.check_computed_from(env, "y", "x", scalar=True)
    u, v = leaf(1.0), leaf(2.0)
    env = {"u": u, "v": v, "f": u * v + u ** 2}
    ac.check_computed_from(env, "f", "u", scalar=True)
    ac.check_computed_from(env, "f", "v", scalar=True)


def test_computed_from_through_custom_function():
    x = leaf(2.0)
    ac.check_computed_from({"x": x, "y": SQ.apply(x)}, "y", "x", scalar=True)


# ----------------------------------------------------------- check_backward_called


def test_backward_grad_none_not_leaf_hints_retain_grad():
    x = leaf(2.0) * 1
    y = x ** 2
    y.backward()
    msg = fails(ac.check_backward_called, {"x": x, "y": y}, "x", of="y")
    assert "`x.grad` is None because `x` is not a leaf tensor" in msg
    assert "x.retain_grad()" in msg


def test_backward_not_called():
    x = leaf(2.0)
    y = x ** 2
    msg = fails(ac.check_backward_called, {"x": x, "y": y}, "x", of="y")
    assert "`x.grad` is None: autograd has not computed it yet" in msg
    assert "Call y.backward() first" in msg


def test_backward_x_does_not_track_gradients():
    msg = fails(ac.check_backward_called, {"x": torch.tensor(2.0)}, "x", of="y")
    assert "`x` does not track gradients" in msg


def test_backward_x_integer():
    msg = fails(ac.check_backward_called, {"x": torch.tensor(2)}, "x", of="y")
    assert "whole numbers" in msg


def test_backward_x_missing_or_not_tensor():
    assert "`x` is not defined yet" in fails(ac.check_backward_called, {}, "x", of="y")
    assert "should be a torch tensor" in fails(ac.check_backward_called, {"x": 4.0}, "x", of="y")


def test_backward_hand_typed_grad():
    x = leaf(2.0)
    x.grad = torch.tensor(4.0)
    msg = fails(ac.check_backward_called, {"x": x}, "x", of="y")
    assert "`x.grad` was set or changed by hand" in msg
    assert "let y.backward() compute the gradient" in msg


def test_backward_hand_typed_grad_after_a_real_backward():
    x = leaf(2.0)
    y = run(lambda x: x ** 2, x)
    x.grad = torch.tensor(4.0)
    assert "set or changed by hand" in fails(ac.check_backward_called, {"x": x, "y": y}, "x", of="y")


def test_backward_hand_typed_grad_not_laundered_by_autograd_grad():
    x = leaf(2.0)
    x.grad = torch.tensor(4.0)
    torch.autograd.grad(x ** 2, x)  # does not accumulate into .grad
    assert "set or changed by hand" in fails(ac.check_backward_called, {"x": x}, "x", of="y")


def test_backward_grad_edited_in_place_under_no_grad():
    x = leaf(2.0)
    y = run(lambda x: x ** 2, x)
    with torch.no_grad():
        x.grad += 1
    msg = fails(ac.check_backward_called, {"x": x, "y": y}, "x", of="y")
    assert "`x.grad` was set or changed by hand" in msg


@pytest.mark.parametrize("edit", [
    lambda g: g.detach().fill_(4),
    lambda g: g.copy_(torch.tensor(4.0)),
    lambda g: g.zero_(),
], ids=["detach-fill", "copy", "zero-without-backward"])
def test_backward_grad_edited_in_place_other_ways(edit):
    x = leaf(2.0)
    y = run(lambda x: x ** 2, x)
    with torch.no_grad():
        edit(x.grad)
    assert "set or changed by hand" in fails(ac.check_backward_called, {"x": x, "y": y}, "x", of="y")


@pytest.mark.parametrize("edit", [
    lambda g: g.data.fill_(4),
    lambda g: setattr(g, "data", torch.tensor(4.0)),
    lambda g: g.numpy().fill(4),
], ids=["data-fill", "data-assign", "numpy-view"])
def test_backward_grad_edited_through_data_is_reported(edit):
    x = leaf(2.0)
    y = run(lambda x: x ** 3, x)  # wrong function: x.grad is 12, q1 wants 4
    edit(x.grad)
    assert float(x.grad) == 4.0
    msg = fails(ac.check_grad_value, {"x": x, "y": y}, "x", of="y", **Q1)
    assert "set or changed by hand" in msg


def test_backward_grad_that_is_not_a_plain_tensor():
    class MyTensor(torch.Tensor):
        pass

    x = leaf(2.0)
    x.grad = torch.tensor(4.0).as_subclass(MyTensor)
    msg = fails(ac.check_backward_called, {"x": x}, "x", of="y")
    assert "`x.grad` is not a tensor" in msg
    assert "calling y.backward()" in msg


def test_backward_honest_passes():
    x = leaf(2.0)
    y = run(lambda x: x ** 2, x)
    facts = ac.check_backward_called({"x": x, "y": y}, "x", of="y")
    assert facts.grad_source == "autograd" and facts.grad.values == (4.0,)


def test_backward_retain_graph_passes():
    x = leaf(2.0)
    y = x ** 2
    y.backward(retain_graph=True)
    ac.check_backward_called({"x": x, "y": y}, "x", of="y")
    ac.check_grad_value({"x": x, "y": y}, "x", of="y", **Q1)


def test_backward_then_extra_autograd_grad_passes():
    x = leaf(2.0)
    y = x ** 2
    y.backward(retain_graph=True)
    (g,) = torch.autograd.grad(y, x)
    assert float(g) == 4.0
    ac.check_backward_called({"x": x, "y": y}, "x", of="y")
    ac.check_grad_value({"x": x, "y": y}, "x", of="y", **Q1)


def test_backward_after_grad_set_to_none_passes():
    x = leaf(2.0)
    y = run(lambda x: x ** 2, x)
    x.grad = None
    y = run(lambda x: x ** 2, x)
    ac.check_backward_called({"x": x, "y": y}, "x", of="y")
    ac.check_grad_value({"x": x, "y": y}, "x", of="y", **Q1)


def test_backward_after_zero_grad_passes():
    x = leaf(2.0)
    y = run(lambda x: x ** 2, x)
    x.grad.zero_()
    y = run(lambda x: x ** 2, x)
    ac.check_backward_called({"x": x, "y": y}, "x", of="y")
    ac.check_grad_value({"x": x, "y": y}, "x", of="y", **Q1)


@pytest.mark.parametrize("how", ["functional", "inputs", "parameter", "custom-function"])
def test_backward_other_honest_ways_pass(how):
    x = torch.nn.Parameter(torch.tensor(2.0)) if how == "parameter" else leaf(2.0)
    y = SQ.apply(x) if how == "custom-function" else x ** 2
    if how == "functional":
        torch.autograd.backward(y)
    elif how == "inputs":
        y.backward(inputs=[x])
    else:
        y.backward()
    allowed = ("SQ",) if how == "custom-function" else ()   # a question that asks for a Function
    ac.check_backward_called({"x": x, "y": y}, "x", of="y", functions=allowed)
    ac.check_grad_value({"x": x, "y": y}, "x", of="y", **Q1, functions=allowed)


def test_backward_through_a_custom_function_fails_unless_the_question_asks_for_it():
    x = leaf(2.0)
    SQ.apply(x).backward()
    msg = fails(ac.check_backward_called, {"x": x}, "x", of="y")
    assert "your own autograd Function (SQ)" in msg


def test_backward_following_the_retain_grad_hint_is_not_called_hand_edited():
    x = leaf(2.0) * 1
    x.retain_grad()
    y = x ** 2
    y.backward()
    assert float(x.grad) == 4.0
    ac.check_backward_called({"x": x, "y": y}, "x", of="y")


# ---------------------------------------------------------------- check_grad_value


@pytest.mark.parametrize("surrogate", [
    lambda x: 4 * x - 4,                                   # the tangent line at x = 2
    lambda x: (x ** 2).detach() + 4 * (x - x.detach()),   # the value, plus a hand-made slope
], ids=["tangent", "detached-value"])
def test_grad_value_surrogate_with_right_value_and_slope_fails(surrogate):
    x = leaf(2.0)
    y = run(surrogate, x)
    msg = fails(ac.check_grad_value, {"x": x, "y": y}, "x", of="y", **Q1)
    assert "changes differently around this point" in msg
    assert not numbers(msg) - {"2"}   # no reference numbers in the hint


@pytest.mark.parametrize("output", [
    lambda x: (x ** 2 + 100).reshape(1),   # right gradient, wrong value, hidden behind a shape
    lambda x: 4.0,                          # backward ran on another tensor; y is a number
    lambda x: None,                         # y deleted after the pass
], ids=["reshaped", "number", "missing"])
def test_grad_value_checks_the_output_whatever_it_is(output):
    x = leaf(2.0)
    y = output(x)
    (y if isinstance(y, torch.Tensor) else x ** 2 + 100).backward()
    env = {"x": x, "y": y} if y is not None else {"x": x}
    msg = fails(ac.check_grad_value, env, "x", of="y", **Q1)
    if isinstance(y, torch.Tensor):
        assert "`y` has shape (1,)" in msg
    else:
        assert "`y`" in fails(ac.check_backward_called, env, "x", of="y")


def test_grad_value_curvature_is_measured_along_the_recorded_direction():
    x = torch.linspace(-1, 1, 5, requires_grad=True)
    run(lambda x: torch.sum(x ** 3), x)
    facts = ac.observe(x, "x")
    r = ac.curvature_direction(facts.curvature_seed, (5,))
    expected = (6 * x.detach().double() * r).tolist()    # Hessian of sum(x^3) is diag(6x)
    assert facts.grad_curvature == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert ac.reference_curvature(lambda x: torch.sum(x ** 3), {"x": x.detach()}, "x",
                                  facts.curvature_seed, {"x": 0}).tolist() == pytest.approx(expected, rel=1e-9)


def test_grad_value_two_variable_surrogate_without_the_mixed_term_fails():
    # q8 at (2, 1): value 6, slopes 5 and 10, f_uu = 2 and f_vv = 8 all match; f_uv = 9 does not
    u, v = leaf(2.0), leaf(1.0)
    f = run(lambda u, v: 6 + 5 * (u - 2) + 10 * (v - 1) + (u - 2) ** 2 + 4 * (v - 1) ** 2, u, v)
    env = {"u": u, "v": v, "f": f}
    assert "changes differently around this point" in fails(ac.check_grad_value, env, "u", of="f", **Q8)
    assert "changes differently around this point" in fails(ac.check_grad_value, env, "v", of="f", **Q8)
    u2, v2 = leaf(2.0), leaf(1.0)   # the honest function passes, for both variables
    honest = {"u": u2, "v": v2, "f": run(Q8["reference"], u2, v2)}
    ac.check_grad_value(honest, "u", of="f", **Q8)
    ac.check_grad_value(honest, "v", of="f", **Q8)


def test_curvature_pass_leaves_retained_grads_and_hook_results_alone():
    x = leaf(2.0)
    z = x * 3
    z.retain_grad()
    seen = []
    z.register_hook(lambda g: seen.append(float(g.detach())))
    y = z ** 2
    y.backward()
    assert float(z.grad) == 12.0 and float(x.grad) == 36.0   # d(9x^2)/dx at 2, once
    assert 12.0 in seen


def test_grad_value_through_an_allowed_function_is_not_curvature_checked():
    x = leaf(2.0)
    y = SQ.apply(x)
    y.backward()
    facts = ac.check_grad_value({"x": x, "y": y}, "x", of="y", **Q1, functions=("SQ",))
    assert facts.grad_curvature is None and facts.grad_through == ("SQ",)



def test_grad_value_shape_mismatch():
    x = leaf([2.0, 1.0])
    y = run(lambda x: (x ** 2).sum(), x)
    msg = fails(ac.check_grad_value, {"x": x, "y": y}, "x", of="y", **Q1)
    assert "`x.grad` has shape (2,), but `x` should have shape ()" in msg


@pytest.mark.parametrize("fn", [torch.sqrt, torch.log], ids=["sqrt", "log"])
def test_grad_value_nan_or_inf(fn):
    x = leaf(0.0)
    y = run(fn, x)
    msg = fails(ac.check_grad_value, {"x": x, "y": y}, "x", of="y", **Q1)
    assert "`x.grad` contains nan or inf" in msg
    assert "in `y`" in msg


@pytest.mark.parametrize("times", [2, 3, 4])
def test_grad_value_backward_several_times(times):
    x = leaf(2.0)
    y = run(Q2["reference"], x, times=times)
    msg = fails(ac.check_grad_value, {"x": x, "y": y}, "x", of="y", **Q2)
    assert f"backward() ran {times} times" in msg
    assert "right value" not in msg and "is 8" not in msg   # no multiple of the reference
    assert "x.grad = None" in msg


def test_grad_value_backward_twice_vector():
    x = torch.linspace(-10, 10, 10, requires_grad=True)
    y = run(lambda x: torch.sum(x ** 2), x, times=2)
    msg = fails(ac.check_grad_value, {"x": x, "y": y}, "x", of="y", **Q6)
    assert "backward() ran 2 times" in msg
    assert "-40" not in msg   # the student's doubled values are twice the reference: not shown


def test_grad_value_backward_twice_relu():
    x = torch.linspace(-10, 10, 1000, requires_grad=True)
    y = run(lambda x: torch.sum(torch.relu(x)), x, times=2)
    assert "backward() ran 2 times" in fails(ac.check_grad_value, {"x": x, "y": y}, "x", of="y", **Q7)


def test_grad_value_sign_flipped():
    x = leaf(2.0)
    y = run(lambda x: -(x ** 2 + 2 * x + 1), x)
    msg = fails(ac.check_grad_value, {"x": x, "y": y}, "x", of="y", **Q2)
    assert "`x.grad` has the wrong sign" in msg and "Check the signs in `y`" in msg
    assert "6" not in msg   # the student may resubmit: no number that gives the answer away


def test_grad_value_value_instead_of_derivative():
    x = leaf(2.0)
    y = run(lambda x: x ** 3 / 3 + x ** 2 + x, x)  # derivative x^2+2x+1 = 9 = f(2) of q2
    msg = fails(ac.check_grad_value, {"x": x, "y": y}, "x", of="y", **Q2)
    assert "`x.grad` is the value of the function" in msg and "not its derivative" in msg
    assert "9" not in msg


def test_a_partial_equal_to_the_functions_value_by_coincidence_is_not_called_the_value():
    # q8 typed as u*v + u*v**2: dv = u + 2uv = 6 at (2, 1), which is also f(2, 1) of q8
    u, v = leaf(2.0), leaf(1.0)
    f = run(lambda u, v: u * v + u * v ** 2, u, v)
    msg = fails(ac.check_grad_value, {"u": u, "v": v, "f": f}, "v", of="f", **Q8)
    assert "value of the function" not in msg and "not the right derivative" in msg


def test_a_mean_instead_of_the_sum_is_named_without_numbers():
    x = torch.linspace(-10, 10, 10, requires_grad=True)
    Y = x ** 2
    y = Y.mean()
    y.backward()
    msg = fails(ac.check_grad_value, {"x": x, "Y": Y, "y": y}, "x", of="y", **Q6)
    assert "`y` is a mean (.mean())" in msg and "compute `y` with .sum()" in msg
    assert not any(ch.isdigit() for ch in msg)


def test_a_name_assigned_again_after_backward_is_explained():
    x = leaf(2.0)
    y = run(lambda x: x ** 2, x)
    overwritten = torch.tensor(3.0)
    msg = fails(ac.check_tensor, {"x": overwritten, "y": y}, "x", requires_grad=True)
    assert "`x` does not track gradients now, but `y` was computed from a tensor that did" in msg
    again = leaf(3.0)
    msg = fails(ac.check_backward_called, {"x": again, "y": y}, "x", of="y")
    assert "it looks like `x` was assigned again after y.backward()" in msg
    # a tensor that never tracked, and nothing computed from another: the plain message
    msg = fails(ac.check_tensor, {"x": torch.tensor(3.0)}, "x", requires_grad=True)
    assert msg == "`x` does not track gradients. Create it with requires_grad=True."


def test_a_gradient_filled_before_the_checks_were_imported_is_not_called_hand_made():
    x = torch.tensor(2.0, requires_grad=True)
    y = x ** 2
    x.grad = torch.tensor(4.0)   # what an untracked backward() leaves, as far as the tracker can tell
    ac.tracker.filled_before({"x": x})
    msg = fails(ac.check_backward_called, {"x": x, "y": y}, "x", of="y")
    assert "was filled before the notebook's first cell ran" in msg and "by hand" not in msg
    hand = torch.tensor(2.0, requires_grad=True)
    hand.grad = torch.tensor(4.0)
    assert "set or changed by hand" in fails(ac.check_backward_called, {"x": hand, "y": hand ** 2}, "x", of="y")


def test_grad_value_wrong_point():
    x = leaf(3.0)
    y = run(lambda x: x ** 2, x)
    msg = fails(ac.check_grad_value, {"x": x, "y": y}, "x", of="y", **Q1)
    assert "`x.grad` is the right derivative, but at x = 3" in msg
    assert "different point" in msg


def test_grad_value_wrong_point_vector():
    x = torch.linspace(-5, 5, 10, requires_grad=True)
    y = run(lambda x: torch.sum(x ** 2), x)
    msg = fails(ac.check_grad_value, {"x": x, "y": y}, "x", of="y", **Q6)
    assert "right derivative, but at x = [-5, -3.88889" in msg


def test_grad_value_wrong_point_two_variables():
    u, v = leaf(2.0), leaf(2.0)
    f = run(Q5["reference"], u, v)
    msg = fails(ac.check_grad_value, {"u": u, "v": v, "f": f}, "u", of="f", **Q5)
    assert "right derivative, but at u = 2" in msg
    assert "v =" not in msg  # v is at the right value


def test_grad_value_generic_wrong_value():
    x = leaf(2.0)
    y = run(lambda x: x ** 2 + x, x)  # gradient 5, q1 wants 4
    msg = fails(ac.check_grad_value, {"x": x, "y": y}, "x", of="y", **Q1)
    assert "`x.grad` is 5, which is not the right derivative" in msg
    assert "`y` is computed exactly as the exercise says" in msg


def test_grad_value_generic_wrong_value_when_value_equals_derivative():
    # q1 at x=2: y(2) = y'(2) = 4, so a gradient equal to the value would be right; a wrong
    # gradient must not be explained as "the value of the function".
    x = leaf(2.0)
    y = run(lambda x: x ** 2 + 3 * x, x)  # gradient 7
    msg = fails(ac.check_grad_value, {"x": x, "y": y}, "x", of="y", **Q1)
    assert "not the right derivative" in msg and "value of the function" not in msg


def test_grad_value_requires_backward_first():
    x = leaf(2.0)
    assert "has not computed it yet" in fails(ac.check_grad_value, {"x": x}, "x", of="y", **Q1)
    x.grad = torch.tensor(4.0)  # exactly the right value, but typed in
    assert "set or changed by hand" in fails(ac.check_grad_value, {"x": x}, "x", of="y", **Q1)


@pytest.mark.parametrize("spec, env_fn", [
    (Q1, lambda: {"x": leaf(2.0)}),
    (Q2, lambda: {"x": leaf(2.0)}),
    (Q3, lambda: {"x": leaf(1.0)}),
    (Q6, lambda: {"x": torch.linspace(-10, 10, 10, requires_grad=True)}),
    (Q7, lambda: {"x": torch.linspace(-10, 10, 1000, requires_grad=True)}),
], ids=["q1", "q2", "q3", "q6", "q7"])
def test_grad_value_passes_single_variable(spec, env_fn):
    env = env_fn()
    env["y"] = run(spec["reference"], env["x"])
    facts = ac.check_grad_value(env, "x", of="y", **spec)
    assert facts.grad_source == "autograd"


def test_grad_value_q7_relu_values():
    x = torch.linspace(-10, 10, 1000, requires_grad=True)
    y = run(lambda x: torch.sum(torch.relu(x)), x)
    facts = ac.check_grad_value({"x": x, "y": y}, "x", of="y", **Q7)
    assert set(facts.grad.values) == {0.0, 1.0} and len(facts.grad.values) == 1000


@pytest.mark.parametrize("spec, point", [(Q5, (1.0, 2.0)), (Q8, (2.0, 1.0))], ids=["q5", "q8"])
def test_grad_value_passes_two_variables(spec, point):
    u, v = leaf(point[0]), leaf(point[1])
    f = run(spec["reference"], u, v)
    env = {"u": u, "v": v, "f": f}
    ac.check_grad_value(env, "u", of="f", **spec)
    ac.check_grad_value(env, "v", of="f", **spec)
    # a partial derivative of another function is caught, for either variable
    u.grad, v.grad = None, None
    other = run(lambda u, v: u ** 3 + v ** 3, u, v)
    # ... whether `f` is still the exercise's tensor (backward ran on another one) ...
    assert "not computed by calling f.backward() on the `f` you have now" in fails(
        ac.check_grad_value, env, "u", of="f", **spec)
    # ... or `f` itself is the other function
    wrong = {"u": u, "v": v, "f": other}
    assert "`u.grad` is " in fails(ac.check_grad_value, wrong, "u", of="f", **spec)
    assert "`v.grad` is " in fails(ac.check_grad_value, wrong, "v", of="f", **spec)


def test_grad_value_accepts_float32_rounding():
    x = leaf(0.1)
    y = run(lambda x: torch.exp(x) * torch.sin(x), x)
    ac.check_grad_value({"x": x, "y": y}, "x", of="y",
                        reference=lambda x: torch.exp(x) * torch.sin(x), at={"x": 0.1})


def _q1_env(fn, x0=2.0, times=1):
    def build():
        x = leaf(x0)
        return {"x": x, "y": run(fn, x, times=times)}
    return build


@pytest.mark.parametrize("spec, build, expected", [
    (Q1, _q1_env(lambda x: x ** 2 + x), "not the right derivative"),
    (Q1, _q1_env(lambda x: x ** 2, times=2), "2 times"),
    (Q1, _q1_env(lambda x: x ** 2, times=3), "3 times"),
    (Q1, _q1_env(lambda x: x ** 2, x0=3.0), "different point"),
    (Q1, _q1_env(torch.sqrt, x0=0.0), "nan or inf"),
    (Q2, _q1_env(lambda x: x ** 3 / 3 + x ** 2 + x), "value of the function"),
    (Q2, _q1_env(lambda x: x ** 2 + x + 1), "not the right derivative"),
    (Q6, lambda: {"x": torch.linspace(-10, 10, 10, requires_grad=True)}, None),
], ids=["q1-generic", "q1-twice", "q1-thrice", "q1-point", "q1-inf", "q2-value", "q2-generic",
        "q6-twice"])
def test_grad_value_messages_do_not_reveal_reference(spec, build, expected):
    env = build()
    if expected is None:  # q6 backward twice
        env["y"] = run(lambda x: torch.sum(x ** 2), env["x"], times=2)
        expected = "2 times"
    msg = fails(ac.check_grad_value, env, "x", of="y", **spec)
    assert expected in msg
    _, ref_grads = ac.reference_gradients(spec["reference"], spec["at"])
    ref_tokens = {f"{v:g}" for v in ref_grads["x"].reshape(-1).tolist()}
    leaked = ref_tokens & numbers(msg)
    assert not leaked, f"message reveals reference gradient {leaked}: {msg}"


@pytest.mark.parametrize("x0", [4.0, -2.0])
def test_grad_value_wrong_point_not_misdiagnosed(x0):
    x = leaf(x0)
    y = run(lambda x: x ** 2, x)  # one honest backward of the right function, at the wrong x
    msg = fails(ac.check_grad_value, {"x": x, "y": y}, "x", of="y", **Q1)
    assert "different point" in msg, msg


def test_grad_value_wrong_function_not_called_repeated_backward():
    x = leaf(2.0)
    y = run(lambda x: x ** 3, x)  # exactly one backward()
    msg = fails(ac.check_grad_value, {"x": x, "y": y}, "x", of="y", **Q1)
    assert "ran 3 times" not in msg, msg


# ---------------------------------------------------------- custom autograd Functions


@pytest.mark.parametrize("check, kwargs", FUNCTION_CHECKS, ids=FUNCTION_CHECK_IDS)
def test_function_missing(check, kwargs):
    msg = fails(check, {}, "SQ", **kwargs)
    assert "`SQ` is not defined yet. Run the cell that defines the class `SQ`" in msg


@pytest.mark.parametrize("check, kwargs", FUNCTION_CHECKS, ids=FUNCTION_CHECK_IDS)
def test_function_ellipsis(check, kwargs):
    msg = fails(check, {"SQ": ...}, "SQ", **kwargs)
    assert "`SQ` is still `...`: replace the ... with your class definition" in msg


@pytest.mark.parametrize("value, type_name", [
    (NotAFunction, "NotAFunction"),
    (lambda t: t ** 2, "function"),
    (torch.autograd.Function, "Function"),
    (torch.tensor(2.0), "Tensor"),
], ids=["plain-class", "lambda", "Function-itself", "tensor"])
@pytest.mark.parametrize("check, kwargs", FUNCTION_CHECKS, ids=FUNCTION_CHECK_IDS)
def test_function_not_a_function_subclass(check, kwargs, value, type_name):
    msg = fails(check, {"SQ": value}, "SQ", **kwargs)
    if isinstance(value, type):
        assert "`SQ` is a class, but it does not subclass torch.autograd.Function" in msg
        assert "class SQ(torch.autograd.Function)" in msg
    else:
        assert "`SQ` should be a class that subclasses torch.autograd.Function" in msg
        assert f"but it is a {type_name}." in msg


@pytest.mark.parametrize("cls, details", [
    (SQReturnsNone, ["NoneType", "tensor"]),
    (SQSums, ["forward returned shape () for an input of shape ("]),
    (SQForgetsToSave, ["ValueError", "not enough values to unpack"]),
], ids=["returns-None", "wrong-shape", "backward-raises"])
@pytest.mark.parametrize("check, kwargs", FUNCTION_CHECKS, ids=FUNCTION_CHECK_IDS)
def test_function_apply_fails(check, kwargs, cls, details):
    msg = fails(check, {"SQ": cls}, "SQ", **kwargs)
    assert msg.startswith("Calling SQ.apply(t) and ")
    for detail in details:
        assert detail in msg
    assert "@staticmethods taking ctx" in msg and "ctx.save_for_backward" in msg


def test_function_ignores_grad_output():
    env = {"SQ": SQIgnoresUpstream}
    ac.check_function(env, "SQ")
    ac.check_function_forward(env, "SQ", **SQ_REF)
    msg = fails(ac.check_function_upstream, env, "SQ", **SQ_REF)
    assert "SQ.backward() ignores grad_output" in msg
    assert "grad_output times the local derivative" in msg
    msg = fails(ac.check_function_gradcheck, env, "SQ")
    assert "gradcheck finds that SQ.backward() does not match SQ.forward()" in msg


def test_function_wrong_backward():
    env = {"SQ": SQWrongBackward}
    ac.check_function(env, "SQ")
    ac.check_function_forward(env, "SQ", **SQ_REF)
    msg = fails(ac.check_function_upstream, env, "SQ", **SQ_REF)
    assert "returns the wrong gradient when the incoming gradient is not 1" in msg
    assert "ignores grad_output" not in msg
    assert "does not match" in fails(ac.check_function_gradcheck, env, "SQ")


def test_function_wrong_forward():
    env = {"SQ": SQWrongForward}
    ac.check_function(env, "SQ")
    msg = fails(ac.check_function_forward, env, "SQ", **SQ_REF)
    assert "SQ.apply(t) returns the wrong values" in msg
    assert "forward() computes" in msg
    ac.check_function_gradcheck(env, "SQ")  # its backward does match its own forward


def test_function_correct_passes_all_four():
    env = {"SQ": SQ}
    for check, kwargs in FUNCTION_CHECKS:
        facts = check(env, "SQ", **kwargs)
        assert facts.kind == "function" and facts.probe.error is None
        assert facts.probe.gradcheck is True


def test_function_probe_contents():
    facts = ac.observe(SQ, "SQ")
    p = facts.probe
    assert 3 <= len(p.inputs) <= 8 and len(p.upstream) == len(p.inputs)
    assert p.forward == pytest.approx([i * i for i in p.inputs])
    assert p.grad_unit == pytest.approx([2 * i for i in p.inputs])
    assert p.grad_upstream == pytest.approx([2 * i * u for i, u in zip(p.inputs, p.upstream)])
    # the float32 probe goes one number at a time, as the lab uses SQ.apply(x)
    assert p.forward32 == pytest.approx([i * i for i in p.inputs], rel=1e-5)
    assert p.grad_upstream32 == pytest.approx([2 * i * u for i, u in zip(p.inputs, p.upstream)], rel=1e-5)
    # a Function cannot learn the probe's shape: it changes from one observation to the next
    assert len({len(ac.observe(SQ, "SQ").probe.inputs) for _ in range(20)}) > 1
    custom = ac.observe(SQ, "SQ", probe_inputs=([1.0, 2.0], [3.0, 4.0])).probe
    assert custom.inputs == (1.0, 2.0) and custom.grad_upstream == pytest.approx([6.0, 16.0])


class Mul(torch.autograd.Function):  # two inputs, correct
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        return grad_output * b, grad_output * a


class MulSwapped(Mul):  # gives each input the other's gradient... times itself: wrong
    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        return grad_output * a, grad_output * b


class MulSetupContext(torch.autograd.Function):  # the newer style: forward without ctx
    @staticmethod
    def forward(a, b):
        return a * b

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        return grad_output * b, grad_output * a


MUL_REF = dict(reference=lambda a, b: a * b)


@pytest.mark.parametrize("cls", [Mul, MulSetupContext], ids=["ctx", "setup_context"])
def test_function_of_two_inputs_passes_every_check(cls):
    env = {"Mul": cls}
    for obs in (cls, ac.facts_from_plain(json.loads(json.dumps(ac.observe(cls, "Mul").to_plain())))):
        env = {"Mul": obs}
        ac.check_function(env, "Mul")
        ac.check_function_forward(env, "Mul", **MUL_REF)
        ac.check_function_gradcheck(env, "Mul")
        ac.check_function_upstream(env, "Mul", **MUL_REF)
    p = ac.observe(cls, "Mul").probe
    a, b = ac.probe_arguments(p.inputs, 2)
    assert p.arity == 2 and a != b
    assert p.grad_unit == pytest.approx(b + a)   # d(ab)/da = b, then d(ab)/db = a


def test_function_of_two_inputs_with_a_wrong_backward_fails():
    env = {"Mul": MulSwapped}
    assert "does not match" in fails(ac.check_function_gradcheck, env, "Mul")
    fails(ac.check_function_upstream, env, "Mul", **MUL_REF)
    ac.check_function_forward(env, "Mul", **MUL_REF)   # forward is right


def test_function_with_the_wrong_number_of_inputs_says_so():
    msg = fails(ac.check_function_forward, {"SQ": SQ}, "SQ", **MUL_REF)
    assert "SQ.forward takes 1 input (after ctx), but the operation this exercise asks for takes 2" in msg


# --------------------------------------------- tensor impostors and monkeypatching


def test_tensor_subclass_is_not_a_tensor():
    class MyTensor(torch.Tensor):
        pass

    t = torch.tensor(2.0, requires_grad=True).as_subclass(MyTensor)
    assert isinstance(t, torch.Tensor)
    assert ac.observe(t, "x").kind == "other"
    msg = fails(ac.check_tensor, {"x": t}, "x", requires_grad=True)
    assert "`x` should be a torch tensor, but it is a MyTensor" in msg


def test_object_with_lying_eq_and_class_is_not_a_tensor():
    class Liar:
        __class__ = torch.Tensor  # isinstance(Liar(), torch.Tensor) is True
        requires_grad = True
        is_leaf = True
        shape = ()
        dtype = torch.float32
        grad = torch.tensor(4.0)

        def __eq__(self, other):
            return True

        __hash__ = object.__hash__

    liar = Liar()
    assert isinstance(liar, torch.Tensor) and liar == torch.tensor(4.0)
    facts = ac.observe(liar, "x")
    assert facts.kind == "other" and facts.grad_kind == "none"
    msg = fails(ac.check_tensor, {"x": liar}, "x")
    assert "`x` should be a torch tensor, but it is a Liar" in msg
    assert "should be a torch tensor" in fails(
        ac.check_grad_value, {"x": liar}, "x", of="y", **Q1)


def test_monkeypatched_grad_property_does_not_change_observation():
    with_backward = leaf(2.0)
    run(lambda x: x ** 3, with_backward)  # gradient 12
    without_backward = leaf(2.0)
    assert "grad" not in torch.Tensor.__dict__
    try:
        torch.Tensor.grad = property(lambda self: torch.tensor(4.0))
        assert float(with_backward.grad) == 4.0  # the patch is in effect for Python code
        facts = ac.observe(with_backward, "x")
        assert facts.grad.values == (12.0,) and facts.grad_source == "autograd"
        with pytest.raises(ac.CheckFailed):
            ac.check_grad_value({"x": with_backward}, "x", of="y", **Q1)
        facts = ac.observe(without_backward, "x")
        assert facts.grad_kind == "none" and facts.grad is None
        assert "has not computed it yet" in fails(
            ac.check_backward_called, {"x": without_backward}, "x", of="y")
    finally:
        del torch.Tensor.grad
    assert "grad" not in torch.Tensor.__dict__
    assert float(with_backward.grad) == 12.0


@pytest.mark.parametrize("attr, fake", [
    ("requires_grad", True), ("is_leaf", True), ("shape", torch.Size([])),
])
def test_monkeypatched_tensor_attributes_do_not_change_observation(attr, fake):
    x = torch.tensor([2.0, 3.0]) * 1  # no grad tracking, shape (2,)
    assert attr not in torch.Tensor.__dict__
    try:
        setattr(torch.Tensor, attr, property(lambda self: fake))
        assert getattr(x, attr) == fake
        facts = ac.observe(x, "x")
    finally:
        delattr(torch.Tensor, attr)
    assert facts.requires_grad is False and facts.data.shape == (2,)


def test_tensor_class_itself_message_is_not_self_contradictory():
    msg = fails(ac.check_tensor, {"x": torch.Tensor}, "x")
    assert "but it is a Tensor." not in msg, msg


# --------------------------------------------------------- round trip through JSON


def json_round_trip(facts: ac.Facts) -> ac.Facts:
    return ac.facts_from_plain(json.loads(json.dumps(facts.to_plain())))


def judge_env(env) -> dict:
    """What the judge process sees: observed in the sandbox, then sent as JSON."""
    observed = ac.observe_names(env, list(env))
    return {name: json_round_trip(f) for name, f in observed.items()}


def _scalar_scenario(x0=2.0, fn=lambda x: x ** 2, times=1, requires_grad=True,
                     dtype=torch.float32, make_leaf=True, backward=True):
    def build():
        x = torch.tensor(x0, dtype=dtype, requires_grad=requires_grad)
        x = x if make_leaf else x * 1
        y = fn(x)
        if backward:
            for _ in range(times):
                y = fn(x)
                y.backward()
        return {"x": x, "y": y}
    return build


def _q1_checks(spec=Q1):
    return [
        (ac.check_tensor, ("x",), dict(requires_grad=True, leaf=True, shape=())),
        (ac.check_computed_from, ("y", "x"), dict(scalar=True)),
        (ac.check_backward_called, ("x",), dict(of="y")),
        (ac.check_grad_value, ("x",), dict(of="y", **spec)),
    ]


def _vector_scenario(n, fn, times=1, lo=-10.0):
    def build():
        x = torch.linspace(lo, 10, n, requires_grad=True)
        Y = fn(x)
        y = torch.sum(Y)
        for _ in range(times):
            y = torch.sum(fn(x))
            y.backward()
        return {"x": x, "Y": Y, "y": y}
    return build


def _vector_checks(n, spec):
    return [
        (ac.check_tensor, ("x",), dict(requires_grad=True, leaf=True, shape=(n,))),
        (ac.check_tensor, ("Y",), dict(shape=(n,))),
        (ac.check_computed_from, ("Y", "x"), {}),
        (ac.check_computed_from, ("Y", "x"), dict(scalar=True)),
        (ac.check_computed_from, ("y", "x"), dict(scalar=True)),
        (ac.check_backward_called, ("x",), dict(of="y")),
        (ac.check_grad_value, ("x",), dict(of="y", **spec)),
    ]


def _two_var_scenario(u0, v0, fn, times=1):
    def build():
        u, v = leaf(u0), leaf(v0)
        f = None
        for _ in range(times):
            f = fn(u, v)
            f.backward()
        return {"u": u, "v": v, "f": f}
    return build


def _two_var_checks(spec):
    return [
        (ac.check_computed_from, ("f", "u"), dict(scalar=True)),
        (ac.check_computed_from, ("f", "v"), dict(scalar=True)),
        (ac.check_backward_called, ("u",), dict(of="f")),
        (ac.check_grad_value, ("u",), dict(of="f", **spec)),
        (ac.check_grad_value, ("v",), dict(of="f", **spec)),
    ]


def _old_x():
    old = leaf(2.0)
    y = old ** 2
    y.backward()
    return {"x": leaf(2.0), "y": y}


def _hand_typed():
    x = leaf(2.0)
    x.grad = torch.tensor(4.0)
    return {"x": x, "y": x ** 2}


def _edited_in_place():
    x = leaf(2.0)
    y = x ** 2
    y.backward()
    with torch.no_grad():
        x.grad += 1
    return {"x": x, "y": y}


def _function_checks():
    return [(check, ("SQ",), kwargs) for check, kwargs in FUNCTION_CHECKS]


ROUND_TRIP = {
    "q1-ok": (_scalar_scenario(), _q1_checks()),
    "q1-twice": (_scalar_scenario(times=2), _q1_checks()),
    "q1-sign": (_scalar_scenario(fn=lambda x: -x ** 2), _q1_checks()),
    "q1-point": (_scalar_scenario(x0=3.0), _q1_checks()),
    "q1-generic": (_scalar_scenario(fn=lambda x: x ** 2 + x), _q1_checks()),
    "q1-inf": (_scalar_scenario(x0=0.0, fn=torch.sqrt), _q1_checks()),
    "q1-no-backward": (_scalar_scenario(backward=False), _q1_checks()),
    "q1-no-requires-grad": (_scalar_scenario(requires_grad=False, backward=False), _q1_checks()),
    "q1-int": (_scalar_scenario(x0=2, dtype=torch.int64, requires_grad=False, backward=False),
               _q1_checks()),
    "q1-not-leaf": (_scalar_scenario(make_leaf=False), _q1_checks()),
    "q1-old-x": (_old_x, _q1_checks()),
    "q1-hand-typed": (_hand_typed, _q1_checks()),
    "q1-edited": (_edited_in_place, _q1_checks()),
    "q1-item": (lambda: {"x": leaf(2.0), "y": torch.tensor(4.0)}, _q1_checks()),
    "q1-ellipsis": (lambda: {"x": ..., "y": ...}, _q1_checks()),
    "q1-float": (lambda: {"x": 2.0, "y": 4.0}, _q1_checks()),
    "q1-missing": (lambda: {}, _q1_checks()),
    "q1-wrong-shape": (lambda: {"x": leaf([2.0]), "y": leaf([2.0]).sum()}, _q1_checks()),
    "q2-value": (_scalar_scenario(fn=lambda x: x ** 3 / 3 + x ** 2 + x), _q1_checks(Q2)),
    "q3-ok": (_scalar_scenario(x0=1.0, fn=Q3["reference"]), _q1_checks(Q3)),
    "q5-ok": (_two_var_scenario(1.0, 2.0, Q5["reference"]), _two_var_checks(Q5)),
    "q5-point": (_two_var_scenario(2.0, 2.0, Q5["reference"]), _two_var_checks(Q5)),
    "q8-ok": (_two_var_scenario(2.0, 1.0, Q8["reference"]), _two_var_checks(Q8)),
    "q8-twice": (_two_var_scenario(2.0, 1.0, Q8["reference"], times=2), _two_var_checks(Q8)),
    "q6-ok": (_vector_scenario(10, lambda x: x ** 2), _vector_checks(10, Q6)),
    "q6-twice": (_vector_scenario(10, lambda x: x ** 2, times=2), _vector_checks(10, Q6)),
    "q6-point": (_vector_scenario(10, lambda x: x ** 2, lo=-5.0), _vector_checks(10, Q6)),
    "q7-ok": (_vector_scenario(1000, torch.relu), _vector_checks(1000, Q7)),
    "q7-twice": (_vector_scenario(1000, torch.relu, times=2), _vector_checks(1000, Q7)),
    "SQ-ok": (lambda: {"SQ": SQ}, _function_checks()),
    "SQ-ignores": (lambda: {"SQ": SQIgnoresUpstream}, _function_checks()),
    "SQ-wrong-backward": (lambda: {"SQ": SQWrongBackward}, _function_checks()),
    "SQ-wrong-forward": (lambda: {"SQ": SQWrongForward}, _function_checks()),
    "SQ-none": (lambda: {"SQ": SQReturnsNone}, _function_checks()),
    "SQ-plain-class": (lambda: {"SQ": NotAFunction}, _function_checks()),
    "SQ-ellipsis": (lambda: {"SQ": ...}, _function_checks()),
}


@pytest.mark.parametrize("scenario", list(ROUND_TRIP))
def test_round_trip_same_verdicts_and_messages(scenario):
    build, checks = ROUND_TRIP[scenario]
    env = build()
    judged = judge_env(env)
    assert all(isinstance(f, ac.Facts) for f in judged.values())
    assert set(judged) == set(env)
    for check, args, kwargs in checks:
        live = outcome(check, env, *args, **kwargs)
        plain = outcome(check, judged, *args, **kwargs)
        assert live == plain, f"{check.__name__}{args}: live {live} != judge {plain}"


def test_round_trip_scenarios_cover_passes_and_failures():
    verdicts = set()
    for build, checks in ROUND_TRIP.values():
        env = build()
        for check, args, kwargs in checks:
            result = outcome(check, env, *args, **kwargs)
            verdicts.add(result[0] if result[0] == "pass" else result[1].split("`")[-1][:20])
    assert "pass" in verdicts and len(verdicts) > 10


@pytest.mark.parametrize("obj", [
    leaf(2.0), torch.linspace(-10, 10, 10, requires_grad=True) ** 2, torch.tensor(2),
    torch.tensor([[1.0, float("inf")], [float("nan"), 2.0]]), 2.0, ..., SQ, NotAFunction,
], ids=["leaf", "nonleaf", "int", "inf-nan", "float", "ellipsis", "SQ", "plain-class"])
def test_round_trip_preserves_facts(obj):
    facts = ac.observe(obj, "x")
    again = json_round_trip(facts)
    assert json.dumps(again.to_plain()) == json.dumps(facts.to_plain())
    if facts.kind == "tensor" and facts.data.finite:
        assert again == facts


def test_round_trip_of_large_tensor_keeps_shape_only():
    big = torch.zeros(ac.MAX_VALUES + 1)
    facts = ac.observe(big, "x")
    assert facts.data.values is None and facts.data.shape == (ac.MAX_VALUES + 1,)
    assert json_round_trip(facts) == facts


def test_observe_names_leaves_out_missing_names():
    env = {"x": leaf(2.0), "y": 3}
    observed = ac.observe_names(env, ["x", "y", "z"])
    assert set(observed) == {"x", "y"}
    assert observed["x"].kind == "tensor" and observed["y"].kind == "other"
    assert ac.observe(observed["x"], "x") is observed["x"]


# ------------------------------------------------------------- malformed plain data


def _valid_plain() -> dict:
    x = leaf(2.0)
    (x ** 2).backward()
    return json.loads(json.dumps(ac.observe(x, "x").to_plain()))


def _valid_function_plain() -> dict:
    return json.loads(json.dumps(ac.observe(SQ, "SQ").to_plain()))


def _set(path, value):
    def mutate(d):
        *parents, last = path
        for key in parents:
            d = d[key]
        d[last] = value
    return mutate


def _delete(path):
    def mutate(d):
        *parents, last = path
        for key in parents:
            d = d[key]
        del d[last]
    return mutate


MALFORMED_TENSOR = {
    "unknown-kind": _set(["kind"], "weird"),
    "kind-not-text": _set(["kind"], 3),
    "unknown-grad-kind": _set(["grad_kind"], "maybe"),
    "unknown-grad-source": _set(["grad_source"], "student"),
    "values-do-not-match-shape": _set(["data", "values"], [1.0, 2.0]),
    "grad-values-do-not-match-shape": _set(["grad", "values"], []),
    "negative-shape": _set(["data", "shape"], [-1]),
    "float-shape": _set(["data", "shape"], [1.5]),
    "shape-not-list": _set(["data", "shape"], "()"),
    "value-is-text": _set(["data", "values"], ["4"]),
    "value-is-bool": _set(["data", "values"], [True]),
    "values-not-list": _set(["data", "values"], "4"),
    "finite-not-bool": _set(["data", "finite"], "yes"),
    "dtype-not-text": _set(["data", "dtype"], 5),
    "data-not-mapping": _set(["data"], [2.0]),
    "requires-grad-int": _set(["requires_grad"], 1),
    "is-leaf-none": _set(["is_leaf"], None),
    "ident-text": _set(["ident"], "123"),
    "ident-float": _set(["ident"], 1.5),
    "reaches-floats": _set(["reaches"], [1.5]),
    "reaches-not-list": _set(["reaches"], "1"),
    "name-not-text": _set(["name"], 5),
    "type-name-not-text": _set(["type_name"], None),
    "grad-fn-not-text": _set(["grad_fn"], 7),
    "missing-kind": _delete(["kind"]),
    "missing-values": _delete(["data", "values"]),
    "missing-grad": _delete(["grad"]),
}

MALFORMED_FUNCTION = {
    "too-many-inputs": _set(["probe", "inputs"], [1.0] * 65),
    "input-is-text": _set(["probe", "inputs"], ["1"]),
    "gradcheck-text": _set(["probe", "gradcheck"], "yes"),
    "error-not-text": _set(["probe", "error"], 5),
    "forward-not-list": _set(["probe", "forward"], 3.0),
    "missing-upstream": _delete(["probe", "upstream"]),
    "probe-not-mapping": _set(["probe"], [1.0]),
}


def test_valid_plain_data_is_accepted():
    assert ac.facts_from_plain(_valid_plain()).grad_source == "autograd"
    assert ac.facts_from_plain(_valid_function_plain()).probe.gradcheck is True


@pytest.mark.parametrize("mutation", list(MALFORMED_TENSOR))
def test_facts_from_plain_rejects_malformed_tensor_data(mutation):
    d = _valid_plain()
    MALFORMED_TENSOR[mutation](d)
    with pytest.raises((ValueError, KeyError, TypeError)):
        ac.facts_from_plain(d)


@pytest.mark.parametrize("mutation", list(MALFORMED_FUNCTION))
def test_facts_from_plain_rejects_malformed_probe(mutation):
    d = _valid_function_plain()
    MALFORMED_FUNCTION[mutation](d)
    with pytest.raises((ValueError, KeyError, TypeError)):
        ac.facts_from_plain(d)


def test_facts_from_plain_truncates_long_text():
    d = _valid_plain()
    d["name"] = "x" * 1000
    d["type_name"] = "T" * 1000
    facts = ac.facts_from_plain(d)
    assert len(facts.name) == 100 and len(facts.type_name) == 100


@pytest.mark.parametrize("bad", [[], "x", None, 3], ids=["list", "str", "null", "int"])
def test_facts_from_plain_rejects_non_mapping(bad):
    with pytest.raises((ValueError, KeyError, TypeError)):
        ac.facts_from_plain(bad)


def test_facts_from_plain_rejects_tensor_without_data():
    d = _valid_plain()
    d["data"] = None
    with pytest.raises((ValueError, KeyError, TypeError)):
        facts = ac.facts_from_plain(d)
        ac.check_tensor({"x": facts}, "x", requires_grad=True)


# --- regressions found by the corpus review -------------------------------------------------


def test_right_gradient_of_the_wrong_function_is_caught():
    x = torch.tensor(2.0, requires_grad=True)
    y = x ** 2 + 100          # same derivative as x**2, not the function asked for
    y.backward()
    msg = fails(ac.check_grad_value, {"x": x, "y": y}, "x", of="y", reference=lambda x: x ** 2, at={"x": 2.0})
    assert "`y` is 104" in msg and "not the value of the function" in msg


def test_antiderivative_with_equal_value_and_derivative_is_caught():
    x = torch.tensor(2.0, requires_grad=True)
    y = x ** 3 / 3            # dy/dx = x**2 = 4 = 2x at x = 2
    y.backward()
    msg = fails(ac.check_grad_value, {"x": x, "y": y}, "x", of="y", reference=lambda x: x ** 2, at={"x": 2.0})
    assert "not the value of the function" in msg


def test_computed_from_a_non_leaf_is_recognised():
    x = torch.tensor(2.0, requires_grad=True) * 1
    y = x ** 2
    ac.check_computed_from({"x": x, "y": y}, "y", "x", scalar=True)
    other = torch.tensor(2.0, requires_grad=True) * 1
    msg = fails(ac.check_computed_from, {"x": other, "y": y}, "y", "x", scalar=True)
    assert "was not computed from this `x`" in msg


def test_retain_grad_without_backward_is_not_autograd():
    x = torch.tensor(2.0, requires_grad=True) * 1
    x.retain_grad()
    y = x ** 2
    x.grad = torch.tensor(4.0)
    msg = fails(ac.check_backward_called, {"x": x, "y": y}, "x", of="y")
    assert "set or changed by hand" in msg


def test_backward_with_gradient_edge_inputs_still_works():
    h = torch.tensor(2.0, requires_grad=True)
    z = h * 3
    (z ** 2).backward(inputs=[torch.autograd.graph.get_gradient_edge(z)])


def test_vector_mismatch_names_a_position_with_the_students_value():
    x = torch.linspace(-10, 10, 1000, requires_grad=True)
    y = (torch.relu(x) * 0.001).sum()
    y.backward()
    msg = fails(ac.check_grad_value, {"x": x, "y": y}, "x", of="y",
                reference=lambda x: torch.relu(x).sum(), at={"x": torch.linspace(-10, 10, 1000)})
    assert "element 500 is 0.001" in msg


def test_facts_from_plain_rejects_numbers_out_of_float_range():
    plain = ac.observe(torch.tensor(2.0), "x").to_plain()
    plain["data"]["values"] = [10 ** 400]
    with pytest.raises(ValueError):
        ac.facts_from_plain(plain)


def test_every_public_check_is_in_the_readme_reference():
    """The README's checks table lists exactly the module's public checks."""
    import re

    from conftest import ROOT

    public = {n for n in dir(ac) if n.startswith("check_") and callable(getattr(ac, n))}
    readme = (ROOT / "README.md").read_text()
    listed = set(re.findall(r"^\| `(check_\w+)` \|", readme, flags=re.M))
    assert listed == public
    for name in public:
        assert f"ac.{name}(env" in readme, f"{name} has no example"


def test_judge_probe_size_depends_on_the_submission():
    from autograder.grade.judge import PROBE_SIZES, probe_inputs

    sizes = {len(probe_inputs(f"seed-{n}")[0]) for n in range(30)}
    assert len(sizes) > 2 and min(sizes) >= PROBE_SIZES[0] and max(sizes) <= PROBE_SIZES[1]
    assert probe_inputs("same") == probe_inputs("same")


class SQOnlyForSix(SQ):
    """SQ, honest only when the input has 6 numbers (the red team's probe-shaped Function)."""

    @staticmethod
    def backward(ctx, grad_output):
        (i,) = ctx.saved_tensors
        return grad_output * 2 * i if i.numel() == 6 else grad_output * 0


def test_function_honest_only_for_one_shape_fails_the_probe():
    with pytest.raises(ac.CheckFailed):
        ac.check_function_upstream({"SQ": SQOnlyForSix}, "SQ", reference=lambda t: t ** 2)


# ------------------------------------------------------------ which cells set each name


def test_binding_log_marks_names_an_earlier_question_set():
    log = ac.BindingLog()
    ns = {"torch": object()}
    log.observe(ns, provided=True)                      # the lab's set-up cell
    ns["x"] = leaf(2.0)
    log.observe(ns, provided=False)                     # q1's answer
    assert log.stale("q1", ["x", "torch"]) == {}
    log.checked("q1")
    log.observe(ns, provided=False)                     # q2's answer set nothing
    assert log.stale("q2", ["x", "torch"]) == {"x": "q1"}
    log.checked("q2")
    assert log.stale("q1", ["x"]) == {}                 # q1 re-checked: x is still what q1's cells set
    ns["x"] = leaf(3.0)
    log.observe(ns, provided=False)                     # q3's answer sets x again
    assert log.stale("q3", ["x"]) == {}
    log.checked("q3")
    assert log.stale("q1", ["x"]) == {"x": "q3"}        # going back to q1 without rerunning it


def test_binding_log_counts_an_assignment_of_the_same_object():
    log = ac.BindingLog()
    ns = {"x": ...}
    log.observe(ns, provided=False)
    log.checked("q1")
    log.observe(ns, provided=False, assigned={"x"})     # `x = ...` again: the same Ellipsis
    assert log.stale("q2", ["x"]) == {}


def test_binding_log_shares_what_the_labs_own_cells_set():
    log = ac.BindingLog()
    ns = {"x": leaf(1.0)}
    log.observe(ns, provided=False)
    log.checked("q4")
    ns["x"] = leaf(2.0)
    log.observe(ns, provided=True)                      # a demo cell of the lab after q4
    log.checked("q5")
    assert log.stale("q6", ["x"]) == {}


def test_cell_fingerprint_ignores_comments_and_spacing_only():
    a = ac.cell_fingerprint("x = torch.tensor(2.0)\nprint(x)\n")
    assert ac.cell_fingerprint("# given\nx = torch.tensor( 2.0 )  # data\n\nprint(x)") == a
    # a line that looks like otter's seeding can call anything: only the kernel, which can see
    # that the name is the real numpy or random module, leaves it out
    assert ac.cell_fingerprint("random_a.seed(1)\nx = torch.tensor(2.0)\nprint(x)") != a
    assert ac.cell_fingerprint("x = torch.tensor(3.0)\nprint(x)") != a
    magic = ac.cell_fingerprint("%matplotlib inline\nimport torch")
    assert ac.cell_fingerprint("%matplotlib inline\n\nimport torch  # ok") == magic


def test_assigned_names_are_the_cells_top_level_bindings():
    src = ("import numpy as np\nfrom torch import nn\nx = y = 1\n(a, b), c = f()\nfor i in r: pass\n"
           "with g() as h: pass\nif (w := 2): pass\ndef fn(q):\n    inner = 1\nclass K: attr = 1\n")
    assert ac.assigned_names(src) == {"np", "nn", "x", "y", "a", "b", "c", "i", "h", "w", "fn", "K"}
    assert ac.assigned_names("%matplotlib inline\nz = 1") == {"z"}


@pytest.mark.parametrize("line, named", [
    ("Y = x.data ** 2", "`x.data`"),
    ("Y = x.detach() ** 2", "`.detach()`"),
    ("Y = torch.tensor(np.square(x.numpy()))", "`np.square`"),
    ("Y = torch.tensor(x.numpy() ** 2)", "`.numpy()`"),
    ("Y = torch.tensor(float(x) ** 2)", "`float()`"),
])
def test_the_kernel_names_what_broke_the_graph(line, named):
    x = torch.linspace(-1, 1, 5, requires_grad=True)
    Y = x.detach() ** 2
    ac._ANSWER_SOURCES[:] = ["x = torch.linspace(-1, 1, 5, requires_grad=True)", line]
    try:
        msg = fails(ac.check_computed_from, {"x": x, "Y": Y}, "Y", "x")
    finally:
        ac._ANSWER_SOURCES.clear()
    assert f"it was computed with {named}" in msg
    # without the cells (the secure grader's judge), the message lists the usual suspects
    assert "`x.data`, `x.detach()`, .item()" in fails(ac.check_computed_from, {"x": x, "Y": Y}, "Y", "x")


@pytest.mark.parametrize("error, says", [
    (RuntimeError("This method is not compatible with Google Colab"), "File > Download > Download .ipynb"),
    (ValueError("Could not resolve notebook path"), "this folder holds more than one"),
])
def test_export_where_otter_cannot_says_what_to_upload(capsys, error, says):
    class Notebook:
        def export(self, *args, **kwargs):
            raise error

    ac.friendlier_export(Notebook)
    assert Notebook().export(pdf=False) is None
    assert says in capsys.readouterr().out


def test_other_export_errors_still_reach_the_student():
    class Notebook:
        def export(self, *args, **kwargs):
            raise RuntimeError("disk full")

    ac.friendlier_export(Notebook)
    with pytest.raises(RuntimeError, match="disk full"):
        Notebook().export()
