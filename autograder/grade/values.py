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

import math
from typing import Any

MAX_ITEMS = 10_000        # elements of a list, tuple or dict, and of a NumPy array
MAX_TEXT = 10_000         # characters of a string
MAX_DEPTH = 6             # nesting of containers and modules
_SCALARS = (bool, int, float)


class UnsupportedInJudge(Exception):
    """A test used something of the student's that the secure grader cannot rebuild. The
    message is for course staff (the build reports it); students see a generic line."""


# --------------------------------------------------------------------------- sandbox side


def observe_value(obj: Any, name: str, checks, *, probe_inputs=None, depth: int = 0) -> dict:
    """Plain data for one value (checks is the autograd_checks module of the run)."""
    import torch

    kind = type(obj)
    if obj is None:
        return {"kind": "none"}
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

    def __init__(self, checks) -> None:
        import torch

        self.torch = torch
        self.checks = checks
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
        return {name: self.value(value, 0) for name, value in plain.items()}

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
            stand_in = _function_stand_in(self.torch, facts.type_name or facts.name)
            self.checks.judge_facts(stand_in, facts)
            return stand_in
        if kind == "module":
            return self._module(value, depth)
        if kind == "callable":
            return _StandIn(str(value.get("type", "callable"))[:80])
        if kind == "other":
            return _StandIn(str(value.get("type", "object"))[:80])
        raise ValueError(f"unknown kind {kind!r}")

    def _module(self, value: dict, depth: int):
        torch = self.torch
        name = str(value["class"])
        cls = getattr(torch.nn, name, None) if value.get("builtin") else None
        if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
            cls = _module_stand_in(torch, name)
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


def _function_stand_in(torch, name: str):
    """A class in place of the student's autograd Function: the checks module knows its probe;
    calling it from a test is not supported yet."""
    def unsupported(ctx, *args, **kwargs):
        raise UnsupportedInJudge(
            f"a test called the student's autograd Function {name} directly; the secure grader "
            f"judges Functions through the checks module (ac.check_function_forward, "
            f"ac.check_function_gradcheck, ac.check_function_upstream).")

    return type(str(name)[:80], (torch.autograd.Function,),
                {"forward": staticmethod(unsupported), "backward": staticmethod(unsupported)})


def _module_stand_in(torch, name: str):
    def forward(self, *args, **kwargs):
        raise UnsupportedInJudge(
            f"a test called the student's module class {name}; the secure grader has its "
            f"parameters and settings but does not run its forward. Test its parameters or outputs "
            f"the student's code stored in a variable.")

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
