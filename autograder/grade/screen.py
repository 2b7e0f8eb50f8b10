"""The source screen: every cell of a submission, checked against the allowlist before it runs.

The submitted source is data the judge has. This module reads it in the supervisor, before and
independent of running it, and reports a Finding for everything a lab submission has no honest
need for (deny by default: see allowlist.py). A submission with a finding still runs in its
sandbox, but it is flagged "needs review" and earns 0 until course staff accept it.

Cells are screened as the graded run executes them: after IPython's syntax transform, so magics
and shell lines become calls whose names and bodies are screened too. A cell that does not parse
is never run (not by the grader, which skips it like a kernel reports the SyntaxError), so it
cannot do anything and is not a finding.
"""

from __future__ import annotations

import ast
import string
from dataclasses import dataclass
from typing import Iterable, Sequence

from ..results import Finding
from .allowlist import DEFAULT, INSTALLERS, LOAD_EXT, Allowlist

MAX_FINDINGS = 50   # per submission: enough for a reviewer, bounded for the record
_CALL_ONLY = ("getattr", "hasattr", "type")
_BUILTIN_NAMES = frozenset(dir(__import__("builtins")))
# Builtins a notebook may reuse as its own names (input = torch.tensor(...)): nothing in them
# reaches the interpreter, so whether the name means the builtin or the notebook's value at a
# given point does not matter. Every other builtin outside the allowlist is flagged wherever
# it appears.
# Names the notebook's runtime (IPython, or the grader's fast path) puts among the builtins.
RUNTIME_NAMES = frozenset({"get_ipython"})
SHADOWABLE = frozenset({"input", "ascii", "bytes", "bytearray", "copyright", "credits", "license",
                        "exit", "quit", "aiter", "anext"})


_TRANSFORMER = None


def _transformer():
    global _TRANSFORMER
    if _TRANSFORMER is None:
        from IPython.core.inputtransformer2 import TransformerManager
        _TRANSFORMER = TransformerManager()
    return _TRANSFORMER


def transform(source: str) -> str | None:
    """A cell as the graded run executes it (None when IPython cannot transform it)."""
    try:
        return _transformer().transform_cell(source)
    except Exception:   # IPython's transformer fails on some broken input: the cell is inert
        return None


def parse_cell(source: str) -> ast.Module | None:
    """The cell's AST after IPython's transform, or None when it does not parse (never run)."""
    code = transform(source)
    if code is None:
        return None
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _magic_body(node: ast.AST) -> str | None:
    """The code inside `%time CODE`, `%%time`/`%%timeit`/`%%capture` cells, as transformed."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Call) and isinstance(node.func.value.func, ast.Name)
            and node.func.value.func.id == "get_ipython"):
        return None
    values = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    if node.func.attr == "run_line_magic" and len(values) == 2 and values[0] in ("time", "timeit"):
        return _strip_timeit_options(values[1]) if values[0] == "timeit" else values[1]
    if node.func.attr == "run_cell_magic" and len(values) == 3 and values[0] in ("time", "timeit", "capture"):
        return values[2]
    return None


# Attribute names code may assign to on objects other than its own (self, ctx and other
# parameters of its functions may hold anything): clearing or replacing a gradient, switching
# tracking on, the gradient-descent idiom `w.data -= lr * w.grad`, replacing a layer's weights.
STORE_ATTRIBUTES = frozenset({"grad", "data", "requires_grad", "weight", "bias"})
# Classes a submission may subclass, besides its own: autograd Functions, torch.nn modules
# (checked by module), object and exceptions.
BASE_MEMBERS = {"torch.autograd": {"Function"}, "torch.nn": None}


def _stored_on(function: ast.AST, receiver: str) -> set[str]:
    """Attribute names a method assigns on its first parameter (self.linear = ..., ctx.k = ...)."""
    return {node.attr for node in ast.walk(function)
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name) and node.value.id == receiver
            and not node.attr.startswith("_")}


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


class _Bindings:
    """Names the notebook binds anywhere, and which of them are only ever module aliases."""

    def __init__(self, trees: Iterable[ast.AST], policy: Allowlist) -> None:
        self.bound: set[str] = set()
        self.modules: dict[str, str] = {}     # alias -> module, for names bound only by import
        self.strings: dict[str, list[ast.AST]] = {}   # name -> the values it is assigned
        self.classes: set[str] = set()                # classes the notebook defines
        self.methods: set[str] = set()                # methods those classes define
        self.own_attributes: set[str] = set()         # attributes methods store on self / ctx
        self.members: dict[str, set] = {}             # name -> (module, member) it imports
        other: set[str] = set()
        pending = list(trees)
        while pending:
            tree = pending.pop()
            for node in ast.walk(tree):
                if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
                    self.bound.add(node.id)
                    other.add(node.id)
                elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    self.bound.add(node.name)
                    other.add(node.name)
                    if isinstance(node, ast.ClassDef):
                        self.classes.add(node.name)
                        for item in node.body:
                            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                                self.methods.add(item.name)
                                first = (item.args.posonlyargs + item.args.args)[:1]
                                if first:
                                    self.own_attributes |= _stored_on(item, first[0].arg)
                elif isinstance(node, ast.arg):
                    self.bound.add(node.arg)
                    other.add(node.arg)
                elif isinstance(node, ast.ExceptHandler) and node.name:
                    self.bound.add(node.name)
                    other.add(node.name)
                elif isinstance(node, (ast.Global, ast.Nonlocal)):
                    self.bound.update(node.names)
                elif isinstance(node, ast.Import):
                    for alias in node.names:
                        name = alias.asname or alias.name.split(".")[0]
                        target = alias.name if alias.asname else alias.name.split(".")[0]
                        self.bound.add(name)
                        self._alias(name, target, other)
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    for alias in node.names:
                        name = alias.asname or alias.name
                        self.bound.add(name)
                        full = f"{node.module}.{alias.name}"
                        if full in policy.modules:
                            self._alias(name, full, other)
                        else:
                            other.add(name)
                            self.members.setdefault(name, set()).add((node.module, alias.name))
                body = _magic_body(node)
                if body is not None:
                    try:
                        pending.append(ast.parse(body))
                    except (SyntaxError, ValueError, RecursionError, MemoryError):
                        pass
                if isinstance(node, ast.Assign):
                    for target in node.targets:
                        if isinstance(target, ast.Name):
                            self.strings.setdefault(target.id, []).append(node.value)
                elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.NamedExpr)) \
                        and isinstance(node.target, ast.Name):
                    self.strings.setdefault(node.target.id, []).append(ast.Constant(value=None))
        for name in other:
            self.modules.pop(name, None)
        self._ambiguous = other
        self.instances = {name for name, values in self.strings.items()
                          if values and all(isinstance(v, ast.Call) and isinstance(v.func, ast.Name)
                                            and v.func.id in self.classes for v in values)}

    def _alias(self, name: str, module: str, other: set[str]) -> None:
        if self.modules.get(name, module) != module:
            other.add(name)   # one name, two modules: resolve neither
        self.modules.setdefault(name, module)

    def only_strings(self, name: str) -> list[str] | None:
        """The string literals `name` is assigned, when it is never bound to anything else."""
        values = self.strings.get(name)
        if not values or not all(isinstance(v, ast.Constant) and isinstance(v.value, str) for v in values):
            return None
        return [v.value for v in values]


class _CellScreen(ast.NodeVisitor):
    """Walks one cell; every construct outside the allowlist becomes a Finding."""

    def __init__(self, cell: int, policy: Allowlist, bindings: _Bindings, findings: list[Finding]) -> None:
        self.cell, self.policy, self.bindings, self.findings = cell, policy, bindings, findings
        self.offset = 0   # line offset inside a magic's body
        self.params: set[str] = set()   # parameters of the functions being visited (self, ctx...)
        self.firsts: set[str] = set()   # first parameters of the methods being visited
        self.in_class = False
        self.receiver = False           # visiting the object an attribute is read from

    # ----------------------------------------------------------------- helpers

    def flag(self, node: ast.AST | None, what: str) -> None:
        line = (getattr(node, "lineno", 1) or 1) + self.offset
        finding = Finding(self.cell, line, what)
        if finding not in self.findings and len(self.findings) < MAX_FINDINGS:
            self.findings.append(finding)

    def module_of(self, node: ast.AST) -> str | None:
        """The module an expression names, when the screen can tell statically."""
        if isinstance(node, ast.Name):
            return self.bindings.modules.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self.module_of(node.value)
            if base is not None and f"{base}.{node.attr}" in self.policy.modules:
                return f"{base}.{node.attr}"
        return None

    def screen_code(self, code: str, node: ast.AST, what: str) -> None:
        """A magic's body: screened as code of this cell."""
        try:
            tree = ast.parse(code)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            self.flag(node, f"{what} whose body is not Python")
            return
        saved = self.offset
        self.offset += (getattr(node, "lineno", 1) or 1) - 1
        self.visit(tree)
        self.offset = saved

    # ---------------------------------------------------------- statements

    def visit_Match(self, node):
        self.flag(node, "a `match` statement (not needed in a lab; it can read attributes by name)")

    def _async(self, node):
        self.flag(node, "async code (not needed in a lab)")

    visit_AsyncFunctionDef = visit_AsyncFor = visit_AsyncWith = visit_Await = _async

    def visit_Import(self, node):
        for alias in node.names:
            if alias.name not in self.policy.modules:
                self.flag(node, f"import of `{alias.name}`, which a lab submission does not need")

    def visit_ImportFrom(self, node):
        if node.level or not node.module:
            self.flag(node, "a relative import")
            return
        if node.module not in self.policy.modules:
            self.flag(node, f"import from `{node.module}`, which a lab submission does not need")
            return
        for alias in node.names:
            full = f"{node.module}.{alias.name}"
            if alias.name == "*":
                self.flag(node, f"`from {node.module} import *`: import the names you use")
            elif full not in self.policy.modules and alias.name not in self.policy.members(node.module):
                self.flag(node, f"import of `{full}`, which a lab submission does not need")

    def visit_FunctionDef(self, node):
        if _is_dunder(node.name) and node.name not in self.policy.dunder_defs:
            self.flag(node, f"a method named `{node.name}` (special methods can make objects lie to checks)")
        saved, saved_firsts = self.params, self.firsts
        args = node.args
        positional = [*args.posonlyargs, *args.args]
        self.params = saved | {a.arg for a in [*positional, *args.kwonlyargs]}
        if self.in_class and positional:
            self.firsts = saved_firsts | {positional[0].arg}
        was_in_class, self.in_class = self.in_class, False
        self.generic_visit(node)
        self.params, self.firsts, self.in_class = saved, saved_firsts, was_in_class

    def visit_ClassDef(self, node):
        if _is_dunder(node.name):
            self.flag(node, f"a class named `{node.name}`")
        for keyword in node.keywords:
            self.flag(node, f"class keyword `{keyword.arg}=` (metaclasses are not needed in a lab)")
        for base in node.bases:
            if not self._allowed_base(base):
                self.flag(base, f"class `{node.name}` subclasses something a lab does not need "
                                f"(subclass torch.autograd.Function, a torch.nn module or your own class)")
        was_in_class, self.in_class = self.in_class, True
        self.generic_visit(node)
        self.in_class = was_in_class

    def _allowed_base(self, base: ast.AST) -> bool:
        if isinstance(base, ast.Name):
            imported = self.bindings.members.get(base.id, set())
            if imported and len(imported) == 1 and base.id not in self.bindings.classes:
                ((module, member),) = imported
                allowed = BASE_MEMBERS.get(module, set())
                return allowed is None or member in allowed
            return base.id in ("object", "Exception") or (
                base.id in self.bindings.classes and base.id not in self.bindings.modules)
        if isinstance(base, ast.Attribute):
            module = self.module_of(base.value)
            if module in BASE_MEMBERS:
                allowed = BASE_MEMBERS[module]
                return allowed is None or base.attr in allowed
        return False

    def visit_Lambda(self, node):
        self.generic_visit(node)

    def visit_arg(self, node):
        if _is_dunder(node.arg):
            self.flag(node, f"an argument named `{node.arg}`")

    # ---------------------------------------------------------- expressions

    def visit_Name(self, node):
        name = node.id
        if _is_dunder(name):
            if name not in self.policy.dunder_names or not isinstance(node.ctx, ast.Load):
                self.flag(node, f"the name `{name}`")
            return
        if name in _BUILTIN_NAMES and name not in self.policy.builtins and name not in SHADOWABLE \
                and name not in _CALL_ONLY:
            # exec, eval, open, vars...: flagged wherever they appear, bound or not (a binding in
            # another scope, or one that never runs, leaves the builtin in place)
            self.flag(node, f"the builtin `{name}`, which a lab submission does not need")
            return
        if isinstance(node.ctx, ast.Load) and name in self.bindings.modules and not self.receiver:
            self.flag(node, f"the module `{name}` used as a value (use its functions directly)")
            return
        if name in _CALL_ONLY:   # its allowed uses are direct calls, screened in visit_Call
            self.flag(node, f"`{name}` used other than as a direct call `{name}(...)`")
            return
        if name in RUNTIME_NAMES:
            self.flag(node, f"`{name}`, which reaches the notebook's shell")
        # any other name that is neither bound nor a builtin is merely undefined: it raises
        # NameError when it runs (a student who deleted the cell that set it), nothing more

    def visit_Attribute(self, node):
        attr = node.attr
        if attr.startswith("_"):
            if not (_is_dunder(attr) and attr in self.policy.dunder_attributes):
                self.flag(node, f"the attribute `.{attr}` (names starting with _ are internals)")
            self._visit_receiver(node.value)
            return
        module = self.module_of(node.value)
        receiver = node.value.id if isinstance(node.value, ast.Name) else None
        self._visit_receiver(node.value)
        if receiver in self.bindings.classes and attr in self.bindings.methods and receiver not in self.bindings.modules:
            # C.method(obj) would run a method on any object: call it on an instance instead
            self.flag(node, f"`{receiver}.{attr}` used on the class (call methods on an instance, "
                            f"or use {receiver}.apply for an autograd Function)")
        if not isinstance(node.ctx, ast.Load):
            own = isinstance(node.value, ast.Name) and node.value.id in self.firsts
            if module is not None:
                self.flag(node, f"assigning to `{module}.{attr}` (changing a library is not allowed)")
            elif not own and attr not in STORE_ATTRIBUTES:
                self.flag(node, f"assigning to the attribute `.{attr}` of an object the notebook did not make")
        if module is not None:
            if attr not in self.policy.members(module) and f"{module}.{attr}" not in self.policy.modules:
                self.flag(node, f"`{module}.{attr}`, which a lab submission does not need")
        elif attr == "format":
            pass   # checked where it is called (visit_Call)
        elif attr not in self.policy.attributes and not self._own(node):
            self.flag(node, f"the attribute `.{attr}`, which a lab submission does not need")

    def _visit_receiver(self, node: ast.AST) -> None:
        """The object an attribute is read from: a module alias may stand there."""
        saved, self.receiver = self.receiver, isinstance(node, ast.Name)
        self.visit(node)
        self.receiver = saved

    def visit_Call(self, node):
        func = node.func
        if self._ipython_call(node):
            return
        if isinstance(func, ast.Name) and func.id in _CALL_ONLY:
            # allowed only as a direct call of this shape, never as a value (g = getattr)
            if func.id in ("getattr", "hasattr"):
                self._literal_attribute(node)
            elif len(node.args) != 1 or node.keywords:
                self.flag(node, "`type(...)` with more than one argument (it creates classes)")
            for child in [*node.args, *node.keywords]:
                self.visit(child)
            return
        if isinstance(func, ast.Attribute) and func.attr == "format":
            self._format_call(node)
        self.generic_visit(node)

    def _own(self, node: ast.Attribute) -> bool:
        """self.linear / ctx.k / self.helper() inside a method, net.helper() on an instance of
        the notebook's own class, Net().helper(): names of the notebook's own making, on
        objects of its own making only."""
        names = self.bindings.own_attributes | self.bindings.methods
        if node.attr not in names:
            return False
        receiver = node.value
        if isinstance(receiver, ast.Name):
            return receiver.id in self.firsts or receiver.id in self.bindings.instances
        return (isinstance(receiver, ast.Call) and isinstance(receiver.func, ast.Name)
                and receiver.func.id in self.bindings.classes)

    def _literal_attribute(self, node: ast.Call) -> None:
        name = node.args[1] if len(node.args) > 1 else None
        if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
            self.flag(node, f"`{node.func.id}` with a computed attribute name")
            return
        attr = name.value
        if attr.startswith("_") or attr not in self.policy.attributes:
            self.flag(node, f"`{node.func.id}(..., {attr!r})`: the attribute `.{attr}` is not one a lab needs")

    def _format_call(self, node: ast.Call) -> None:
        receiver = node.func.value
        templates = None
        if isinstance(receiver, ast.Constant) and isinstance(receiver.value, str):
            templates = [receiver.value]
        elif isinstance(receiver, ast.Name):
            templates = self.bindings.only_strings(receiver.id)
        if templates is None:
            self.flag(node, "`.format` on a string the screen cannot see (use an f-string)")
            return
        for template in templates:
            try:
                fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
            except ValueError:
                self.flag(node, "`.format` with a malformed template")
                return
            for field_name in fields:
                if "." in field_name or "[" in field_name:
                    self.flag(node, f"`.format` field `{{{field_name}}}` reads attributes or items by name")
                    return

    def _ipython_call(self, node: ast.Call) -> bool:
        """get_ipython().run_line_magic / run_cell_magic / system / getoutput, as IPython's
        transform writes them for magics and shell lines: allowed ones are screened by body."""
        func = node.func
        if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Call)
                and isinstance(func.value.func, ast.Name) and func.value.func.id == "get_ipython"
                and not func.value.args and "get_ipython" not in self.bindings.bound):
            return False
        args = node.args
        literal = all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in args)
        if not literal or node.keywords:
            self.flag(node, "`get_ipython()` used directly")
            return True
        values = [a.value for a in args]
        if func.attr == "run_line_magic" and len(values) == 2:
            name, line = values
            words = line.split()
            if name in INSTALLERS and words[:1] == ["install"] and _plain_words(words[1:]):
                return True
            if name == "load_ext" and set(words) <= LOAD_EXT:
                return True
            if name not in self.policy.line_magics or name == "load_ext":
                self.flag(node, f"the magic `%{name}`, which a graded lab does not run")
            elif name in ("time", "timeit"):
                self.screen_code(_strip_timeit_options(line) if name == "timeit" else line, node, f"`%{name}`")
            return True
        if func.attr == "run_cell_magic" and len(values) == 3:
            name, line, body = values
            if name not in self.policy.cell_magics:
                self.flag(node, f"the cell magic `%%{name}`, which a graded lab does not run")
            elif name in ("time", "timeit", "capture"):
                if name == "capture" and not _plain_words(line.split()):
                    self.flag(node, "`%%capture` with unusual options")
                self.screen_code(body, node, f"`%%{name}`")
            return True
        if func.attr == "system" and len(values) == 1:
            words = values[0].split()
            if words[:2] in (["pip", "install"], ["conda", "install"]) and _plain_words(words[2:]):
                return True
            self.flag(node, f"the shell command `!{values[0][:60]}`")
            return True
        self.flag(node, f"`get_ipython().{func.attr}`")
        return True


def _plain_words(words: Sequence[str]) -> bool:
    """Package names and flags only: no shell syntax, paths or URLs."""
    allowed = set(string.ascii_letters + string.digits + "-_.=<>[],~!")
    return all(w and set(w) <= allowed and not w.startswith(("-e", "--editable", "-r", "--index",
                                                             "--extra", "-i", "-f", "--find"))
               for w in words)


def _strip_timeit_options(line: str) -> str:
    words = line.split()
    while words and words[0].startswith("-"):
        flag = words.pop(0)
        if flag in ("-n", "-r") and words:
            words.pop(0)
    return " ".join(words)


@dataclass(frozen=True)
class Screened:
    """A submission after the screen: the code each cell runs (None: it does not parse, so it
    never runs) and what needs review."""

    codes: tuple[str | None, ...]
    findings: tuple[Finding, ...]


def screen_cells(cells: Sequence[str], policy: Allowlist = DEFAULT) -> Screened:
    codes, trees = [], []
    for source in cells:
        code = transform(source)
        tree = None
        if code is not None:
            try:
                tree = ast.parse(code)
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                tree = None
        codes.append(code if tree is not None else None)
        trees.append(tree)
    bindings = _Bindings([t for t in trees if t is not None], policy)
    findings: list[Finding] = []
    for index, tree in enumerate(trees, start=1):
        if tree is not None:
            try:
                _CellScreen(index, policy, bindings, findings).visit(tree)
            except RecursionError:
                findings.append(Finding(index, 1, "code nested too deeply to screen"))
    return Screened(codes=tuple(codes), findings=tuple(findings))


def screen(cells: Sequence[str], policy: Allowlist = DEFAULT) -> tuple[Finding, ...]:
    """Findings for a submission's code cells, in order (empty: nothing to review)."""
    return screen_cells(cells, policy).findings
