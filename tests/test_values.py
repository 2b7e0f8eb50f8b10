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

from autograder.grade.values import Rebuilder, UnsupportedInJudge, observe_value
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
    with pytest.raises(UnsupportedInJudge, match="module class Net"):
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
