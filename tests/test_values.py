"""Values observed in a run and rebuilt as real objects in the judge (autograder/grade/values.py).

Each case observes live objects the way the sandbox does, sends them through JSON (the record
pipe), rebuilds them the way the judge does, and runs test code written the usual otter way on
the result: it must see what it would have seen in the student's kernel.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from autograder.grade.values import (MAX_CALLS, CallBroker, Rebuilder, StudentCallFailed, UnsupportedInJudge,
                                     call_key, observe_value, run_call)
from conftest import ROOT

sys.path.insert(0, str(ROOT / "autograder"))
import autograd_checks as ac  # noqa: E402


def round_trip(namespace: dict) -> dict:
    plain = {name: observe_value(value, name, ac) for name, value in namespace.items()}
    return Rebuilder(ac).env(json.loads(json.dumps(plain)))


def test_tensor_with_gradient_reads_as_in_the_kernel():
    x = torch.tensor(2.0, requires_grad=True)
    y = x ** 2
    y.backward()
    env = round_trip({"x": x, "y": y})
    x2, y2 = env["x"], env["y"]
    assert isinstance(x2, torch.Tensor) and x2.requires_grad and x2.is_leaf
    assert torch.allclose(x2.grad, torch.tensor(4.0)) and x2.grad.item() == 4.0 and float(x2.grad) == 4.0
    assert not y2.is_leaf and type(y2.grad_fn).__name__ == "PowBackward0" and float(y2) == 4.0
    assert x2.dtype == torch.float32 and y2.shape == ()


def test_checks_see_the_observed_provenance_behind_rebuilt_tensors():
    x = torch.tensor(2.0, requires_grad=True)
    y = x ** 2
    y.backward()
    env = round_trip({"x": x, "y": y})
    ac.check_computed_from(env, "y", "x", scalar=True)
    ac.check_grad_value(env, "x", of="y", reference=lambda x: x ** 2, at={"x": 2.0})
    hand = torch.tensor(2.0, requires_grad=True)
    hand.grad = torch.tensor(4.0)
    env = round_trip({"x": hand, "y": hand ** 2})
    with pytest.raises(ac.CheckFailed, match="by hand"):
        ac.check_backward_called(env, "x", of="y")


def test_graph_relations_between_observed_tensors_survive():
    x = torch.linspace(-1, 1, 5, requires_grad=True)
    Y = x ** 2
    y = torch.sum(Y)
    y.backward()
    env = round_trip({"x": x, "Y": Y, "y": y})
    ac.check_computed_from(env, "Y", "x")
    ac.check_computed_from(env, "y", "x", scalar=True)
    assert torch.allclose(env["x"].grad, 2 * torch.linspace(-1, 1, 5))
    with pytest.raises(UnsupportedInJudge):
        env["y"].backward()   # the judge has the values, not the student's graph


def test_plain_python_values_and_arrays():
    env = round_trip({"n": 3, "r": 0.5, "ok": True, "s": "text", "nothing": None, "items": [1, (2.0, "a")],
                      "d": {"a": 1.5, 2: [3]}, "arr": np.arange(6).reshape(2, 3), "nan": float("nan")})
    assert env["n"] == 3 and type(env["n"]) is int and env["r"] == 0.5 and env["ok"] is True
    assert env["s"] == "text" and env["nothing"] is None and env["items"] == [1, (2.0, "a")]
    assert env["d"] == {"a": 1.5, 2: [3]}
    assert isinstance(env["arr"], np.ndarray) and env["arr"].shape == (2, 3) and env["arr"].dtype.kind == "i"
    assert np.array_equal(env["arr"], np.arange(6).reshape(2, 3)) and np.isnan(env["nan"])


def test_torch_nn_modules_are_rebuilt_as_the_real_class():
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2)
    net = torch.nn.Sequential(layer, torch.nn.ReLU())
    loss = net(torch.ones(4, 3)).sum()
    loss.backward()
    env = round_trip({"layer": layer, "net": net})
    rebuilt = env["layer"]
    assert isinstance(rebuilt, torch.nn.Linear) and rebuilt.in_features == 3 and rebuilt.out_features == 2
    assert torch.allclose(rebuilt.weight, layer.weight) and torch.allclose(rebuilt.weight.grad, layer.weight.grad)
    assert torch.allclose(rebuilt(torch.ones(1, 3)), layer(torch.ones(1, 3)))   # torch's own forward
    assert isinstance(env["net"], torch.nn.Sequential) and isinstance(env["net"][1], torch.nn.ReLU)
    assert len(list(env["net"].parameters())) == 2


def test_the_students_own_code_becomes_a_stand_in_that_says_what_is_unsupported():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(1, 1)

        def forward(self, x):
            return self.linear(x)

    def df(x):
        return 2 * x

    env = round_trip({"net": Net(), "df": df})
    assert isinstance(env["net"], torch.nn.Module) and isinstance(env["net"].linear, torch.nn.Linear)
    with pytest.raises(UnsupportedInJudge, match="student's class Net"):
        env["net"](torch.ones(1))
    with pytest.raises(UnsupportedInJudge, match="function"):
        env["df"](torch.tensor(2.0))


def test_autograd_function_stand_in_carries_its_probe():
    class SQ(torch.autograd.Function):
        @staticmethod
        def forward(ctx, i):
            ctx.save_for_backward(i)
            return i ** 2

        @staticmethod
        def backward(ctx, grad_output):
            (i,) = ctx.saved_tensors
            return grad_output * 2 * i

    env = round_trip({"SQ": SQ})
    assert issubclass(env["SQ"], torch.autograd.Function)
    ac.check_function_forward(env, "SQ", reference=lambda t: t ** 2)
    ac.check_function_gradcheck(env, "SQ")
    with pytest.raises(UnsupportedInJudge):
        env["SQ"].apply(torch.tensor([1.0]))


@pytest.mark.parametrize("bad", [
    {"x": {"kind": "int", "value": "3"}},
    {"x": {"kind": "float", "value": 10 ** 400}},
    {"x": {"kind": "str", "value": 5}},
    {"x": {"kind": "list", "items": {"a": 1}}},
    {"x": {"kind": "ndarray", "dtype": "object", "shape": [1], "values": [1]}},
    {"x": {"kind": "module", "class": "Linear", "builtin": True, "settings": {"_parameters": 1},
           "parameters": {}, "buffers": {}, "children": {}}},
    {"x": {"kind": "wat"}},
    {"x": [1]},
])
def test_malformed_observations_are_refused(bad):
    with pytest.raises((ValueError, KeyError, TypeError, AttributeError)):
        Rebuilder(ac).env(bad)


def test_dotted_names_reach_module_parameters_in_the_kernel_and_in_the_judge():
    """`layer.weight` in a check means the parameter; its gradient keeps its provenance."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(2, 1)
    X = torch.tensor([[1.0, 2.0], [3.0, -1.0]])
    loss = ((layer(X) - 1.0) ** 2).mean()
    loss.backward()
    w, b = layer.weight.detach().clone(), layer.bias.detach().clone()

    def reference(**at):
        pred = X.double() @ at["layer.weight"].T + at["layer.bias"]
        return ((pred - 1.0) ** 2).mean()

    for env in ({"layer": layer, "loss": loss}, round_trip({"layer": layer, "loss": loss})):
        ac.check_tensor(env, "layer.weight", requires_grad=True, leaf=True, shape=(1, 2))
        ac.check_backward_called(env, "layer.weight", of="loss")
        ac.check_grad_value(env, "layer.weight", of="loss", reference=reference,
                            at={"layer.weight": w, "layer.bias": b})
        with pytest.raises(ac.CheckFailed):
            ac.check_tensor(env, "layer.nothing")


def judged_with_calls(namespace: dict, test, rounds: int = 4):
    """`test(env)` as the judge runs it, with the calls of the student's code answered the way
    a run answers them: each round, the calls the previous round asked for are run on the live
    objects (run_call), observed and sent through JSON; at most `rounds` rounds."""
    plain = json.loads(json.dumps({name: observe_value(value, name, ac) for name, value in namespace.items()}))
    answers: dict = {}
    for _ in range(rounds):
        broker = CallBroker("q1", ac, dict(answers))
        env = Rebuilder(ac, broker).env(plain)
        try:
            result, raised = test(env), None
        except Exception as exc:   # provisional while calls are unanswered, as in the judge
            result, raised = None, exc
        if not broker.missing:
            if raised is not None:
                raise raised
            return result
        for spec in broker.missing:
            _, name, op, args = json.loads(call_key(spec))
            try:
                returned = observe_value(run_call(namespace[name], op, args), "returned", ac)
            except Exception as exc:
                returned = {"kind": "raised", "type": type(exc).__name__, "text": str(exc)}
            answers[call_key(spec)] = json.loads(json.dumps(returned))
    raise AssertionError("the calls needed more rounds")


def test_a_test_calls_the_students_function_and_differentiates_through_it():
    def mse(w, b):
        return ((w * torch.tensor([0.0, 1.0, 2.0]) + b - torch.tensor([1.0, 3.0, 5.0])) ** 2).mean()

    def test(env):
        w = torch.tensor(1.0, requires_grad=True)
        b = torch.tensor(0.5, requires_grad=True)
        out = env["mse"](w, b)
        out.backward()
        return float(out), w.grad.item(), b.grad.item(), env["mse"](torch.tensor(1.0), torch.tensor(0.5)).requires_grad

    w, b = torch.tensor(1.0, requires_grad=True), torch.tensor(0.5, requires_grad=True)
    expected = mse(w, b)
    expected.backward()
    value, dw, db, tracks = judged_with_calls({"mse": mse}, test)
    assert value == pytest.approx(float(expected)) and not tracks
    assert dw == pytest.approx(w.grad.item()) and db == pytest.approx(b.grad.item())


def test_a_detached_result_brings_no_gradient_back():
    def f(w):
        return w.detach() * 3

    def test(env):
        w = torch.tensor(2.0, requires_grad=True)
        return env["f"](w).requires_grad, float(env["f"](w))

    assert judged_with_calls({"f": f}, test) == (False, 6.0)


def test_torch_gradcheck_in_a_test_runs_the_students_function_remotely():
    class Cube(torch.autograd.Function):
        @staticmethod
        def forward(ctx, i):
            ctx.save_for_backward(i)
            return i ** 3

        @staticmethod
        def backward(ctx, grad_output):
            (i,) = ctx.saved_tensors
            return grad_output * 3 * i ** 2

    class WrongCube(Cube):
        @staticmethod
        def backward(ctx, grad_output):
            (i,) = ctx.saved_tensors
            return grad_output * 2 * i ** 2

    def test(env):
        t = torch.tensor([0.5, -1.5, 2.0], dtype=torch.float64, requires_grad=True)
        return torch.autograd.gradcheck(env["Cube"].apply, (t,))

    assert judged_with_calls({"Cube": Cube}, test) is True
    from torch.autograd.gradcheck import GradcheckError

    with pytest.raises(GradcheckError):
        judged_with_calls({"Cube": WrongCube}, test)


def test_a_students_module_is_called_by_its_name():
    class Doubler(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.tensor(2.0))

        def forward(self, x):
            return self.scale * x

    def test(env):
        t = torch.tensor([1.0, -3.0], requires_grad=True)
        env["net"](t).sum().backward()
        return env["net"](torch.tensor([4.0])).tolist(), t.grad.tolist(), float(env["net"].scale)

    assert judged_with_calls({"net": Doubler()}, test) == ([8.0], [2.0, 2.0], 2.0)


def test_the_students_exception_fails_the_test_and_says_what_it_was():
    def df(x):
        raise ValueError("not written yet")

    with pytest.raises(StudentCallFailed, match="`df` raised ValueError when the test called it"):
        judged_with_calls({"df": df}, lambda env: env["df"](torch.tensor(2.0)))


def test_the_students_exception_cannot_carry_the_tests_arguments_out():
    """The error's text and the name of a class of the student's own are theirs: written into the
    feedback they would tell the student the hidden test's inputs."""
    def df(x):
        raise ValueError(f"seen {x.tolist()!r}")

    def df_named(x):
        raise type(f"Seen_{int(x.item())}", (Exception,), {})()

    for student in (df, df_named):
        with pytest.raises(StudentCallFailed) as failed:
            judged_with_calls({"df": student}, lambda env: env["df"](torch.tensor(7.0)))
        assert "7" not in str(failed.value), str(failed.value)


def test_calls_per_question_are_bounded():
    def test(env):
        for i in range(MAX_CALLS + 1):
            env["f"](torch.tensor(float(i)))

    with pytest.raises(UnsupportedInJudge, match=f"more than {MAX_CALLS} times"):
        judged_with_calls({"f": lambda v: v}, test, rounds=2)
