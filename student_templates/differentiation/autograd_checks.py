"""Autograd-aware checks for the lab "Differentiation in PyTorch".

This one file serves three places and gives one verdict in all of them:

* students' ``grader.check("qN")`` (the public tests, run in their own kernel);
* ``otter run`` / Gradescope grading of the autograder zip (all tests, in the kernel);
* the secure grader, which observes the student's names in a sandbox and runs the tests
  in a separate judge process on the plain data it observed.

Every check therefore works in two steps: ``observe`` turns whatever it is given (a live
tensor, or already observed ``Facts``) into plain data, and the check judges that data.
A failed check raises ``CheckFailed`` (an ``AssertionError``) whose message tells the
student what is wrong in plain words, without revealing reference values.

Importing this module starts tracking ``backward()`` calls, so that the checks can tell a
gradient written by autograd from one typed in by hand.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import inspect
import json
import math
import os
import re
import sys
import warnings
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch.autograd.variable import Variable

__all__ = [
    "CheckFailed", "StaleName", "Stale", "BindingLog", "cell_fingerprint", "assigned_names", "lab_provided_cells",
    "Facts", "TensorData", "FunctionProbe",
    "observe", "observe_names", "facts_from_plain",
    "check_tensor", "check_computed_from", "check_value", "check_backward_called", "check_grad_value",
    "check_function", "check_function_forward", "check_function_gradcheck",
    "check_function_upstream", "reference_gradients", "RTOL", "ATOL", "judge_facts", "forget_judge_facts",
]

# Gradients are compared in float64 relative to the reference: |s - r| <= ATOL + RTOL*|r|.
# Students compute in float32, so RTOL allows float32 rounding; ATOL covers zero gradients.
RTOL = 1e-4
ATOL = 1e-5
MAX_VALUES = 100_000      # numbers recorded per tensor; bigger tensors keep shape only
MAX_GRAPH_NODES = 100_000  # autograd graph nodes walked per tensor
PROBE_EPS = 1e-6           # step of the numerical derivative of a Function's forward
# Curvature (second derivative along a random direction) is compared loosely: students compute
# it in float32, and it only has to tell the asked-for function from a surrogate with the right
# value and slope at one point (a tangent line has curvature 0).
CURVATURE_RTOL = 1e-3

# Captured at import, before any student code runs: C-level accessors that a student
# cannot monkeypatch (torch._C.TensorBase is an immutable type).
_TB = torch._C.TensorBase
_get_grad = _TB.__dict__["grad"].__get__
_get_requires_grad = _TB.__dict__["requires_grad"].__get__
_get_is_leaf = _TB.__dict__["is_leaf"].__get__
_get_grad_fn = _TB.__dict__["grad_fn"].__get__
_get_dtype = _TB.__dict__["dtype"].__get__
_get_shape = _TB.__dict__["shape"].__get__
_get_version = _TB.__dict__["_version"].__get__
_detach = _TB.detach
_to_double = _TB.double
_tolist = _TB.tolist
_numel = _TB.numel
_is_floating_point = _TB.is_floating_point
_is_complex = _TB.is_complex
_reshape = _TB.reshape
_new_tensor = torch.tensor
_ones = torch.ones
_autograd_grad = torch.autograd.grad
_rand = torch.rand
_zeros_like = torch.zeros_like
_Generator = torch.Generator
_sum = _TB.sum
_mul = _TB.mul
_float64 = torch.float64
_gradcheck = torch.autograd.gradcheck
_PLAIN_TENSOR_TYPES = (torch.Tensor, torch.nn.Parameter)
_FunctionBase = torch.autograd.Function
_type_getattribute = type.__getattribute__
_signature = inspect.signature
_type = type
_isinstance = isinstance
_issubclass = issubclass


class CheckFailed(AssertionError):
    """A check did not pass; the message is written for the student."""


class StaleName(CheckFailed):
    """A test used a name that this question's own cells did not set."""


class Stale:
    """In a question's environment, a name its cells did not set: it still holds what an
    earlier question's cells left there, so every test that uses it fails, saying why."""

    def __init__(self, name: str, earlier: str) -> None:
        # `earlier` is the question whose cells set it, then, after a newline, the error that
        # stopped the cell of this question meant to set it (either may be empty)
        earlier, _, error = earlier.partition("\n")
        if earlier and error:
            message = (f"`{name}` was not set in this question's cells (it still holds the value from {earlier}): "
                       f"the cell that sets it stopped with an error ({error}). Fix that error and run the cell again.")
        elif error:
            message = (f"`{name}` was not set: the cell that sets it stopped with an error ({error}). "
                       f"Fix that error and run the cell again.")
        else:
            message = (f"`{name}` was not set in this question's cells (it still holds the value from "
                       f"{earlier}). Run this question's cells, in order, before its check.")
        object.__setattr__(self, "_message", message)

    def _fail(self, *args, **kwargs):
        raise StaleName(object.__getattribute__(self, "_message"))

    __getattr__ = __call__ = __getitem__ = __iter__ = __len__ = __bool__ = __float__ = __int__ = _fail
    __eq__ = __ne__ = __lt__ = __gt__ = __le__ = __ge__ = __add__ = __radd__ = __mul__ = __rmul__ = _fail
    __sub__ = __rsub__ = __truediv__ = __pow__ = __neg__ = __abs__ = __index__ = __hash__ = _fail


# ------------------------------------------------------------- the state each question sees

LAB_FILE = "autograd_lab.json"   # written by `autograder build`: the lab's own cells, by fingerprint
_OTTER_SEED_LINE = re.compile(r"^(np|random)_[A-Za-z0-9]+(\.random)?\.seed\(-?\d+\)$")


def cell_fingerprint(source: str) -> str:
    """Equal for two cells that differ only in comments, blank lines and spacing."""
    lines = source.splitlines()
    tree = _python_tree(source)
    if tree is not None:
        canonical = ast.dump(tree)
    else:   # not Python even for IPython: compare the lines that hold code
        canonical = "\n".join(ln.rstrip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _python_tree(source: str) -> ast.Module | None:
    """The cell as Python, after IPython's transform where it has magics; None if neither parses."""
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError):
        pass
    try:
        from IPython.core.inputtransformer2 import TransformerManager
        return ast.parse(TransformerManager().transform_cell(source))
    except Exception:   # noqa: BLE001
        return None


class BindingLog:
    """Which question's cells last set each name, in the order the cells ran, so that each
    question is judged on what its own cells set. A name last set by one of the lab's own cells
    (set-up, data, plots) is shared by every question; a name last set by an answer cell belongs
    to the first question checked after that cell ran, and is stale for every other question. The kernel and
    the secure grader keep one log each, by the same rule."""

    def __init__(self) -> None:
        self._seen: dict[str, Any] = {}      # name -> the object it held when last looked at
        self._set_at: dict[str, int] = {}    # name -> how many checks had run when an answer cell set it
        self._checks: list[str] = []         # the questions checked so far, in order
        self._raised: dict[str, str] = {}    # name -> the error that stopped the answer cell assigning it

    def observe(self, namespace: Mapping[str, Any], *, provided: bool, names=None, assigned=()) -> None:
        """Note the names a cell (re)bound: those whose object changed, and `assigned`, the names
        a cell that ran to the end assigns (`x = ...` twice binds the same Ellipsis); `provided`
        when the cell is one of the lab's own."""
        for name in list(namespace) if names is None else names:
            if name.startswith("_"):   # IPython's _, _i3, __builtins__ ...
                continue
            value = namespace.get(name, _MISSING)
            if self._seen.get(name, _MISSING) is value and not (name in assigned and value is not _MISSING):
                continue
            self._seen[name] = value
            self._raised.pop(name, None)
            if provided or value is _MISSING:
                self._set_at.pop(name, None)
            else:
                self._set_at[name] = len(self._checks)

    def raised(self, names, error: str) -> None:
        """An answer cell that assigns `names` stopped with `error` before it set them."""
        for name in names:
            self._raised[name] = str(error)[:200].replace("\n", " ")

    def unset(self) -> set[str]:
        """The names a stopped answer cell was to set, since the last check."""
        return set(self._raised)

    def checked(self, question: str) -> None:
        self._checks.append(question)
        self._raised.clear()

    def pending(self) -> list[str]:
        """The names answer cells set since the last check: they belong to the next question checked."""
        return [name for name, at in self._set_at.items() if at == len(self._checks)]

    def stale(self, question: str, names, present=None) -> dict[str, str]:
        """name -> the earlier question whose cells last set it, for the names that are stale;
        after a newline, the error of the cell of this question that was to set it, if one
        stopped (for a name not `present` at all, only that)."""
        out = {}
        for name in names:
            at = self._set_at.get(name)
            # the cells that set it belong to the first question checked after them
            owner = self._checks[at] if at is not None and at < len(self._checks) else None
            error = self._raised.get(name)
            if owner is not None and owner != question:
                out[name] = owner + (f"\n{error}" if error else "")
            elif error and present is not None and name not in present:
                out[name] = f"\n{error}"
        return out


def assigned_names(source: str) -> frozenset[str]:
    """The names a cell assigns at its top level (not inside its functions and classes)."""
    tree = _python_tree(source)
    if tree is None:
        return frozenset()
    names: set[str] = set()
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            continue
        if isinstance(node, ast.Lambda):
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
        todo.extend(ast.iter_child_nodes(node))
    return frozenset(names)


def lab_provided_cells(folder: str | None = None) -> frozenset[str] | None:
    """Fingerprints of the lab's own code cells, from autograd_lab.json next to this module
    (or in `folder`); None when the lab has none (then every name is shared)."""
    path = os.path.join(folder or os.path.dirname(os.path.abspath(__file__)), LAB_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        cells = data["provided_cells"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return frozenset(c for c in cells if isinstance(c, str))


# otter words a failed case as "Error at line N in test q1:\n  <the test's code>\nCheckFailed: ...";
# a student needs only the message, once, with `names` shown as code in Jupyter's output
_FAILURE = re.compile(r"^(?:CheckFailed|StaleName|AssertionError): (.+)", re.M | re.S)


def _tidied(result):
    """otter's result for one question, its failures reduced to the checks' messages (a message
    that repeats says so once), and rendered as HTML with code where the message has `code`."""
    try:
        seen, results = set(), []
        for tcr in result.test_case_results:
            message = tcr.message or ""
            found = None if tcr.passed else _FAILURE.search(message)
            if found is not None:
                head = message.split("Error at line", 1)[0]   # otter's "❌ Test case failed"
                text = found.group(1).strip().strip("'")
                tcr = dataclasses.replace(tcr, message=head + ("(the same as above)" if text in seen else text))
                seen.add(text)
            results.append(tcr)
        result.test_case_results = results
        if not result.passed_all:
            # a partial of str, not an object of this module: otter run pickles the results and
            # reads them back where this module is not importable
            result._repr_html_ = functools.partial(str, _result_html(result))
    except Exception:   # noqa: BLE001  (another otter: its own output is still right)
        pass
    return result


def _result_html(result) -> str:
    """Jupyter's rich output of a question that did not pass: one line a failed case."""
    import html

    def code(text: str) -> str:
        return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text, quote=False))

    failed = [t for t in result.test_case_results if not t.passed]
    rows = "".join(f"<li>{code((t.message or 'failed').replace('❌ Test case failed', '').strip())}</li>"
                   for t in failed)
    passed = len(result.test_case_results) - len(failed)
    return (f"<p><strong style='color: #b00;'>{html.escape(result.name)}</strong>: {len(failed)} of "
            f"{len(result.test_case_results)} checks did not pass ({passed} passed).</p><ul>{rows}</ul>")


# In a kernel: the answer cells run since the last check (a check can then name the line of
# the student's code that did something); empty in the secure grader's judge.
_ANSWER_SOURCES: list[str] = []
_GRAPH_BREAKERS = {"data": "`{x}.data`", "detach": "`.detach()`", "item": "`.item()`", "numpy": "`.numpy()`",
                   "tolist": "`.tolist()`"}


def _graph_breaker(out: str) -> str | None:
    """What in the answer cells' assignment to `out` gives numbers without autograd's history:
    `x.data`, .detach(), .item(), .numpy(), .tolist(), a NumPy function, float()/int()."""
    for source in reversed(_ANSWER_SOURCES):
        tree = _python_tree(source)
        for node in ast.walk(tree) if tree is not None else ():
            if not (_isinstance(node, ast.Assign) and any(_isinstance(t, ast.Name) and t.id == out
                                                           for t in node.targets)):
                continue
            for part in ast.walk(node.value):
                if _isinstance(part, ast.Attribute) and part.attr in _GRAPH_BREAKERS:
                    owner = part.value.id if _isinstance(part.value, ast.Name) else "..."
                    return _GRAPH_BREAKERS[part.attr].format(x=owner)
                if _isinstance(part, ast.Call) and _isinstance(part.func, ast.Name) and part.func.id in ("float", "int"):
                    return f"`{part.func.id}()`"
                if _isinstance(part, ast.Attribute) and _isinstance(part.value, ast.Name) and part.value.id in ("np", "numpy"):
                    return f"`{part.value.id}.{part.attr}`"
    return None


def _track_kernel_bindings() -> None:
    """In a Jupyter kernel (students' checks, otter run): keep a BindingLog of the cells that
    run, and give each otter check an environment in which stale names are Stale markers."""
    try:
        from IPython import get_ipython
        shell = get_ipython()
    except Exception:   # noqa: BLE001  (no IPython: a script, the secure grader's run)
        return
    if shell is None or getattr(shell, "_autograd_binding_log", None) is not None:
        return
    tracker.filled_before(shell.user_ns)
    provided = lab_provided_cells()
    try:
        from otter.execute import Checker
    except Exception:   # noqa: BLE001
        return
    if provided is None or not isinstance(Checker.__dict__.get("check"), classmethod):
        return
    log, current = BindingLog(), {"provided": True}
    original = Checker.__dict__["check"].__func__

    def without_otter_seeds(source: str) -> str:
        # otter run puts `np_<id>.random.seed(N)` / `random_<id>.seed(N)` before every cell when a
        # course sets `seed`; only lines on the real numpy and random modules are otter's
        modules = (sys.modules.get("numpy"), sys.modules.get("random"))
        return "\n".join(line for line in source.splitlines()
                         if not (_OTTER_SEED_LINE.match(line.strip()) and
                                 shell.user_ns.get(line.strip().split(".")[0], _MISSING) in modules))

    def before_cell(info) -> None:
        source = without_otter_seeds(getattr(info, "raw_cell", "") or "")
        current["provided"] = cell_fingerprint(source) in provided
        if not current["provided"]:   # the answer cells since the last check, for the checks' messages
            _ANSWER_SOURCES.append(source)

    def after_cell(result) -> None:
        info = getattr(result, "info", None)
        error = getattr(result, "error_before_exec", None) or getattr(result, "error_in_exec", None)
        source = getattr(info, "raw_cell", "") or ""
        log.observe(shell.user_ns, provided=current["provided"], assigned=assigned_names(source) if not error else ())
        if error is not None and not current["provided"]:
            text = str(error).strip().splitlines()[0][:150] if str(error).strip() else ""
            log.raised(assigned_names(source), f"{type(error).__name__}: {text}" if text else type(error).__name__)

    # question -> what its own cells had set when it was last checked: check_all() and a later
    # check of an earlier question see that, not what later questions rebound (x, y are reused)
    snapshots: dict[str, dict] = {}

    def check(cls, nb_or_test_path, nbmeta_config, test_name=None, global_env=None):
        env = shell.user_ns if global_env is None else global_env
        question = test_name or os.path.splitext(os.path.basename(str(nb_or_test_path)))[0]
        log.observe(env, provided=current["provided"])   # what this cell set before its check
        mine = snapshots.setdefault(question, {})
        mine.update({name: env[name] for name in log.pending() if name in env})
        names = [name for name in env if not name.startswith("_")]
        stale = log.stale(question, set(names) | log.unset(), present=env)
        if stale:
            env = dict(env)
            env.update({name: mine[name] if name in mine and "\n" not in earlier else Stale(name, earlier)
                        for name, earlier in stale.items()})
        try:
            return _tidied(original(cls, nb_or_test_path, nbmeta_config, test_name, env))
        finally:
            log.checked(question)
            _ANSWER_SOURCES.clear()

    shell.events.register("pre_run_cell", before_cell)
    shell.events.register("post_run_cell", after_cell)
    Checker.check = classmethod(check)
    shell._autograd_binding_log = log


# --------------------------------------------------------------------------- facts


@dataclass(frozen=True)
class TensorData:
    """The numbers of one tensor, flattened, in float64 (values is None when too big)."""

    dtype: str
    shape: tuple[int, ...]
    values: tuple[float, ...] | None
    finite: bool


@dataclass(frozen=True)
class FunctionProbe:
    """What a custom autograd Function did on inputs chosen by the checker."""

    inputs: tuple[float, ...]
    upstream: tuple[float, ...]
    forward: tuple[float, ...] | None = None
    grad_unit: tuple[float, ...] | None = None      # backward with grad_output = 1
    grad_upstream: tuple[float, ...] | None = None  # backward with grad_output = upstream
    gradcheck: bool | None = None                    # gradcheck_ok(), as the run computed it
    error: str | None = None                         # what failed, in the student's code
    # forward at inputs +- EPS along each input (2n rows of n values): the numerical Jacobian
    perturbed: tuple[float, ...] | None = None
    # the same Function on float32 inputs, as students use it (a probe must look like real use)
    forward32: tuple[float, ...] | None = None
    grad_upstream32: tuple[float, ...] | None = None
    # how many tensors forward takes (apply(a, b) for a Function of two inputs): each gradient
    # above then lists the gradient of every input in turn, and `perturbed` moves each in turn
    arity: int = 1

    def gradcheck_ok(self) -> bool:
        """gradcheck's test, done from the numbers: backward (with grad_output 1 and with the
        upstream gradient) agrees with the numerical derivative of forward."""
        n, k = len(self.inputs), self.arity
        rows = self.perturbed
        if rows is None or self.grad_unit is None or self.grad_upstream is None or len(rows) != 2 * k * n * n \
                or len(self.grad_unit) != k * n or len(self.grad_upstream) != k * n:
            return False
        for i in range(k * n):   # input i // n, element i % n
            plus, minus = rows[2 * i * n:(2 * i + 1) * n], rows[(2 * i + 1) * n:(2 * i + 2) * n]
            column = [(a - b) / (2 * PROBE_EPS) for a, b in zip(plus, minus)]   # d out_j / d in_i
            for weights, analytic in ((None, self.grad_unit[i]), (self.upstream, self.grad_upstream[i])):
                numeric = sum(column) if weights is None else sum(c * w for c, w in zip(column, weights))
                if not math.isfinite(analytic) or abs(numeric - analytic) > 1e-5 + 1e-3 * abs(numeric):
                    return False
        return True


@dataclass(frozen=True)
class Facts:
    """Plain data about one name in the student's namespace."""

    name: str
    kind: str                      # missing | tensor | function | other
    type_name: str = ""
    ident: int = 0                 # identity of the object, to relate facts to each other
    data: TensorData | None = None
    requires_grad: bool = False
    is_leaf: bool = True
    grad_fn: str | None = None
    node: int = 0                  # identity of its grad_fn (0 for a leaf)
    reaches: tuple[int, ...] = ()  # idents of the leaf tensors and graph nodes its graph leads to
    direct: tuple[int, ...] = ()   # the graph nodes its grad_fn takes its inputs from
    grad_kind: str = "none"        # none | tensor | other
    grad: TensorData | None = None
    grad_source: str = "unknown"   # autograd | edited | unknown | untracked (filled before the checks ran)
    backward_passes: int = 0       # backward passes added up in .grad (0: unknown)
    grad_roots: tuple[int, ...] = ()   # idents of the tensors those passes started from
    grad_seeded: bool = False      # some pass started from a gradient other than ones
    grad_through: tuple[str, ...] = ()  # custom autograd Functions those passes went through
    grad_hooked: bool = False      # a hook on the tensor could have rewritten its gradient
    # d/dname (grad . r) for a direction r drawn from curvature_seed, at the pass that filled
    # .grad (None: not known, e.g. the pass went through a custom Function or added up passes)
    grad_curvature: tuple[float, ...] | None = None
    curvature_seed: int = 0
    curvature_with: tuple[int, ...] = ()   # idents of the leaves r spanned, in the order of their directions
    probe: FunctionProbe | None = None

    def to_plain(self) -> dict:
        return _plain(self)


def _plain(value):
    """Facts as JSON-ready data (dataclasses.asdict deep-copies every number: too slow here)."""
    if dataclasses.is_dataclass(value):
        return {name: _plain(getattr(value, name)) for name in value.__dataclass_fields__}
    if _isinstance(value, tuple):
        return [_plain(v) for v in value] if value and not _isinstance(value[0], (int, float)) else list(value)
    return value


# --------------------------------------------------------------------- backward tracking


@dataclass(frozen=True)
class Provenance:
    """Where a leaf's .grad came from, as the tracker saw the backward passes."""

    source: str = "unknown"        # autograd | edited | unknown
    passes: int = 0
    roots: tuple[int, ...] = ()
    seeded: bool = False
    through: tuple[str, ...] = ()
    curvature: tuple[float, ...] | None = None
    curvature_seed: int = 0
    curvature_with: tuple[int, ...] = ()


def curvature_direction(seed: int, shape: tuple[int, ...], index: int = 0) -> torch.Tensor:
    """The part of the direction r (float64, entries in [0.5, 1.5)) that lies along the
    `index`-th leaf of a pass whose curvature was taken with `seed`."""
    generator = _Generator().manual_seed(seed * 64 + index)
    return _rand(tuple(shape), generator=generator, dtype=_float64) + 0.5


# Non-leaf tensors that retain their grad: torch.autograd.grad adds into their .grad too, so the
# curvature passes put it back afterwards. (One set per process, even when this module is loaded
# twice under two names, since every loaded copy installs an engine.)
_retaining: weakref.WeakSet = getattr(torch.Tensor.retain_grad, "retaining", None)
if _retaining is None:   # (an empty WeakSet is falsy, so no `or` here)
    _retaining = weakref.WeakSet()
_set_grad = _TB.__dict__["grad"].__set__
_retain_grad = _TB.retain_grad


def _tracked_retain_grad(self):
    _retaining.add(self)
    return _retain_grad(self)


_tracked_retain_grad.retaining = _retaining
torch.Tensor.retain_grad = _tracked_retain_grad


def _curvatures(roots: list, seeds, leaves: list) -> dict:
    saved = [(t, _get_grad(t)) for t in list(_retaining)]
    try:
        return _measure_curvatures(roots, seeds, leaves)
    finally:
        for t, grad in saved:
            _set_grad(t, grad)


def _measure_curvatures(roots: list, seeds, leaves: list) -> dict:
    """Before the pass runs, for each leaf: (seed, the leaves' idents, values of d/dleaf (g . r)),
    with g the gradients the pass will accumulate (all leaves together) and r a random direction
    over all of them, so mixed partial derivatives count too; {} where autograd cannot
    differentiate the graph twice. A surrogate with the right value and slope at the point (a
    tangent line, or a sum of one-variable parts) has the wrong curvature."""
    if not leaves or len(leaves) > 64:
        return {}
    try:
        grads = _autograd_grad(roots, leaves, grad_outputs=seeds or None, retain_graph=True,
                               create_graph=True, allow_unused=True)
        used, seen = [], set()
        for leaf, g in zip(leaves, grads):
            if g is not None and _numel(leaf) <= MAX_VALUES and id(leaf) not in seen:
                seen.add(id(leaf))
                used.append((leaf, g))
        if not used:
            return {}
        seed = int.from_bytes(os.urandom(4), "little")
        order = tuple(sorted(id(leaf) for leaf, _ in used))
        terms = [_sum(_mul(g, _TB.to(curvature_direction(seed, tuple(_get_shape(leaf)), order.index(id(leaf))),
                                      _get_dtype(g))))
                 for leaf, g in used if _get_requires_grad(g)]
        total = None
        for term in terms:
            total = term if total is None else total + term
        hs = (_autograd_grad(total, [leaf for leaf, _ in used], retain_graph=True, allow_unused=True)
              if total is not None and _get_requires_grad(total) else [None] * len(used))
        out = {}
        for (leaf, _), h in zip(used, hs):
            h = _zeros_like(_detach(leaf)) if h is None else _detach(h)
            out[id(leaf)] = (seed, order, tuple(_tolist(_reshape(_to_double(h), (-1,)))))
        return out
    except Exception:   # noqa: BLE001  (no double backward for some op, a modified saved tensor, ...)
        return {}


class _BackwardTracker:
    """Records, for every leaf that backward() writes a gradient into, which tensor object
    autograd left in .grad, its version and a copy of its values (edits through .data or NumPy
    leave the version alone), how many backward passes have added up in it, which tensors those
    passes started from, with which seed, and through which custom autograd Functions."""

    def __init__(self) -> None:
        self.installed = False
        self._records: dict[int, tuple] = {}
        # graph nodes recent backward passes went through, kept alive so their ids stay unique
        self._backpropagated: dict[int, Any] = {}
        self._roots: dict[int, Any] = {}   # the tensors passes started from, kept alive likewise
        # leaves whose .grad was filled before the checks were imported (kernel only), and that .grad
        self._before: dict[int, tuple] = {}

    def install(self) -> None:
        engine = Variable._execution_engine
        if not _isinstance(engine, _TrackingEngine):
            Variable._execution_engine = _TrackingEngine(engine, self)
        self.installed = True

    def clear(self) -> None:
        self._records.clear()
        self._backpropagated.clear()
        self._roots.clear()

    def before(self, leaves: list) -> list:
        """Before a backward pass: each leaf's .grad as "fresh" (None or all zeros), the
        tracker's own Provenance, or "foreign" (set by hand: what this pass adds is tainted)."""
        states = []
        for leaf in leaves:
            grad = _get_grad(leaf)
            if grad is None or not bool(_TB.any(_detach(grad))):
                states.append("fresh")
                continue
            known = self.source(leaf)
            states.append(known if known.source == "autograd" else "foreign")
        return states

    def record(self, leaves: list, states: list, roots: list, seeded: bool,
               through: tuple[str, ...], nodes: dict | None = None, curvatures: dict | None = None) -> None:
        if len(self._backpropagated) > 200_000:
            self._backpropagated.clear()
        self._backpropagated.update(nodes or {})
        for root in roots:
            self._roots[id(root)] = root
        root_ids = tuple(id(r) for r in roots)
        for leaf, state in zip(leaves, states):
            grad = _get_grad(leaf)
            if grad is None:
                continue
            if state == "fresh":
                seed, spanned, curvature = (curvatures or {}).get(id(leaf), (0, (), None))
                provenance = Provenance("autograd", 1, root_ids, seeded, through, curvature, seed, spanned)
            elif state == "foreign":
                provenance = Provenance("edited")
            else:
                provenance = Provenance("autograd", state.passes + 1,
                                        tuple(dict.fromkeys(state.roots + root_ids)),
                                        state.seeded or seeded,
                                        tuple(dict.fromkeys(state.through + through)))
            snapshot = _TB.clone(_detach(grad))
            self._records[id(leaf)] = (weakref.ref(leaf), weakref.ref(grad), _get_version(grad),
                                       snapshot, provenance)

    def source(self, tensor) -> Provenance:
        if not self.installed:
            return Provenance()
        grad = _get_grad(tensor)
        if not _get_is_leaf(tensor):   # .grad of a non-leaf comes from retain_grad() + backward()
            retained = _TB.__dict__["retains_grad"].__get__(tensor)
            grad_fn = _get_grad_fn(tensor)
            ran = self._backpropagated.get(id(grad_fn)) is grad_fn
            record = self._records.get(id(tensor))
            if retained and ran and record is not None and record[0]() is tensor:
                return record[4] if _unchanged(record, grad) else Provenance("edited")
            # an intermediate tensor's retained grad: autograd wrote it, from a root not recorded
            return Provenance("autograd", 1) if retained and ran else Provenance("edited")
        record = self._records.get(id(tensor))
        if record is None or record[0]() is not tensor or not _unchanged(record, grad):
            before = self._before.get(id(tensor))
            if record is None and before is not None and before[0]() is tensor and before[1]() is grad:
                return Provenance("untracked")
            return Provenance("edited")
        return record[4]

    def filled_before(self, namespace: Mapping[str, Any]) -> None:
        """Leaves of a kernel's namespace whose .grad backward() filled before the tracker was
        installed: the checks say so instead of calling the gradient hand-made."""
        for value in list(namespace.values()):
            if _isinstance(value, torch.Tensor) and _get_is_leaf(value):
                grad = _get_grad(value)
                if grad is not None:
                    self._before[id(value)] = (weakref.ref(value), weakref.ref(grad))


def _unchanged(record, grad) -> bool:
    _, grad_ref, version, snapshot, _ = record
    return (grad_ref() is grad and _get_version(grad) == version
            and _same_values(_detach(grad), snapshot))


def _same_values(a, b) -> bool:
    """Equal element by element, NaN equal to NaN (an honest NaN gradient is still autograd's)."""
    if tuple(_get_shape(a)) != tuple(_get_shape(b)) or _get_dtype(a) != _get_dtype(b):
        return False
    if _TB.equal(a, b):
        return True
    return bool(_TB.all(_TB.eq(a, b) | (_TB.isnan(a) & _TB.isnan(b))))


def _unit(seed) -> bool:
    return seed is None or bool(_TB.all(_TB.eq(_detach(seed), 1)))


class _TrackingEngine:
    """Wraps torch's autograd engine; everything but run_backward passes straight through."""

    def __init__(self, engine, tracker: _BackwardTracker) -> None:
        self._engine = engine
        self._tracker = tracker

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def run_backward(self, t_outputs, *args, **kwargs):
        accumulate = kwargs.get("accumulate_grad", args[5] if len(args) > 5 else True)
        inputs = kwargs.get("inputs", args[3] if len(args) > 3 else ())
        seeds = kwargs.get("grad_tensors", args[0] if args else ())
        leaves, states, nodes = [], [], {}
        if accumulate:
            leaves, nodes = _leaves_of(t_outputs)
            if inputs:
                leaves = [t for t in inputs if _isinstance(t, torch.Tensor)]
            # a non-leaf whose .grad is retained gets a gradient too
            leaves += [_node_tensor for _node_tensor in _retained(t_outputs, nodes)]
            states = self._tracker.before(leaves)
            roots = [t for t in t_outputs if _isinstance(t, torch.Tensor)]
            through = tuple(sorted({_type(n).__name__.removesuffix("Backward") for n in nodes.values()
                                    if _isinstance(n, _CustomNode)}))
            # a student's own Function would run its backward again: not measured there
            curvatures = {} if through else _curvatures(roots, seeds, leaves)
        result = self._engine.run_backward(t_outputs, *args, **kwargs)
        if accumulate:
            seeded = not all(_unit(g) for g in (seeds or ()))
            self._tracker.record(leaves, states, roots, seeded, through, nodes, curvatures)
        return result


_CustomNode = torch.autograd.function.BackwardCFunction


def _retained(t_outputs, nodes) -> list:
    """Non-leaf outputs that retain their grad (y.retain_grad(); y.backward())."""
    return [t for t in t_outputs if _isinstance(t, torch.Tensor) and not _get_is_leaf(t)
            and _TB.__dict__["retains_grad"].__get__(t)]


def _walk(grad_fns) -> tuple[list, dict]:
    """Leaf tensors and the graph nodes (by id) reached from autograd graph nodes (bounded)."""
    leaves, seen, stack = [], {}, [fn for fn in grad_fns if fn is not None]
    while stack and len(seen) < MAX_GRAPH_NODES:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen[id(node)] = node
        variable = getattr(node, "variable", None)
        if variable is not None and _isinstance(variable, torch.Tensor):
            leaves.append(variable)
        for next_node, _ in getattr(node, "next_functions", ()):
            if next_node is not None:
                stack.append(next_node)
    return leaves, seen


def _leaves_of(t_outputs) -> tuple[list, dict]:
    leaves, grad_fns = [], []
    for t in t_outputs:
        if not _isinstance(t, torch.Tensor):
            continue
        fn = _get_grad_fn(t)
        if fn is None:
            if _get_requires_grad(t):
                leaves.append(t)
        else:
            grad_fns.append(fn)
    reached, nodes = _walk(grad_fns)
    return leaves + reached, nodes


EXPORT_ON_COLAB = ("Google Colab cannot make otter's submission zip. Submit the notebook itself instead: "
                   "File > Download > Download .ipynb, then upload that file to your course's assignment page.")
EXPORT_AMBIGUOUS = ("otter could not tell which notebook to export: this folder holds more than one. Save "
                    "this notebook, then run grader.export(\"NAME.ipynb\", pdf=False) with its file name, or "
                    "upload the notebook itself to your course's assignment page.")


def friendlier_export(notebook_class) -> None:
    """otter's export raises where it cannot work (Colab; a folder with two notebooks): say
    instead, plainly, what to upload."""
    original = notebook_class.__dict__.get("export")
    if original is None or getattr(original, "_autograd_friendly", False):
        return

    def export(self, *args, **kwargs):
        try:
            return original.__get__(self, type(self))(*args, **kwargs)
        except RuntimeError as exc:
            if "not compatible with" not in str(exc):
                raise
            print(EXPORT_ON_COLAB)
        except ValueError as exc:
            if "Could not resolve notebook path" not in str(exc):
                raise
            print(EXPORT_AMBIGUOUS)

    export._autograd_friendly = True
    notebook_class.export = export


def _friendlier_export_in_kernel() -> None:
    try:
        from IPython import get_ipython
        if get_ipython() is None:
            return
        from otter.check.notebook import Notebook
    except Exception:   # noqa: BLE001  (no IPython or no otter: nothing to export)
        return
    friendlier_export(Notebook)


tracker = _BackwardTracker()
tracker.install()
_track_kernel_bindings()
_friendlier_export_in_kernel()


# --------------------------------------------------------------------------- observing


def _tensor_data(t) -> TensorData:
    dtype = str(_get_dtype(t))
    shape = tuple(int(n) for n in _get_shape(t))
    numeric = _is_floating_point(t) or not _is_complex(t)
    values, finite = None, True
    if numeric and _numel(t) <= MAX_VALUES:
        flat = _tolist(_reshape(_to_double(_detach(t)), (-1,)))
        values = tuple(float(v) for v in flat)
        finite = all(math.isfinite(v) for v in values)
    return TensorData(dtype=dtype, shape=shape, values=values, finite=finite)


def _unreadable(t) -> str:
    """Why a tensor's numbers cannot be read as plain CPU data ("" when they can)."""
    device = _TB.__dict__["device"].__get__(t)
    if device.type != "cpu":
        return f"tensor on the {device.type} device"
    if _TB.__dict__["layout"].__get__(t) != torch.strided:
        return "sparse tensor"
    if _TB.__dict__["is_quantized"].__get__(t):
        return "quantized tensor"
    return ""


def _default_probe_inputs() -> tuple[list[float], list[float]]:
    # a fresh size and values each time: a Function cannot recognise the probe by its shape
    gen = torch.Generator().manual_seed(int.from_bytes(os.urandom(6), "little"))
    size = int(torch.randint(3, 9, (), generator=gen))
    inputs = torch.rand(size, generator=gen, dtype=torch.float64) * 4 - 2
    upstream = torch.rand(size, generator=gen, dtype=torch.float64) * 3 + 0.5
    return inputs.tolist(), upstream.tolist()


def _short_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"it raised {_type(exc).__name__}: {text[:200]}" if text else f"it raised {_type(exc).__name__}"


MAX_ARITY = 4   # inputs of a custom Function the probe supplies


def probe_arguments(inputs, arity: int) -> list[list[float]]:
    """The probe's input tensors for a Function of `arity` inputs: the chosen numbers, turned
    and shifted for each further input, so that no two inputs are equal."""
    n = len(inputs)
    return [[float(inputs[(i + j) % n]) + 0.25 * j for i in range(n)] for j in range(arity)]


def _arity(cls) -> int:
    """How many tensors cls.forward takes (after ctx, unless the class has setup_context)."""
    try:
        params = list(_signature(_type_getattribute(cls, "forward")).parameters.values())
    except Exception:   # noqa: BLE001  (not introspectable: the probe tries one input)
        return 1
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 1
    required = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
    if _type_getattribute(cls, "setup_context") is _type_getattribute(_FunctionBase, "setup_context"):
        required = required[1:]   # forward(ctx, ...)
    return min(max(len(required), 1), MAX_ARITY)


def _grads(out, leaves, seed) -> list:
    grads = _autograd_grad(out, leaves, grad_outputs=seed, retain_graph=True, allow_unused=True)
    return [_zeros_like(_detach(t)) if g is None else g for t, g in zip(leaves, grads)]


def _joined(tensors) -> tuple[float, ...]:
    return tuple(v for t in tensors for v in _tensor_data(t).values)


def _probe_function(cls, inputs: list[float], upstream: list[float]) -> FunctionProbe:
    k = _arity(cls)
    probe = dict(inputs=tuple(inputs), upstream=tuple(upstream), arity=k)
    args = probe_arguments(inputs, k)
    n = len(inputs)
    try:
        ts = [_new_tensor(a, dtype=torch.float64, requires_grad=True) for a in args]
        out = cls.apply(*ts)
        if _type(out) not in _PLAIN_TENSOR_TYPES:
            return FunctionProbe(**probe, error=f"forward returned {_type(out).__name__} instead of a tensor")
        if tuple(_get_shape(out)) != tuple(_get_shape(ts[0])):
            return FunctionProbe(**probe, error=f"forward returned shape {tuple(_get_shape(out))} "
                                 f"for an input of shape {tuple(_get_shape(ts[0]))}")
        probe["forward"] = _tensor_data(out).values
        probe["grad_unit"] = _joined(_grads(out, ts, _ones(n, dtype=torch.float64)))
        probe["grad_upstream"] = _joined(_grads(out, ts, _new_tensor(upstream, dtype=torch.float64)))
        # every call looks like ordinary use: fresh leaves that track gradients, no gradcheck
        # on the stack (the judge does gradcheck's arithmetic itself, from these numbers)
        perturbed = []
        for j in range(k):
            for i in range(n):
                for step in (PROBE_EPS, -PROBE_EPS):
                    shifted = [list(a) for a in args]
                    shifted[j][i] += step
                    moved = cls.apply(*[_new_tensor(a, dtype=torch.float64, requires_grad=True) for a in shifted])
                    values = _tensor_data(moved).values if _type(moved) in _PLAIN_TENSOR_TYPES else None
                    if values is None or len(values) != n:
                        raise ValueError("forward returned a different shape for another input")
                    perturbed.extend(values)
        probe["perturbed"] = tuple(perturbed)
        # float32 and one number at a time, as the lab itself uses a Function (SQ.apply(x))
        forward32, grad32 = [], [[] for _ in range(k)]
        for i, seed in enumerate(upstream):
            t32 = [_new_tensor(a[i], dtype=torch.float32, requires_grad=True) for a in args]
            out32 = cls.apply(*t32)
            if _type(out32) not in _PLAIN_TENSOR_TYPES or tuple(_get_shape(out32)) != ():
                break
            forward32 += _tensor_data(out32).values
            for j, g32 in enumerate(_grads(out32, t32, _new_tensor(seed, dtype=torch.float32))):
                grad32[j] += _tensor_data(g32).values
        else:
            probe["forward32"], probe["grad_upstream32"] = tuple(forward32), tuple(v for g in grad32 for v in g)
    except Exception as exc:  # the student's Function failed: that is the finding
        probe["error"] = _short_error(exc)
    result = FunctionProbe(**probe)
    return dataclasses.replace(result, gradcheck=result.gradcheck_ok()) if result.error is None else result


def _reaches(grad_fn) -> tuple[int, ...]:
    if grad_fn is None:
        return ()
    leaves, nodes = _walk([grad_fn])
    return tuple(sorted({id(t) for t in leaves} | set(nodes)))


_DisableTorchFunction = torch._C.DisableTorchFunction


# In the secure grader's judge, the objects rebuilt from a run's observations: object id ->
# (the object, the Facts observed in the run). The checks then judge what was observed there
# (provenance included), while plain test code sees real tensors.
_judge_facts: dict[int, tuple[Any, Facts]] = {}


def judge_facts(obj: Any, facts: Facts) -> None:
    """Judge side: `obj` was rebuilt from `facts` (kept alive here, so ids stay unique)."""
    _judge_facts[id(obj)] = (obj, facts)


def forget_judge_facts() -> None:
    _judge_facts.clear()


def observe(obj: Any, name: str, *, probe_inputs: tuple[list[float], list[float]] | None = None) -> Facts:
    """Plain data about one object from the student's namespace (torch function modes, which
    could rewrite what tensors report, are switched off while reading)."""
    if _isinstance(obj, Facts):
        return obj
    known = _judge_facts.get(id(obj))
    if known is not None and known[0] is obj:
        return known[1] if known[1].name == name else dataclasses.replace(known[1], name=name)
    with _DisableTorchFunction():
        return _observe(obj, name, probe_inputs)


def _observe(obj: Any, name: str, probe_inputs) -> Facts:
    kind_type = _type(obj)
    if kind_type in _PLAIN_TENSOR_TYPES:
        with warnings.catch_warnings():  # reading .grad of a non-leaf warns; we report it instead
            warnings.simplefilter("ignore")
            grad = _get_grad(obj)
        grad_fn = _get_grad_fn(obj)
        is_leaf = bool(_get_is_leaf(obj))
        unreadable = _unreadable(obj)
        if unreadable:
            return Facts(name=name, kind="other", type_name=unreadable, ident=id(obj))
        grad_kind = "none" if grad is None else ("tensor" if _type(grad) in _PLAIN_TENSOR_TYPES
                                                 and not _unreadable(grad) else "other")
        provenance = tracker.source(obj) if grad_kind != "none" else Provenance()
        hooks = [getattr(obj, "_backward_hooks", None), getattr(obj, "_post_accumulate_grad_hooks", None)]
        return Facts(
            name=name, kind="tensor", type_name="Tensor", ident=id(obj),
            data=_tensor_data(obj),
            requires_grad=bool(_get_requires_grad(obj)), is_leaf=is_leaf,
            grad_fn=None if grad_fn is None else _type(grad_fn).__name__,
            node=id(grad_fn) if grad_fn is not None else 0,
            reaches=_reaches(grad_fn),
            direct=tuple(id(n) for n, _ in getattr(grad_fn, "next_functions", ()) if n is not None),
            grad_kind=grad_kind,
            grad=_tensor_data(grad) if grad_kind == "tensor" else None,
            grad_source=provenance.source, backward_passes=provenance.passes,
            grad_roots=provenance.roots, grad_seeded=provenance.seeded,
            grad_through=provenance.through, grad_hooked=any(bool(h) for h in hooks),
            grad_curvature=provenance.curvature, curvature_seed=provenance.curvature_seed,
            curvature_with=provenance.curvature_with,
        )
    if _isinstance(obj, _type) and _issubclass(obj, _FunctionBase) and obj is not _FunctionBase:
        inputs, upstream = probe_inputs or _default_probe_inputs()
        return Facts(name=name, kind="function", type_name=obj.__name__, ident=id(obj),
                     probe=_probe_function(obj, list(inputs), list(upstream)))
    type_name = f"class {obj.__name__}" if _isinstance(obj, _type) else kind_type.__name__
    return Facts(name=name, kind="other", type_name=str(type_name)[:80], ident=id(obj))


def observe_names(env: Mapping[str, Any], names, **kwargs) -> dict[str, Facts]:
    """Facts for each of ``names`` that exists in ``env`` (missing names are left out)."""
    return {name: observe(env[name], name, **kwargs) for name in names if name in env}


_MISSING = object()
_Module = torch.nn.Module
_module_dicts = ("_parameters", "_buffers", "_modules")
_object_getattribute = object.__getattribute__


def lookup(env: Mapping[str, Any], name: str) -> Any:
    """What `name` means in the student's namespace: a plain name, or a dotted path through
    torch.nn modules to a parameter, buffer or submodule ("net.fc.weight"). Read from the
    module's own tables, so a property of the student's class cannot answer instead."""
    head, *path = name.split(".")
    if head not in env:
        return _MISSING
    value = env[head]
    for part in path:
        if _type(value) is Stale:
            return value
        if not _isinstance(value, _Module):
            return _MISSING
        tables = [_object_getattribute(value, t) for t in _module_dicts]
        value = next((table[part] for table in tables if part in table), _MISSING)
        if value is _MISSING or value is None:
            return _MISSING
    return value


def _facts(env: Mapping[str, Any], name: str) -> Facts:
    value = lookup(env, name)
    if value is _MISSING:
        return Facts(name=name, kind="missing")
    if _type(value) is Stale:
        value._fail()
    return observe(value, name)


# ------------------------------------------------------------------ facts from plain data


def _floats(value, limit=MAX_VALUES) -> tuple[float, ...] | None:
    if value is None:
        return None
    if not _isinstance(value, (list, tuple)) or len(value) > limit:
        raise ValueError("expected a list of numbers")
    out = []
    for v in value:
        if _type(v) not in (int, float) or _type(v) is bool:
            raise ValueError("expected a number")
        try:
            out.append(float(v))
        except OverflowError:
            raise ValueError("a number out of range") from None
    return tuple(out)


def _tensor_data_from_plain(d) -> TensorData | None:
    if d is None:
        return None
    shape = d["shape"]
    if not _isinstance(shape, list) or not all(_type(n) is int and n >= 0 for n in shape):
        raise ValueError("bad shape")
    values = _floats(d["values"])
    if values is not None and len(values) != math.prod(shape):
        raise ValueError("values do not match the shape")
    return TensorData(dtype=_text(d["dtype"]), shape=tuple(shape), values=values,
                      finite=_flag(d["finite"]))


def _text(value, limit=300) -> str:
    if _type(value) is not str:
        raise ValueError("expected text")
    return value[:limit]


def _flag(value) -> bool:
    if _type(value) is not bool:
        raise ValueError("expected true/false")
    return value


def facts_from_plain(d: Mapping) -> Facts:
    """Rebuild Facts from JSON data, validating every field (the data came from a sandbox)."""
    if not _isinstance(d, Mapping):
        raise TypeError("facts must be a mapping")
    probe = d.get("probe")
    if probe is not None:
        probe = FunctionProbe(
            inputs=_floats(probe["inputs"], 64), upstream=_floats(probe["upstream"], 64),
            forward=_floats(probe["forward"], 64), grad_unit=_floats(probe["grad_unit"], MAX_ARITY * 64),
            grad_upstream=_floats(probe["grad_upstream"], MAX_ARITY * 64),
            gradcheck=None if probe["gradcheck"] is None else _flag(probe["gradcheck"]),
            error=None if probe["error"] is None else _text(probe["error"]),
            perturbed=_floats(probe.get("perturbed"), 2 * MAX_ARITY * 64 * 64),
            forward32=_floats(probe.get("forward32"), 64),
            grad_upstream32=_floats(probe.get("grad_upstream32"), MAX_ARITY * 64),
            arity=probe.get("arity", 1),
        )
        if _type(probe.arity) is not int or not 1 <= probe.arity <= MAX_ARITY:
            raise ValueError("bad arity")
    kind = _text(d["kind"])
    if kind not in ("missing", "tensor", "function", "other"):
        raise ValueError("bad kind")
    grad_kind = _text(d["grad_kind"])
    if grad_kind not in ("none", "tensor", "other"):
        raise ValueError("bad grad kind")
    grad_source = _text(d["grad_source"])
    if grad_source not in ("autograd", "edited", "unknown", "untracked"):
        raise ValueError("bad grad source")
    reaches = d["reaches"]
    if not _isinstance(reaches, (list, tuple)) or not all(_type(i) is int for i in reaches):
        raise ValueError("bad reaches")
    direct = d.get("direct", [])
    if not _isinstance(direct, (list, tuple)) or len(direct) > 1000 or not all(_type(i) is int for i in direct):
        raise ValueError("bad direct")
    if _type(d["ident"]) is not int or _type(d.get("node", 0)) is not int:
        raise ValueError("bad ident")
    passes = d.get("backward_passes", 0)
    if _type(passes) is not int or passes < 0:
        raise ValueError("bad backward_passes")
    roots = d.get("grad_roots", [])
    through = d.get("grad_through", [])
    if not _isinstance(roots, (list, tuple)) or len(roots) > 1000 or not all(_type(i) is int for i in roots):
        raise ValueError("bad grad_roots")
    if not _isinstance(through, (list, tuple)) or len(through) > 100:
        raise ValueError("bad grad_through")
    if (kind == "tensor") != (d["data"] is not None) or (grad_kind == "tensor") != (d["grad"] is not None):
        raise ValueError("kind and data disagree")
    if (kind == "function") != (probe is not None):
        raise ValueError("kind and probe disagree")
    seed = d.get("curvature_seed", 0)
    if _type(seed) is not int or not 0 <= seed < 2 ** 32:
        raise ValueError("bad curvature_seed")
    spanned = d.get("curvature_with", [])
    if not _isinstance(spanned, (list, tuple)) or len(spanned) > 64 or not all(_type(i) is int for i in spanned):
        raise ValueError("bad curvature_with")
    return Facts(
        name=_text(d["name"], 100), kind=kind, type_name=_text(d["type_name"], 100),
        ident=d["ident"], node=d.get("node", 0), data=_tensor_data_from_plain(d["data"]),
        requires_grad=_flag(d["requires_grad"]), is_leaf=_flag(d["is_leaf"]),
        grad_fn=None if d["grad_fn"] is None else _text(d["grad_fn"], 100),
        reaches=tuple(reaches[:MAX_GRAPH_NODES]), direct=tuple(direct), grad_kind=grad_kind,
        grad=_tensor_data_from_plain(d["grad"]), grad_source=grad_source,
        backward_passes=passes, grad_roots=tuple(roots), grad_seeded=_flag(d.get("grad_seeded", False)),
        grad_through=tuple(_text(t, 100) for t in through), grad_hooked=_flag(d.get("grad_hooked", False)),
        grad_curvature=_floats(d.get("grad_curvature")), curvature_seed=seed, curvature_with=tuple(spanned),
        probe=probe,
    )


# ------------------------------------------------------------------------ references


def _as_float64(value) -> torch.Tensor:
    if _isinstance(value, torch.Tensor):
        return value.detach().to(torch.float64).clone()
    return torch.tensor(value, dtype=torch.float64)


_reference_cache: dict = {}


def reference_gradients(reference: Callable[..., torch.Tensor], at: Mapping[str, Any]):
    """Value of ``reference(**at)`` and its gradient for each argument, by autograd in float64.
    Cached per reference code and point: a judge evaluates the same references for every student."""
    key = None
    if getattr(reference, "__closure__", True) is None:
        key = (reference.__code__, tuple((k, _as_float64(v).numpy().tobytes()) for k, v in at.items()))
        if key in _reference_cache:
            return _reference_cache[key]
    result = _reference_gradients(reference, at)
    if key is not None and len(_reference_cache) < 10_000:
        _reference_cache[key] = result
    return result


def _reference_gradients(reference, at):
    leaves = {name: _as_float64(v).requires_grad_(True) for name, v in at.items()}
    out = reference(**leaves)
    grads = torch.autograd.grad(out, list(leaves.values()), allow_unused=True)
    return out.detach(), {
        name: (torch.zeros_like(leaf) if g is None else g.detach())
        for (name, leaf), g in zip(leaves.items(), grads)
    }


def reference_curvature(reference: Callable[..., torch.Tensor], at: Mapping[str, Any], name: str,
                        seed: int, directions: Mapping[str, int]) -> torch.Tensor:
    """d/dname (grad reference . r) at `at`, r = curvature_direction(seed, shape, index) along each
    argument named in `directions` (its index) and 0 along the others: the number the tracker
    measured in the student's pass, computed from the reference in float64."""
    leaves = {arg: _as_float64(v).requires_grad_(True) for arg, v in at.items()}
    leaf = leaves[name]
    args = list(leaves)
    grads = torch.autograd.grad(reference(**leaves), [leaves[a] for a in args], create_graph=True,
                                allow_unused=True)
    terms = [(g * curvature_direction(seed, tuple(leaves[a].shape), directions[a])).sum()
             for a, g in zip(args, grads) if a in directions and g is not None and g.requires_grad]
    if not terms:
        return torch.zeros_like(leaf.detach())
    (h,) = torch.autograd.grad(sum(terms), [leaf], allow_unused=True)
    return torch.zeros_like(leaf.detach()) if h is None else h.detach()


def _curvature_indices(env, f: Facts, at: Mapping[str, Any]) -> dict[str, int]:
    """For each argument of the reference that was a leaf of the student's pass, the index of
    its part of the direction (the pass's leaves in the order of their idents)."""
    out = {}
    for arg in at:
        other = f if arg == f.name else _facts(env, arg)
        if other.kind == "tensor" and other.ident in f.curvature_with:
            out[arg] = f.curvature_with.index(other.ident)
    return out


def _require_curvature(env, f: Facts, of: str, reference, at: Mapping[str, Any]) -> None:
    """The gradient and the value are right; does `of` also bend like the asked-for function?
    (A tangent line, a detached value plus a hand-made slope, or a sum of one-variable parts
    without the mixed terms has the right value and slope at the point but not the curvature.)
    Passes through an allowed custom Function are not measured."""
    if f.grad_through or f.name not in at:
        return
    if f.grad_curvature is None:
        _fail(f"The checks could not confirm that `{of}` is the function the exercise asks for: "
              f"autograd could not differentiate it a second time. Compute `{of}` from "
              f"`{f.name}` with ordinary torch operations, exactly as the exercise says.")
    ref = reference_curvature(reference, at, f.name, f.curvature_seed,
                              _curvature_indices(env, f, at)).reshape(-1).tolist()
    scale = max((abs(r) for r in ref), default=0.0)
    if len(f.grad_curvature) != len(ref) or any(
            abs(s - r) > ATOL * 10 + CURVATURE_RTOL * scale for s, r in zip(f.grad_curvature, ref)):
        _fail(f"`{f.name}.grad` and `{of}` have the right values at this point, but `{of}` is not "
              f"computed as the function the exercise asks for (it changes differently around "
              f"this point). Compute `{of}` from `{f.name}` exactly as the exercise says.")


def _close(values, reference: torch.Tensor) -> bool:
    ref = reference.reshape(-1).tolist()
    if values is None or len(values) != len(ref):
        return False
    return all(abs(s - r) <= ATOL + RTOL * abs(r) for s, r in zip(values, ref))


def _nonzero(reference: torch.Tensor) -> bool:
    return bool((reference.abs() > ATOL).any())


def _show(values: tuple[float, ...] | None, shape: tuple[int, ...], reference=None) -> str:
    """The student's own numbers (never the reference's); for a vector, where it goes wrong."""
    if values is None:
        return "(too large to show)"
    if not shape:
        return f"{values[0]:g}"
    if reference is not None:
        ref = reference.reshape(-1).tolist()
        for i, (v, r) in enumerate(zip(values, ref)):
            if abs(v - r) > ATOL + RTOL * abs(r):
                return f"off at some positions (element {i} is {v:g})"
    shown = ", ".join(f"{v:g}" for v in values[:4])
    return f"[{shown}{', ...' if len(values) > 4 else ''}]"


def _require_output_value(env, of: str, ref_value: torch.Tensor) -> None:
    """The gradient is right; is the function itself the one asked for (y = x**2 + 100 is not)?"""
    out = _require_tensor(env, of)
    if out.data.shape != tuple(ref_value.shape):
        _fail(f"The gradient is right at this point, but `{of}` has shape {out.data.shape}, "
              f"while the function the exercise asks for gives shape {tuple(ref_value.shape)}. "
              f"Compute `{of}` exactly as the exercise says.")
    if out.data.values is None:   # too big to record: its shape is all there is to compare
        return
    if not _close(out.data.values, ref_value):
        _fail(f"The gradient is right at this point, but `{of}` is {_show(out.data.values, out.data.shape)}, "
              f"which is not the value of the function the exercise asks for. Compute `{of}` "
              f"exactly as the exercise says.")


# --------------------------------------------------------------------------- checks

_INT_DTYPES = ("torch.int", "torch.uint", "torch.bool", "torch.long", "torch.short")


def _fail(message: str):
    raise CheckFailed(message)


def _require_tensor(env, name: str) -> Facts:
    f = _facts(env, name)
    if f.kind == "missing":
        _fail(f"`{name}` is not defined yet. Run this question's cells, in order, before checking.")
    if f.kind != "tensor":
        if f.type_name == "ellipsis":
            _fail(f"`{name}` is still `...`: replace the ... with your code, then run the cell.")
        what = f"the {f.type_name} itself" if f.type_name.startswith("class ") else f"a {f.type_name}"
        _fail(f"`{name}` should be a torch tensor, but it is {what}. "
              f"Create it with torch.tensor(...) or another torch function.")
    return f


def _computed_from_another(env, f: Facts) -> str | None:
    """A tensor of the environment computed from a tracking leaf other than `f`'s object: the
    sign that `f.name` was assigned again after that tensor was computed from it."""
    for other, value in env.items():
        if other == f.name or not _isinstance(value, (torch.Tensor, Facts)):
            continue
        g = observe(value, other)
        if g.kind == "tensor" and not g.is_leaf and g.requires_grad and f.ident not in g.reaches:
            return other
    return None


def _require_grad_tracking(f: Facts, env=None) -> None:
    if f.data.dtype.startswith(_INT_DTYPES):
        _fail(f"`{f.name}` holds whole numbers ({f.data.dtype}), and autograd only works with "
              f"floating point numbers. Write the number with a decimal point, "
              f"e.g. torch.tensor(2.0, requires_grad=True).")
    if not f.requires_grad:
        other = _computed_from_another(env or {}, f)
        if other is not None:
            _fail(f"`{f.name}` does not track gradients now, but `{other}` was computed from a tensor that "
                  f"did: it looks like `{f.name}` was assigned again after that. Keep one `{f.name}`, created "
                  f"with requires_grad=True, and compute `{other}` from it.")
        _fail(f"`{f.name}` does not track gradients. Create it with requires_grad=True.")


def check_tensor(env, name: str, *, requires_grad: bool = False, leaf: bool = False,
                 shape: tuple[int, ...] | None = None) -> Facts:
    """`name` exists and is a tensor; optionally tracks gradients, is a leaf, has a shape."""
    f = _require_tensor(env, name)
    if requires_grad:
        _require_grad_tracking(f, env)
    if leaf and not f.is_leaf:
        _fail(f"`{name}` should be a leaf tensor that you create directly with "
              f"requires_grad=True, but it was computed from other tensors.")
    if shape is not None and f.data.shape != tuple(shape):
        _fail(f"`{name}` has shape {f.data.shape}, but this exercise needs shape {tuple(shape)}.")
    return f


def check_computed_from(env, out: str, leaf: str, *, scalar: bool = False) -> Facts:
    """`out` was computed by autograd-tracked operations from the leaf tensor `leaf`."""
    source = check_tensor(env, leaf, requires_grad=True)
    f = check_tensor(env, out)
    if f.grad_fn is None:
        breaker = _graph_breaker(out)
        if breaker is not None:
            _fail(f"`{out}` has no grad_fn, so autograd cannot differentiate it: it was computed with {breaker}, "
                  f"which gives the numbers without the history autograd needs. Compute `{out}` from "
                  f"`{leaf}` itself with torch operations.")
        _fail(f"`{out}` has no grad_fn, so autograd cannot differentiate it. Compute it from "
              f"`{leaf}` itself with torch operations: `{leaf}.data`, `{leaf}.detach()`, .item(), "
              f"NumPy and Python numbers give the numbers without the history autograd needs.")
    if (source.ident if source.is_leaf else source.node) not in f.reaches:
        _fail(f"`{out}` was not computed from this `{leaf}`. Run the cells of this question "
              f"in order: create `{leaf}` first, then compute `{out}` from it.")
    if scalar and f.data.shape != ():
        _fail(f"`{out}` has shape {f.data.shape}; backward() needs a single number. "
              f"Add the values up first, e.g. with .sum().")
    return f


def check_value(env, name: str, *, reference: Callable[..., torch.Tensor], at: Mapping[str, Any]) -> Facts:
    """`name` holds the values of reference(**at) (e.g. Y = x**2 at every point of x)."""
    f = _require_tensor(env, name)
    with torch.no_grad():
        ref = _as_float64(reference(**{k: _as_float64(v) for k, v in at.items()}))
    if f.data.shape != tuple(ref.shape):
        _fail(f"`{name}` has shape {f.data.shape}, but it should have shape {tuple(ref.shape)}. "
              f"Compute it elementwise from the tensor the exercise gives.")
    if not _close(f.data.values, ref):
        _fail(f"`{name}` does not hold the values the exercise asks for. Compute `{name}` exactly "
              f"as the exercise says, from the tensor you created.")
    return f


def _require_grad(env, name: str, of: str, functions: tuple[str, ...] = ()) -> Facts:
    f = _require_tensor(env, name)
    if f.grad_kind == "none":
        if not f.requires_grad:
            _require_grad_tracking(f, env)
        if not f.is_leaf:
            _fail(f"`{name}.grad` is None because `{name}` is not a leaf tensor: it was computed "
                  f"from other tensors, and autograd only fills .grad of leaves. Create `{name}` "
                  f"directly with requires_grad=True (or call {name}.retain_grad() before backward()).")
        other = _computed_from_another(env, f)
        if other == of:
            _fail(f"`{name}.grad` is None, and `{of}` was computed from another tensor: it looks like "
                  f"`{name}` was assigned again after {of}.backward(). Create `{name}` once, then compute "
                  f"`{of}` from it and call {of}.backward().")
        _fail(f"`{name}.grad` is None: autograd has not computed it yet. "
              f"Call {of}.backward() first, then read {name}.grad.")
    if f.grad_kind != "tensor":
        _fail(f"`{name}.grad` is not a tensor. Let autograd fill it in by calling {of}.backward().")
    if f.grad_source == "untracked":   # the kernel: backward() ran before the checks were imported
        _fail(f"`{name}.grad` was filled before the notebook's first cell ran (the one that imports "
              f"autograd_checks), so the checks could not watch backward(). Run this question's cells "
              f"again now, then its check.")
    if f.grad_source != "autograd":   # "unknown" only when the tracking was switched off
        _fail(f"`{name}.grad` was set or changed by hand, not by autograd. Remove that line and "
              f"let {of}.backward() compute the gradient.")
    _require_pass_from(env, f, of, functions)
    return f


def _started_at(env, out: Facts, root: int) -> bool:
    """A pass from `root` is a pass from `out`: root is out itself, or `out` is the sum of the
    root tensor (the sum trick, Y.backward(torch.ones_like(Y)) for y = Y.sum(); a seed other
    than ones is refused separately)."""
    if root == out.ident:
        return True
    if out.grad_fn != "SumBackward0" or len(out.direct) != 1:
        return False
    for value in env.values():
        f = observe(value, "") if _isinstance(value, (torch.Tensor, Facts)) else None
        if f is not None and f.kind == "tensor" and f.ident == root and not f.is_leaf:
            return f.node == out.direct[0]
    return False


def _all_passes_from(env, f: Facts, of: str) -> None:
    """Every pass that added up in the gradient started at `of` (value check only: a hand-made
    gradient from another root, then a pass from `of` that adds nothing, is not autograd's)."""
    out = _require_tensor(env, of)   # a gradient cannot come from `of`.backward() if `of` is no tensor
    if f.grad_roots and not all(_started_at(env, out, r) for r in f.grad_roots):
        _fail(_ran_more_than_once(name=f.name, of=of, times=max(f.backward_passes, 2)))


def _ran_more_than_once(name: str, of: str, times: int) -> str:
    return (f"backward() ran {times} times, so `{name}.grad` adds up {times} passes (a gradient "
            f"accumulates until you clear it). Set {name}.grad = None before calling {of}.backward() "
            f"again, or run the question's cells once, in order.")


def _require_pass_from(env, f: Facts, of: str, functions: tuple[str, ...] = ()) -> None:
    """Provenance: the gradient came from backward passes started at `of` itself, with a unit
    seed, through built-in operations, with no hook on the tensor to rewrite it."""
    name = f.name
    if f.grad_hooked:
        _fail(f"`{name}` has a hook that can change its gradient. Remove the hook and let "
              f"{of}.backward() compute `{name}.grad`.")
    if f.grad_seeded:
        _fail(f"`{name}.grad` comes from a backward pass given its own starting gradient. Call "
              f"{of}.backward() without arguments (for a single number it starts from 1).")
    if set(f.grad_through) - set(functions):
        _fail(f"`{name}.grad` was computed through your own autograd Function "
              f"({', '.join(sorted(set(f.grad_through) - set(functions)))}). Compute `{of}` with "
              f"ordinary torch operations here.")
    out = _require_tensor(env, of)
    if f.grad_roots and not any(_started_at(env, out, r) for r in f.grad_roots):
        _fail(f"`{name}.grad` was not computed by calling {of}.backward() on the `{of}` you have now: "
              f"backward() ran on another tensor, or `{of}` was assigned again afterwards. Compute "
              f"`{of}` from `{name}`, then call {of}.backward().")


def check_backward_called(env, name: str, *, of: str, functions: tuple[str, ...] = ()) -> Facts:
    """backward() on `of` has filled `name`.grad (and nobody overwrote it afterwards); the pass
    may go through the student's own autograd Functions named in `functions`."""
    return _require_grad(env, name, of, tuple(functions))


def check_backward_once(env, name: str, *, of: str) -> Facts | None:
    """The backward() passes that filled `name`.grad ran once: a second pass adds to the first
    (gradients accumulate). Says nothing about anything else (check_backward_called does)."""
    try:
        f = _facts(env, name)
    except StaleName:   # the question's other checks say that
        return None
    if f.kind == "tensor" and f.grad_source == "autograd" and f.backward_passes > 1:
        _fail(_ran_more_than_once(name, of, f.backward_passes))
    return f


def check_grad_value(env, name: str, *, of: str, reference: Callable[..., torch.Tensor],
                     at: Mapping[str, Any], functions: tuple[str, ...] = ()) -> Facts:
    """`name`.grad equals d reference / d name at the point `at`, as computed by autograd from
    `of` (through the student's own autograd Functions only if named in `functions`)."""
    f = _require_grad(env, name, of, tuple(functions))
    ref_value, ref_grads = reference_gradients(reference, at)
    times = f.backward_passes
    if times > 1 and _close(f.grad.values, ref_grads[name] * times) if f.grad.values is not None else False:
        _fail(_ran_more_than_once(name, of, times))
    _all_passes_from(env, f, of)
    ref = ref_grads[name]
    if f.grad.shape != tuple(ref.shape):
        _fail(f"`{name}.grad` has shape {f.grad.shape}, but `{name}` should have shape "
              f"{tuple(ref.shape)}. Check how you created `{name}`.")
    if not f.grad.finite:
        _fail(f"`{name}.grad` contains nan or inf. Check for a division by zero or a log of "
              f"zero in `{of}`.")
    if _close(f.grad.values, ref):
        _require_output_value(env, of, ref_value)
        _require_curvature(env, f, of, reference, at)
        return f
    wrong_point = _wrong_point(env, at)
    if wrong_point is not None:
        where, student_at = wrong_point
        _, grads_there = reference_gradients(reference, student_at)
        if _close(f.grad.values, grads_there[name]):
            _fail(f"`{name}.grad` is the right derivative, but at {where}: the exercise asks for "
                  f"it at a different point. Check the values you created the tensors with.")
    if _nonzero(ref):
        times = f.backward_passes
        if times > 1 and _close(f.grad.values, ref * times):
            _fail(_ran_more_than_once(name, of, times))
        if _close(f.grad.values, -ref):
            _fail(f"`{name}.grad` has the wrong sign. Check the signs in `{of}`.")
    # one variable only: with several, a partial equal to the function's value is a coincidence
    if len(at) == 1 and ref.dim() == 0 and ref_value.dim() == 0 and not _close((float(ref_value),), ref) \
            and _close(f.grad.values, ref_value.reshape(1)):
        _fail(f"`{name}.grad` is the value of the function the exercise asks for, not its derivative "
              f"(did you differentiate by hand first?). Compute `{of}` as the exercise says and call backward().")
    out = _facts(env, of)
    if out.grad_fn == "MeanBackward0" and f.grad.shape and math.prod(f.grad.shape) > 1:
        _fail(f"`{of}` is a mean (.mean()), so every element of `{name}.grad` is divided by the number "
              f"of elements. The sum trick needs the sum: compute `{of}` with .sum() instead, then call "
              f"{of}.backward().")
    _fail(f"`{name}.grad` is {_show(f.grad.values, f.grad.shape, ref)}, which is not the right derivative. Check that `{of}` is "
          f"computed exactly as the exercise says, then run the question's cells again in order.")


def _wrong_point(env, at: Mapping[str, Any]):
    """Where the student's tensors differ from the exercise's point: (description, point)."""
    student_at, differs = {}, []
    for arg, value in at.items():
        f = _facts(env, arg)
        if f.kind != "tensor" or f.data.values is None:
            return None
        expected = _as_float64(value)
        if f.data.shape != tuple(expected.shape):
            return None
        student = torch.tensor(f.data.values, dtype=torch.float64).reshape(f.data.shape)
        student_at[arg] = student
        if not _close(f.data.values, expected):
            differs.append(f"{arg} = {_show(f.data.values, f.data.shape)}")
    if not differs:
        return None
    return ", ".join(differs), student_at


# ------------------------------------------------------------- custom autograd Functions


def _require_function(env, name: str) -> Facts:
    f = _facts(env, name)
    if f.kind == "missing":
        _fail(f"`{name}` is not defined yet. Run the cell that defines the class `{name}`.")
    if f.kind != "function":
        if f.type_name == "ellipsis":
            _fail(f"`{name}` is still `...`: replace the ... with your class definition.")
        if f.type_name.startswith("class "):
            _fail(f"`{name}` is a class, but it does not subclass torch.autograd.Function. "
                  f"Define it as: class {name}(torch.autograd.Function): ...")
        _fail(f"`{name}` should be a class that subclasses torch.autograd.Function, "
              f"but it is a {f.type_name}.")
    return f


def _probe_ran(f: Facts) -> FunctionProbe:
    p = f.probe
    if p.error is not None:
        _fail(f"Calling {f.name}.apply(t) and differentiating it did not work: {p.error}. Check that "
              f"forward and backward are @staticmethods taking ctx, that forward saves its input "
              f"with ctx.save_for_backward, and that both return tensors.")
    return p


def check_function(env, name: str) -> Facts:
    """`name` is a torch.autograd.Function whose apply and backward run on a float tensor."""
    f = _require_function(env, name)
    _probe_ran(f)
    return f


def _reference_probe(reference, p: FunctionProbe, name: str):
    """The reference's values and gradients at the probe's inputs (float64, as the probe ran)."""
    try:
        wanted = len([q for q in inspect.signature(reference).parameters.values() if q.default is q.empty
                      and q.kind in (q.POSITIONAL_ONLY, q.POSITIONAL_OR_KEYWORD)])
    except (TypeError, ValueError):
        wanted = p.arity
    if wanted != p.arity:
        _fail(f"{name}.forward takes {p.arity} input{'s' if p.arity != 1 else ''} (after ctx), but the "
              f"operation this exercise asks for takes {wanted}. Give forward exactly those inputs.")
    ts = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in probe_arguments(p.inputs, p.arity)]
    out = reference(*ts)
    unit = torch.autograd.grad(out, ts, grad_outputs=torch.ones_like(out), retain_graph=True, allow_unused=True)
    up = torch.autograd.grad(out, ts, grad_outputs=torch.tensor(p.upstream, dtype=torch.float64), allow_unused=True)

    def joined(grads):
        return torch.cat([(torch.zeros_like(t) if g is None else g).reshape(-1) for t, g in zip(ts, grads)])
    return out.detach(), joined(unit), joined(up)


def check_function_forward(env, name: str, *, reference: Callable[[torch.Tensor], torch.Tensor]) -> Facts:
    """`name`.apply(t) gives the same values as reference(t)."""
    f = _require_function(env, name)
    p = _probe_ran(f)
    out, _, _ = _reference_probe(reference, p, name)
    if not _close(p.forward, out) or (p.forward32 is not None and not _close(p.forward32, out)):
        _fail(f"{name}.apply(t) returns the wrong values. Check what forward() computes "
              f"from its input.")
    if p.forward32 is None:
        _fail(f"{name}.apply(t) does not work on an ordinary float32 tensor. Make forward work for "
              f"any floating point tensor.")
    return f


def check_function_gradcheck(env, name: str) -> Facts:
    """torch.autograd.gradcheck (float64) accepts `name`: backward matches forward."""
    f = _require_function(env, name)
    p = _probe_ran(f)
    if not p.gradcheck_ok():   # the judge's own arithmetic on the numbers, not the run's verdict
        _fail(f"torch.autograd.gradcheck finds that {name}.backward() does not match "
              f"{name}.forward(): the gradient it returns is not the derivative of what forward "
              f"returns. Work out the derivative of forward by hand and compare.")
    return f


def check_function_upstream(env, name: str, *, reference: Callable[[torch.Tensor], torch.Tensor]) -> Facts:
    """With a non-unit incoming gradient, `name`.backward returns grad_output * local derivative."""
    f = _require_function(env, name)
    p = _probe_ran(f)
    _, g_unit, g_up = _reference_probe(reference, p, name)
    if _close(p.grad_upstream, g_up) and p.grad_upstream32 is not None and _close(p.grad_upstream32, g_up):
        return f
    if _close(p.grad_upstream, g_unit):
        _fail(f"{name}.backward() ignores grad_output, the gradient flowing in from later "
              f"operations. By the chain rule it must return grad_output times the local "
              f"derivative.")
    _fail(f"{name}.backward() returns the wrong gradient when the incoming gradient is not 1. "
          f"Return grad_output multiplied by the derivative of forward at the saved input.")
