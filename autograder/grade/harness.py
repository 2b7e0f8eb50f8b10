"""Runs a submission's cells inside the sandbox and reports plain observations.

Nothing here decides a score. At each `grader.check("qN")` the harness observes the names
that question's tests use (autograd_checks.observe: numbers, shapes, flags, probe results)
and writes them as one JSON line to the record pipe. The judge, in another process, reads
those lines; it never imports or unpickles anything from here.
"""

from __future__ import annotations

import builtins
import json
import os
import subprocess
import sys
import types

import autograd_checks

from .protocol import (INSTALL_COMMANDS, NO_OP_CELL_MAGICS, NO_OP_LINE_MAGICS, RUN_BODY_CELL_MAGICS,
                       RUN_BODY_LINE_MAGICS, magic_code)
from .values import observe_value, run_call

_json_dumps = json.dumps
_write = os.write

_NO_OP_LINE_MAGICS = NO_OP_LINE_MAGICS
_RUN_BODY_CELL_MAGICS = RUN_BODY_CELL_MAGICS
_NO_OP_CELL_MAGICS = NO_OP_CELL_MAGICS


class UnsupportedMagic(Exception):
    """An IPython magic the graded run does not honour (the cell errors, as in a kernel)."""


class _Shell:
    """The bits of IPython's get_ipython() that notebook code reaches for."""

    def __init__(self, namespace: dict) -> None:
        self.user_ns = namespace

    def run_line_magic(self, name, line, _stack_depth=1):
        # the code run is magic_code's, the very code the screen read
        if name in _NO_OP_LINE_MAGICS:
            return None
        if name in RUN_BODY_LINE_MAGICS:
            code = magic_code("line", name, line)
            if code is None:
                raise UnsupportedMagic(f"%{name} {line[:40]}: options the graded run does not know")
            exec(compile(code, "<magic>", "exec"), self.user_ns)
            return None
        raise UnsupportedMagic(f"%{name} is not available in graded runs")

    def run_cell_magic(self, name, line, cell):
        if name in _RUN_BODY_CELL_MAGICS:
            exec(compile(magic_code("cell", name, line, cell), "<cell>", "exec"), self.user_ns)
            return None
        if name in _NO_OP_CELL_MAGICS:
            return None
        if name == "writefile":
            path = line.split()[-1] if line.split() else "untitled.txt"
            with open(path, "a" if "-a" in line.split() else "w") as f:
                f.write(cell)
            return None
        raise UnsupportedMagic(f"%%{name} is not available in graded runs")

    def system(self, cmd):
        if cmd.split()[:2] in INSTALL_COMMANDS:
            return None   # the graded environment is fixed (and has no network)
        subprocess.run(cmd, shell=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=30)

    def getoutput(self, cmd, split=True):
        done = subprocess.run(cmd, shell=True, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=30)
        return done.stdout.splitlines() if split else done.stdout

    def ev(self, expr):
        return eval(expr, self.user_ns)

    def ex(self, code):
        exec(code, self.user_ns)


class Recorder:
    """Writes one JSON line per event to the record pipe (one write call per line)."""

    def __init__(self, fd: int, nonce: str) -> None:
        self.fd, self.nonce = fd, nonce

    def emit(self, record: dict) -> None:
        record["n"] = self.nonce
        data = (_json_dumps(record) + "\n").encode()
        while data:
            data = data[_write(self.fd, data):]


def _otter_shim(checkpoint) -> types.ModuleType:
    """Stands in for `otter` in the student's namespace: grader.check observes, nothing else."""
    module = types.ModuleType("otter")

    class Notebook:
        def __init__(self, *args, **kwargs):
            pass

        def check(self, question, *args, **kwargs):
            checkpoint(str(question))

        def check_all(self, *args, **kwargs):
            return None

        def export(self, *args, **kwargs):
            return None

        def __getattr__(self, name):
            return lambda *args, **kwargs: None

    module.Notebook = Notebook
    return module


class _FastRunner:
    """Cells as plain Python after IPython's syntax transform: no kernel, no shell."""

    mode = "fast"

    def __init__(self) -> None:
        self.namespace: dict = {"__name__": "__main__", "__builtins__": builtins}
        shell = _Shell(self.namespace)
        builtins.get_ipython = lambda: shell
        builtins.display = lambda *args, **kwargs: None

    def run(self, index: int, code: str) -> str | None:
        """Run one cell's code, exactly as the screen read it (already transformed)."""
        try:
            exec(compile(code, f"<cell {index}>", "exec"), self.namespace)
        except BaseException as exc:  # a failing cell is the student's; carry on like a kernel
            return type(exc).__name__[:60]
        return None


def ipython_shell():
    """One IPython shell per process (the worker makes it once; each run gets a forked copy)."""
    from IPython.core.interactiveshell import InteractiveShell

    class GradingShell(InteractiveShell):
        def enable_gui(self, gui=None):   # no GUI event loop in a graded run
            return None

    return GradingShell.instance() if not InteractiveShell.initialized() else InteractiveShell.instance()


class _IPythonRunner:
    """A real IPython shell, as in a kernel, for cells the fast path cannot honour."""

    mode = "ipython"

    def __init__(self) -> None:
        self.shell = ipython_shell()
        self.namespace = self.shell.user_ns

    def run(self, index: int, source: str) -> str | None:
        try:
            result = self.shell.run_cell(source, store_history=False, silent=True)
        except BaseException as exc:
            return type(exc).__name__[:60]
        error = result.error_before_exec or result.error_in_exec
        return type(error).__name__[:60] if error is not None else None


_MISSING = object()
_CORE_BUILTINS = ("isinstance", "issubclass", "type", "len", "abs", "all", "any", "float", "int",
                  "bool", "id", "getattr", "zip", "sorted", "tuple", "list", "dict", "set", "str",
                  "range", "min", "max", "sum", "round", "repr", "hasattr", "iter", "next")


class Integrity:
    """What observation relies on, as it was before student code ran. At each checkpoint the
    pristine objects are put back for the time of the observation and the student's versions
    restored afterwards: patching torch.allclose, the checks' tracker or observe itself can
    neither fake a pass nor change what the student's own code sees."""

    def __init__(self) -> None:
        import dataclasses
        import json
        import json.encoder
        import math

        import torch
        from torch.autograd import function as autograd_function, gradcheck as gradcheck_module
        from torch.autograd.variable import Variable

        tracker = autograd_checks.tracker
        modules = [torch, torch.autograd, autograd_function, gradcheck_module, torch.autograd.graph,
                   torch.testing, autograd_checks, sys.modules[__name__], math, dataclasses, json,
                   json.encoder]
        comparison = sys.modules.get("torch.testing._comparison")
        if comparison is not None:
            modules.append(comparison)
        # (owner, snapshot, whether names added later must go too)
        self.watch = [(m, dict(vars(m)), False) for m in modules]
        classes = (torch.Tensor, Variable, type(tracker), tracker, Recorder, torch.autograd.Function,
                   type(torch.autograd.Function), autograd_checks.Facts, autograd_checks.TensorData,
                   autograd_checks.FunctionProbe, autograd_checks.Provenance, json.JSONEncoder)
        self.watch += [(owner, dict(vars(owner)), True) for owner in classes]
        self.watch.append((builtins, {name: getattr(builtins, name) for name in _CORE_BUILTINS}, False))

    @staticmethod
    def _put(owner, key, value) -> None:
        if value is _MISSING:
            delattr(owner, key)
        else:
            setattr(owner, key, value)

    def pristine(self):
        """Context manager: observation runs on the original objects."""
        import contextlib

        @contextlib.contextmanager
        def swapped():
            changed = []
            for owner, snapshot, exact in self.watch:
                live = vars(owner)
                for key, value in snapshot.items():
                    current = live.get(key, _MISSING)
                    if current is not value:
                        changed.append((owner, key, current))
                        self._put(owner, key, value)
                if exact:
                    for key in [k for k in live if k not in snapshot]:
                        changed.append((owner, key, live[key]))
                        self._put(owner, key, _MISSING)
            try:
                yield
            finally:
                for owner, key, value in reversed(changed):
                    self._put(owner, key, value)

        return swapped()


def _no_dispatch_modes():
    """Torch dispatch modes the student pushed could rewrite tensor reads: off while observing."""
    from torch.utils._python_dispatch import _disable_current_modes
    return _disable_current_modes()


def _no_introspection(event: str, args) -> None:
    """Audit hook: the grader's own objects are not the submission's to search for."""
    if event in ("gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys._current_frames"):
        raise RuntimeError(f"{event} is not available in graded runs")


def _activity() -> tuple[int, int]:
    """(processes in this PID namespace, threads of this process), as /proc shows them."""
    try:
        return (sum(1 for d in os.listdir("/proc") if d.isdigit()), len(os.listdir("/proc/self/task")))
    except OSError:
        return (0, 0)


def _safe_text(exc: BaseException) -> str:
    try:
        return str(exc)[:200]
    except Exception:   # noqa: BLE001  (a student's exception whose __str__ fails)
        return ""


def run_cells(job, skip: set[int], recorder: Recorder) -> None:
    """Execute the job's cells in order, skipping failed segments, observing at checkpoints.
    A cell the screen could not parse (job.cells[i] is None) is never run: like a kernel, it
    only reports its SyntaxError."""
    questions = {q.name: q for q in job.questions}
    probe_inputs = (list(job.probe[0]), list(job.probe[1]))

    ipython = job.mode == "ipython"
    runner = _IPythonRunner() if ipython else _FastRunner()
    # Which question's answer cells last set each name a test uses: a question is judged on what
    # its own cells set (names from the lab's own cells stay shared). The kernel keeps the same log.
    watched = sorted({name.split(".")[0] for q in job.questions for name in q.names})
    bindings = autograd_checks.BindingLog()
    cell = {"provided": True}
    recorder.emit({"t": "mode", "m": runner.mode})
    integrity = Integrity()
    integrity.watch.append((recorder, dict(vars(recorder)), True))   # its emit can be shadowed per instance
    sys.addaudithook(_no_introspection)
    in_namespace = os.getpid() == 1   # then /proc shows just this submission's processes
    activity = _activity()

    def checkpoint(question: str) -> None:
        try:
            observe_question(question)
        finally:
            bindings.checked(question)

    def observe_question(question: str) -> None:
        spec = questions.get(question)
        if spec is None or spec.segment in skip or not spec.checked:
            return
        with integrity.pristine(), _no_dispatch_modes():   # until the record is written
            namespace = runner.namespace
            bindings.observe(namespace, provided=cell["provided"], names=watched)   # set before the check
            values = {}
            stale = bindings.stale(question, {name.split(".")[0] for name in spec.names}, present=namespace)
            for name in spec.names:
                if name.split(".")[0] in stale:
                    continue
                if name in namespace:
                    try:
                        values[name] = observe_value(namespace[name], name, autograd_checks,
                                                     probe_inputs=probe_inputs)
                    except Exception as exc:   # what cannot be read is reported as such
                        values[name] = {"kind": "other", "type": f"unreadable ({type(exc).__name__})"}
        # the judge's calls of the student's code for this question, as its tests make them: the
        # student's code runs as it does in a kernel, then what it returned is observed
        returned = []
        for i, (q, name, op, args) in enumerate(job.calls):
            if q != question or name in stale:
                continue
            try:
                returned.append((i, run_call(runner.namespace[name], op, list(args)), None))
            except BaseException as exc:   # noqa: BLE001  (the student's code failed: the test sees that)
                returned.append((i, None, {"kind": "raised", "type": type(exc).__name__[:80],
                                           "text": _safe_text(exc)}))
        with integrity.pristine(), _no_dispatch_modes():
            for i, result, raised in returned:
                try:
                    values[f"#call{i}"] = raised or observe_value(result, "returned", autograd_checks)
                except Exception as exc:
                    values[f"#call{i}"] = {"kind": "other", "type": f"unreadable ({type(exc).__name__})"}
            recorder.emit({"t": "obs", "q": question, "values": values, "stale": stale})

    sys.modules["otter"] = _otter_shim(checkpoint)

    current = None
    for index, code in enumerate(job.cells):
        segment = job.segments[index]
        if segment in skip:
            continue
        if segment != current:
            recorder.emit({"t": "seg", "s": segment})
            current = segment
        cell["provided"] = not (index < len(job.answers) and job.answers[index])
        if code is None:
            error = "SyntaxError"
        else:
            error = runner.run(index, job.sources[index] if ipython else code)
        assigned = autograd_checks.assigned_names(job.sources[index] if ipython else code) if not error else ()
        bindings.observe(runner.namespace, provided=cell["provided"], names=watched, assigned=assigned)
        if error:
            recorder.emit({"t": "err", "s": segment, "e": error})
            if cell["provided"] is False:   # the names it was to set are explained by its error
                source = job.sources[index] if ipython or code is None else code
                bindings.raised(autograd_checks.assigned_names(source or ""), error)
        now = _activity()
        if in_namespace and (now[0] > activity[0] or now[1] > activity[1]):
            # this cell left a thread or process running: if the run dies later, suspect it
            recorder.emit({"t": "bg", "s": segment})
        activity = max(activity, now)
    recorder.emit({"t": "done"})
