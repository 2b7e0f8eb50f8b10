"""Any value a test may look at, as plain data on the way out of the sandbox, and as a real
object again in the judge.

In the run (sandbox side) `observe_value` turns what a name holds into JSON-ready data: Python
scalars, strings, lists, tuples and dicts of these, NumPy arrays, tensors (with everything
autograd_checks observes: values, dtype, requires_grad, is_leaf, grad_fn, .grad and where it
came from), torch.nn modules from torch itself (class, settings, parameters, buffers,
submodules), and for anything else its kind. In the judge `Rebuilder` makes real objects again,
validating every field, so that ordinary otter test code (`isinstance(env["layer"], nn.Linear)`,
`torch.allclose(x.grad, ...)`, `float(d1)`, `def test_q1(x):`) runs on them unchanged, while the
checks module still finds the observed facts (provenance included) behind each rebuilt tensor.
What cannot be rebuilt (the student's own functions and classes) becomes a stand-in that says
exactly what is not supported.
"""

from __future__ import annotations

import builtins

import math
from typing import Any

MAX_ITEMS = 10_000        # elements of a list, tuple or dict, and of a NumPy array
MAX_TEXT = 10_000         # characters of a string
MAX_DEPTH = 6             # nesting of containers and modules
_SCALARS = (bool, int, float)


MAX_CALLS = 300           # calls of the student's code one question's tests may make
MAX_ARG_VALUES = 10_000   # numbers in the arguments of one call


class UnsupportedInJudge(Exception):
    """A test used something of the student's that the secure grader cannot rebuild. The
    message is for course staff (the build reports it); students see a generic line."""


class StudentCallFailed(AssertionError):
    """A test called the student's code and it raised: a failed case, as under otter run."""


# ------------------------------------------------------------- calls into the student's code
# A test in the judge may call the student's functions and autograd Functions. Each call is a
# (question, name, op, arguments) spec: the run executes it at that question's check cell and
# observes what it returned; the judge's stand-ins answer from those observations. Calls the
# run has not made yet are collected, and the submission runs again with them (a few rounds).


def encode_argument(obj: Any, depth: int = 0):
    """Judge side: what a test passes to the student's code, as plain data."""
    import torch

    kind = type(obj)
    if obj is None or kind in (bool, int, str) or (kind is float and math.isfinite(obj)):
        return {"kind": "value", "value": obj}
    if depth < MAX_DEPTH and kind in (list, tuple):
        return {"kind": kind.__name__, "items": [encode_argument(v, depth + 1) for v in obj]}
    if isinstance(obj, torch.Tensor) and obj.layout == torch.strided and obj.numel() <= MAX_ARG_VALUES \
            and str(obj.dtype).removeprefix("torch.") in _DTYPES and not obj.is_complex():
        values = obj.detach().to("cpu", torch.float64).reshape(-1).tolist()
        if all(math.isfinite(v) for v in values):
            return {"kind": "tensor", "dtype": str(obj.dtype), "shape": list(obj.shape), "values": values,
                    "requires_grad": bool(obj.requires_grad)}
    what = "NumPy array" if kind.__name__ == "ndarray" and kind.__module__ == "numpy" else kind.__name__
    raise UnsupportedInJudge(f"a test passed a {what} to the student's code; calls may pass "
                             f"tensors, numbers, strings, None, and lists or tuples of these")


def decode_argument(d, depth: int = 0):
    """Sandbox side: a real object again (the spec came from the judge, validated anyway)."""
    import torch

    if depth > MAX_DEPTH or type(d) is not dict:
        raise ValueError("bad argument")
    kind = d.get("kind")
    if kind == "value":
        if type(d["value"]) not in (type(None), bool, int, float, str):
            raise ValueError("bad value")
        return d["value"]
    if kind in ("list", "tuple"):
        items = [decode_argument(v, depth + 1) for v in d["items"]]
        return items if kind == "list" else tuple(items)
    if kind == "tensor":
        values = [float(v) for v in d["values"]][:MAX_ARG_VALUES]
        t = torch.tensor(values, dtype=torch.float64).reshape([int(n) for n in d["shape"]])
        t = t.to(_dtype(torch, d["dtype"]))
        return t.requires_grad_(True) if d.get("requires_grad") and t.dtype.is_floating_point else t
    raise ValueError("bad argument kind")


def call_key(spec) -> str:
    import json
    return json.dumps(list(spec), sort_keys=True)


def run_call(target, op: str, args: list):
    """Sandbox side: one call spec on the student's object."""
    import torch

    decoded = [decode_argument(a) for a in args]
    if op == "call":
        return target(*decoded)
    if op == "forward":
        return target.apply(*decoded)
    if op in ("backward", "call_backward"):   # gradients of one call, given the incoming gradients
        *inputs, grads = decoded
        if op == "backward":   # a Function's backward: every floating input gets a gradient
            leaves = [t.detach().requires_grad_(True) if isinstance(t, torch.Tensor) and t.dtype.is_floating_point
                      else t for t in inputs]
            out = target.apply(*leaves)
        else:                  # a function's: the inputs the test made track gradients
            leaves = inputs
            out = target(*leaves)
        outs = out if isinstance(out, tuple) else (out,)
        grads = grads if isinstance(grads, (list, tuple)) else (grads,)
        wanted = [t for t in leaves if isinstance(t, torch.Tensor) and t.requires_grad]
        got = iter(torch.autograd.grad(outs, wanted, grads, allow_unused=True))
        return tuple(next(got) if isinstance(t, torch.Tensor) and t.requires_grad else None for t in leaves)
    raise ValueError("bad op")


class CallBroker:
    """Judge side: the run's answers to one question's calls, and the calls still missing."""

    def __init__(self, question: str, checks, answers: dict[str, dict] | None = None) -> None:
        self.question = question
        self.checks = checks
        self.answers = answers or {}      # call_key(spec) -> observed value (plain)
        self.missing: list[tuple] = []    # specs the run has not answered yet
        self._missing_keys: set[str] = set()
        self.missed = False               # the current test needed a call not answered yet
        self.count = 0

    def call(self, name: str, op: str, args: tuple, placeholder):
        self.count += 1
        if self.count > MAX_CALLS:
            raise UnsupportedInJudge(f"the tests of {self.question} call the student's code more than "
                                     f"{MAX_CALLS} times")
        spec = (self.question, name, op, [encode_argument(a) for a in args])
        key = call_key(spec)
        if key not in self.answers:
            self.missed = True
            if key not in self._missing_keys:   # each call once, however often the test makes it
                self._missing_keys.add(key)
                self.missing.append(spec)
            return placeholder()
        observed = self.answers[key]
        if not isinstance(observed, dict):
            raise ValueError("bad call answer")
        if observed.get("kind") == "raised":
            # the error's text and a class of the student's own naming could carry the test's
            # arguments out into the feedback: only the name of a built-in error class is shown
            kind = str(observed.get("type", ""))
            kind = kind if kind in _BUILTIN_ERRORS else "an error"
            raise StudentCallFailed(f"`{name}` raised {kind} when the test called it")
        return Rebuilder(self.checks).env({"returned": observed})["returned"]


_BUILTIN_ERRORS = frozenset(n for n, v in vars(builtins).items() if isinstance(v, type) and issubclass(v, BaseException))


# --------------------------------------------------------------------------- sandbox side


def observe_value(obj: Any, name: str, checks, *, probe_inputs=None, depth: int = 0) -> dict:
    """Plain data for one value (checks is the autograd_checks module of the run)."""
    import torch

    kind = type(obj)
    if obj is None:
        return {"kind": "none"}
    if obj is Ellipsis:   # the template's `x = ...`: the checks say it is still to be written
        return {"kind": "ellipsis"}
    if kind in _SCALARS:
        if kind is int and not -2**63 <= obj < 2**63:
            return {"kind": "other", "type": "int (too large)"}
        return {"kind": kind.__name__, "value": obj if kind is not float or math.isfinite(obj) else repr(obj)}
    if kind is str:
        return {"kind": "str", "value": obj[:MAX_TEXT]}
    if depth < MAX_DEPTH and kind in (list, tuple) and len(obj) <= MAX_ITEMS:
        return {"kind": kind.__name__,
                "items": [observe_value(v, name, checks, depth=depth + 1) for v in obj]}
    if depth < MAX_DEPTH and kind is dict and len(obj) <= MAX_ITEMS \
            and all(type(k) in (str, int, float, bool) for k in obj):
        return {"kind": "dict", "items": [[observe_value(k, name, checks, depth=depth + 1),
                                           observe_value(v, name, checks, depth=depth + 1)]
                                          for k, v in obj.items()]}
    if kind in (torch.Tensor, torch.nn.Parameter):
        facts = checks.observe(obj, name)
        return {"kind": "tensor", "parameter": kind is torch.nn.Parameter, "facts": facts.to_plain()}
    array = _ndarray(obj)
    if array is not None:
        return array
    if isinstance(obj, type) and issubclass(obj, torch.autograd.Function):
        return {"kind": "function", "facts": checks.observe(obj, name, probe_inputs=probe_inputs).to_plain()}
    if isinstance(obj, torch.nn.Module) and depth < MAX_DEPTH:
        return _module(obj, name, checks, depth)
    if callable(obj):
        what = f"class {obj.__name__}" if isinstance(obj, type) else type(obj).__name__
        return {"kind": "callable", "type": str(what)[:80]}
    return {"kind": "other", "type": kind.__name__[:80]}


def _ndarray(obj) -> dict | None:
    import numpy as np

    if type(obj) is not np.ndarray or obj.dtype.kind not in "biuf" or obj.size > MAX_ITEMS:
        return None
    flat = obj.astype(np.float64).reshape(-1).tolist()
    return {"kind": "ndarray", "dtype": str(obj.dtype), "shape": list(obj.shape),
            "values": [v if math.isfinite(v) else repr(v) for v in flat]}


def _module(obj, name: str, checks, depth: int) -> dict:
    import torch

    cls = type(obj)
    builtin = cls.__module__.startswith("torch.nn.") and getattr(torch.nn, cls.__name__, None) is cls
    params = {k: observe_value(p, f"{name}.{k}", checks, depth=depth + 1)
              for k, p in obj._parameters.items() if p is not None}
    buffers = {k: observe_value(b, f"{name}.{k}", checks, depth=depth + 1)
               for k, b in obj._buffers.items() if b is not None}
    children = {k: observe_value(m, f"{name}.{k}", checks, depth=depth + 1)
                for k, m in obj._modules.items() if m is not None}
    settings = {k: v for k, v in vars(obj).items()
                if not k.startswith("_") and (type(v) in (*_SCALARS, str) or
                                              (type(v) is tuple and all(type(i) in _SCALARS for i in v)))}
    return {"kind": "module", "class": cls.__name__[:80], "builtin": builtin, "training": bool(obj.training),
            "settings": {k: list(v) if type(v) is tuple else v for k, v in settings.items()},
            "parameters": params, "buffers": buffers, "children": children}


# ---------------------------------------------------------------------------- judge side


def _number(value) -> float:
    if type(value) in (int, float):
        try:
            return float(value)
        except OverflowError:
            raise ValueError("a number out of range") from None
    if value in ("nan", "inf", "-inf"):
        return float(value)
    raise ValueError("expected a number")


class Rebuilder:
    """Real objects from observed data, for one question's environment in the judge. Tensors
    that were related in the run (one computed from another) are related here too: a rebuilt
    non-leaf tensor has a grad_fn of the observed name whose inputs are the rebuilt tensors its
    graph reached."""

    def __init__(self, checks, broker: CallBroker | None = None) -> None:
        import torch

        self.torch = torch
        self.checks = checks
        self.broker = broker
        self._top = ""                         # the notebook name of the value being rebuilt
        self.by_ident: dict[int, Any] = {}     # run-side ident (leaf) / node id -> rebuilt tensor
        self.pending: list[tuple[Any, Any]] = []

    def env(self, plain: dict[str, dict]) -> dict[str, Any]:
        if not isinstance(plain, dict) or len(plain) > 1000:
            raise ValueError("bad observation")
        facts = {}
        for name, value in plain.items():
            if type(name) is not str:
                raise ValueError("bad name")
            self._collect(value, facts, 0)
        self._tensors(facts)
        out = {}
        for name, value in plain.items():
            self._top = name
            out[name] = self.value(value, 0)
        return out

    # tensors first, all together, so that graph relations can be rebuilt
    def _collect(self, value, facts: dict, depth: int) -> None:
        if depth > MAX_DEPTH or not isinstance(value, dict):
            raise ValueError("bad value")
        kind = value.get("kind")
        if kind == "tensor":
            f = self.checks.facts_from_plain(value["facts"])
            facts[id(value)] = (f, bool(value.get("parameter")))
        elif kind in ("list", "tuple"):
            for item in value["items"][:MAX_ITEMS]:
                self._collect(item, facts, depth + 1)
        elif kind == "dict":
            for pair in value["items"][:MAX_ITEMS]:
                self._collect(pair[1], facts, depth + 1)
        elif kind == "module":
            for group in ("parameters", "buffers", "children"):
                for item in value[group].values():
                    self._collect(item, facts, depth + 1)

    def _tensors(self, facts: dict) -> None:
        self._facts_by_key = facts
        self._built: dict[int, Any] = {}
        by_node = {f.node: key for key, (f, _) in facts.items() if not f.is_leaf and f.node}
        by_leaf = {f.ident: key for key, (f, _) in facts.items() if f.is_leaf}
        self._inputs = {
            key: [k for i in f.reaches for k in (by_leaf.get(i), by_node.get(i)) if k is not None and k != key]
            for key, (f, _) in facts.items()}
        for key in facts:
            self._tensor(key, set())

    def _tensor(self, key: int, seen: set):
        if key in self._built:
            return self._built[key]
        if key in seen:
            raise ValueError("observed graph has a cycle")
        seen.add(key)
        torch = self.torch
        f, parameter = self._facts_by_key[key]
        data = f.data
        dtype = _dtype(torch, data.dtype)
        values = data.values if data.values is not None else [0.0] * math.prod(data.shape)
        base = torch.tensor(values, dtype=torch.float64).reshape(data.shape).to(dtype)
        if f.is_leaf or f.grad_fn is None:
            tensor = torch.nn.Parameter(base, requires_grad=f.requires_grad) if parameter else base
            if not parameter and f.requires_grad and dtype.is_floating_point:
                tensor.requires_grad_(True)
        else:
            inputs = [self._tensor(k, seen) for k in self._inputs[key]]
            inputs = [t for t in inputs if t.requires_grad] or [torch.zeros((), requires_grad=True)]
            tensor = _graph_node(torch, f.grad_fn).apply(base, *inputs)
        if f.grad is not None and f.grad.values is not None:
            grad = torch.tensor(f.grad.values, dtype=torch.float64).reshape(f.grad.shape).to(_dtype(torch, f.grad.dtype))
            if not tensor.is_leaf:
                tensor.retain_grad()
            tensor.grad = grad
        self.checks.judge_facts(tensor, f)
        self._built[key] = tensor
        return tensor

    def value(self, value: dict, depth: int):
        if depth > MAX_DEPTH or not isinstance(value, dict):
            raise ValueError("bad value")
        kind = value.get("kind")
        if kind == "none":
            return None
        if kind == "ellipsis":
            return Ellipsis
        if kind == "bool":
            if type(value["value"]) is not bool:
                raise ValueError("bad bool")
            return value["value"]
        if kind == "int":
            if type(value["value"]) is not int:
                raise ValueError("bad int")
            return value["value"]
        if kind == "float":
            return _number(value["value"])
        if kind == "str":
            if type(value["value"]) is not str:
                raise ValueError("bad str")
            return value["value"][:MAX_TEXT]
        if kind in ("list", "tuple"):
            items = [self.value(v, depth + 1) for v in value["items"][:MAX_ITEMS]]
            return items if kind == "list" else tuple(items)
        if kind == "dict":
            out = {}
            for pair in value["items"][:MAX_ITEMS]:
                key = self.value(pair[0], depth + 1)
                if type(key) not in (str, int, float, bool):
                    raise ValueError("bad key")
                out[key] = self.value(pair[1], depth + 1)
            return out
        if kind == "tensor":
            return self._built[id(value)]
        if kind == "ndarray":
            import numpy as np
            dtype = np.dtype(str(value["dtype"]))
            if dtype.kind not in "biuf":
                raise ValueError("bad dtype")
            shape = [int(n) for n in value["shape"]]
            return np.array([_number(v) for v in value["values"][:MAX_ITEMS]], dtype=np.float64).reshape(shape).astype(dtype)
        if kind == "function":
            facts = self.checks.facts_from_plain(value["facts"])
            stand_in = _function_stand_in(self.torch, facts.type_name or facts.name,
                                          self.broker if depth == 0 else None, self._top)
            self.checks.judge_facts(stand_in, facts)
            return stand_in
        if kind == "module":
            return self._module(value, depth)
        if kind == "callable":
            if self.broker is not None and value.get("type") == "function" and depth == 0:
                return _RemoteCallable(self._top, self.broker)
            return _StandIn(str(value.get("type", "callable"))[:80])
        if kind == "other":
            return _StandIn(str(value.get("type", "object"))[:80])
        raise ValueError(f"unknown kind {kind!r}")

    def _module(self, value: dict, depth: int):
        torch = self.torch
        name = str(value["class"])
        cls = getattr(torch.nn, name, None) if value.get("builtin") else None
        if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
            cls = _module_stand_in(torch, name, self.broker, self._top if depth == 0 else "")
        module = cls.__new__(cls)
        torch.nn.Module.__init__(module)
        for key, setting in value["settings"].items():
            if type(key) is not str or key.startswith("_"):
                raise ValueError("bad setting")
            if type(setting) is list:
                setting = tuple(setting)
            if type(setting) not in (*_SCALARS, str, tuple):
                raise ValueError("bad setting")
            object.__setattr__(module, key, setting)
        module.training = bool(value.get("training", True))
        for key, item in value["parameters"].items():
            tensor = self.value(item, depth + 1)
            if not isinstance(tensor, torch.nn.Parameter):
                tensor = torch.nn.Parameter(tensor.detach(), requires_grad=tensor.requires_grad)
            module.register_parameter(str(key), tensor)
        for key, item in value["buffers"].items():
            module.register_buffer(str(key), self.value(item, depth + 1))
        for key, item in value["children"].items():
            module.add_module(str(key), self.value(item, depth + 1))
        return module


_DTYPES = ("float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool",
           "complex64", "complex128")


def _dtype(torch, text: str):
    name = text.removeprefix("torch.")
    if name not in _DTYPES:
        raise ValueError("bad dtype")
    return getattr(torch, name)


_NODE_CLASSES: dict[str, type] = {}


def _graph_node(torch, name: str):
    """An autograd Function whose graph node has the observed grad_fn's name (e.g.
    PowBackward0), so that `y.grad_fn`, its type name and the graph's reach look as in the run."""
    if name not in _NODE_CLASSES:
        def forward(ctx, values, *inputs):
            return values.clone()

        def backward(ctx, grad_output):
            raise UnsupportedInJudge(
                "a test called backward() through a tensor the student's code computed; "
                "the secure grader only has its values. Test the student's .grad instead "
                "(e.g. ac.check_grad_value, or torch.allclose(x.grad, ...)).")

        cls = type("Rebuilt", (torch.autograd.Function,),
                   {"forward": staticmethod(forward), "backward": staticmethod(backward)})
        cls._backward_cls.__name__ = cls._backward_cls.__qualname__ = name[:80]
        _NODE_CLASSES[name] = cls
    return _NODE_CLASSES[name]


def _function_stand_in(torch, name: str, broker: CallBroker | None = None, attr: str = ""):
    """A class in place of the student's autograd Function: the checks module knows its probe,
    and a test that applies it (gradcheck included) gets forward and backward from the run."""
    def unsupported(ctx, *args, **kwargs):
        raise UnsupportedInJudge(f"a test applied the student's autograd Function {name}, which is not bound to "
                                 f"a name of the notebook (inside a container); apply a Function the notebook names")

    if broker is None:
        return type(str(name)[:80], (torch.autograd.Function,),
                    {"forward": staticmethod(unsupported), "backward": staticmethod(unsupported)})

    def forward(ctx, *inputs):
        ctx.inputs = inputs
        first = next((t for t in inputs if isinstance(t, torch.Tensor)), torch.zeros(()))
        out = broker.call(attr, "forward", inputs, lambda: torch.zeros_like(first))
        if not isinstance(out, torch.Tensor):
            raise StudentCallFailed(f"{name}.apply returned {type(out).__name__} instead of a tensor")
        return out.detach().to(first.dtype) if out.is_floating_point() else out.detach()

    def backward(ctx, *grad_outputs):
        inputs = ctx.inputs
        grads = grad_outputs[0] if len(grad_outputs) == 1 else list(grad_outputs)
        placeholder = tuple(torch.zeros_like(t) if isinstance(t, torch.Tensor) else None for t in inputs)
        out = broker.call(attr, "backward", (*inputs, grads), lambda: placeholder)
        out = tuple(out) if isinstance(out, (list, tuple)) else (out,)
        return tuple(g.to(t.dtype) if isinstance(g, torch.Tensor) and isinstance(t, torch.Tensor) else g
                     for g, t in zip(out, inputs)) if len(out) == len(inputs) else out

    return type(str(name)[:80], (torch.autograd.Function,),
                {"forward": staticmethod(forward), "backward": staticmethod(backward)})


class _RemoteCallable:
    """In place of the student's function: calling it runs the student's code in the run, at
    this question's check cell, on the test's arguments."""

    def __init__(self, name: str, broker: CallBroker) -> None:
        self._name, self._broker = name, broker

    def __call__(self, *args, **kwargs):
        if kwargs:
            raise UnsupportedInJudge(f"a test called the student's {self._name} with keyword arguments; "
                                     f"pass them by position")
        return _remote_result(self._name, self._broker, args)

    def __repr__(self) -> str:
        return f"<function {self._name} from the student's notebook>"


def _remote_result(name: str, broker: CallBroker, args: tuple):
    """One call of the student's function or module; a tensor result that depends on inputs
    tracking gradients gets a graph whose backward is the student's code again, in the run
    (first-order: the gradients it brings back have no graph of their own)."""
    import torch

    first = next((a for a in args if isinstance(a, torch.Tensor)), None)
    # until the run answers, a tensor argument's zeros stand in, so a test that calls the
    # function in a loop asks for all its calls in one round
    out = broker.call(name, "call", args, _missing_answer if first is None else
                      lambda: torch.zeros_like(first, requires_grad=False))
    tracked = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor) and a.requires_grad]
    if not (tracked and torch.is_grad_enabled() and isinstance(out, torch.Tensor) and out.requires_grad):
        return out   # as in the run: a result that does not track gradients has no graph

    class RemoteCall(torch.autograd.Function):
        @staticmethod
        def forward(ctx, result, *inputs):
            return result.clone()

        @staticmethod
        def backward(ctx, grad):
            grads = broker.call(name, "call_backward", (*args, grad), _missing_answer)
            grads = tuple(grads) if isinstance(grads, (list, tuple)) else ()
            if len(grads) != len(args):
                raise StudentCallFailed(f"the gradients of `{name}` could not be computed")
            picked = [grads[i] for i in tracked]
            return (None, *(g.to(args[i].dtype) if isinstance(g, torch.Tensor) else None
                            for g, i in zip(picked, tracked)))

    RemoteCall.__name__ = f"{name[:60]}Backward"
    # the rebuilt result's own graph is left out: its backward is the student's, asked for above
    return RemoteCall.apply(out.detach(), *(args[i] for i in tracked))


class _MissingAnswer(Exception):
    """A call whose answer the next run brings: this test's verdict is not final yet."""


def _missing_answer():
    raise _MissingAnswer()


def _module_stand_in(torch, name: str, broker: CallBroker | None = None, attr: str = ""):
    """A module class in place of the student's own: its parameters are real; calling a module
    bound to a name of the notebook runs its forward in the run."""
    def forward(self, *args, **kwargs):
        if broker is None or not attr:
            raise UnsupportedInJudge(
                f"a test called a module of the student's class {name} that is not bound to a name of "
                f"the notebook (inside a container or another module); call a module the notebook names")
        if kwargs:
            raise UnsupportedInJudge(f"a test called the student's {attr} with keyword arguments; pass them by position")
        return _remote_result(attr, broker, args)

    return type(str(name)[:80], (torch.nn.Module,), {"forward": forward})


class _StandIn:
    """In place of a value the grader cannot rebuild: any use says what it was."""

    def __init__(self, what: str) -> None:
        object.__setattr__(self, "_what", what)

    def _unsupported(self, *args, **kwargs):
        raise UnsupportedInJudge(
            f"a test used a {self._what} from the student's notebook; the secure grader can "
            f"only rebuild tensors, numbers, strings, lists, tuples, dicts, NumPy arrays, torch.nn "
            f"modules and autograd Functions (through the checks module).")

    __call__ = __getattr__ = __getitem__ = __iter__ = __len__ = __bool__ = __float__ = __int__ = _unsupported
    __eq__ = __lt__ = __gt__ = __add__ = __mul__ = __sub__ = _unsupported

    def __repr__(self) -> str:
        return f"<{self._what} from the student's notebook>"
