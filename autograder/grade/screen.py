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
import re
import string
from dataclasses import dataclass
from typing import Iterable, Sequence

from ..results import Finding
from .allowlist import DEFAULT, INSTALLERS, LOAD_EXT, Allowlist
from .protocol import INSTALL_COMMANDS, fast_path_honours, magic_code, timeit_statement, transform_cell

_CONFIG_WORD = r"""(-?[\d.]+|True|False|None|'[\w .-]*'|"[\w .-]*")"""
# `Class.trait = literal`, or a list/set of literals (InlineBackend.figure_formats = {'svg'})
_CONFIG_LIST = rf"[\[{{]\s*{_CONFIG_WORD}(\s*,\s*{_CONFIG_WORD})*\s*[\]}}]"
_CONFIG_LINE = re.compile(rf"\s*[A-Za-z_][\w.]*\s*=\s*({_CONFIG_WORD}|{_CONFIG_LIST})\s*")
MAX_FINDINGS = 50   # per submission: enough for a reviewer, bounded for the record
_CALL_ONLY = ("getattr", "hasattr", "type", "super")
_BUILTIN_NAMES = frozenset(dir(__import__("builtins")))
# Builtins a notebook may reuse as its own names (input = torch.tensor(...)): nothing in them
# reaches the interpreter, so whether the name means the builtin or the notebook's value at a
# given point does not matter. Every other builtin outside the allowlist is flagged wherever
# it appears.
# Names the notebook's runtime (IPython, or the grader's fast path) puts among the builtins.
RUNTIME_NAMES = frozenset({"get_ipython"})
SHADOWABLE = frozenset({"input", "ascii", "bytes", "bytearray", "copyright", "credits", "license",
                        "exit", "quit", "aiter", "anext"})


def transform(source: str) -> str | None:
    """A cell as the graded run executes it (None when IPython cannot transform it)."""
    try:
        return transform_cell(source)
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


def _magic_call(node: ast.AST) -> tuple[str, list[str]] | None:
    """("line" | "cell", its literal arguments) for get_ipython().run_line_magic(...) and
    run_cell_magic(...), as IPython's transform writes magics."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Call) and isinstance(node.func.value.func, ast.Name)
            and node.func.value.func.id == "get_ipython"
            and node.func.attr in ("run_line_magic", "run_cell_magic")):
        return None
    values = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    return ("line" if node.func.attr == "run_line_magic" else "cell"), values


def _magic_body(node: ast.AST) -> str | None:
    """The code the fast path runs for a `%time`/`%timeit` line or a `%%time`-like cell."""
    call = _magic_call(node)
    if call is None:
        return None
    kind, values = call
    if kind == "line" and len(values) == 2:
        return magic_code(kind, values[0], values[1])
    if kind == "cell" and len(values) == 3:
        try:
            return magic_code(kind, values[0], values[1], values[2])
        except Exception:
            return None
    return None


# Attribute names code may assign to on objects other than its own (self, ctx and other
# parameters of its functions may hold anything): clearing or replacing a gradient, switching
# tracking on, the gradient-descent idiom `w.data -= lr * w.grad`, replacing a layer's weights.
STORE_ATTRIBUTES = frozenset({"grad", "data", "requires_grad", "weight", "bias"})
# Classes a submission may subclass, besides its own: autograd Functions, torch.nn modules
# (checked by module), object and exceptions.
BASE_MEMBERS = {"torch.autograd": {"Function"}, "torch.nn": None}


# The methods of an autograd Function that autograd calls with its own ctx object.
CTX_METHODS = frozenset({"forward", "backward", "setup_context", "jvp", "vjp"})
_PROPERTY_PARTS = ("setter", "getter", "deleter")


def _names_bound_by(node: ast.AST) -> list[str]:
    """The names one node binds (an assignment target, a def, a parameter, an except name, a
    global/nonlocal declaration, an import's local name)."""
    if isinstance(node, ast.Name):
        return [] if isinstance(node.ctx, ast.Load) else [node.id]
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.arg):
        return [node.arg]
    if isinstance(node, ast.ExceptHandler):
        return [node.name] if node.name else []
    if isinstance(node, (ast.Global, ast.Nonlocal)):
        return list(node.names)
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [a.asname or a.name.split(".")[0] for a in node.names]
    return []


def _rebinds(function: ast.AST, name: str) -> bool:
    """Does the function body bind `name` again (for, with, :=, import, a nested def...)?"""
    return any(name in _names_bound_by(node) for statement in function.body for node in ast.walk(statement))


def own_receiver(method: ast.AST, function_class: bool, forward_takes_ctx: bool = True) -> str | None:
    """The parameter through which a method reaches an object of the notebook's own making:
    self of a plain method or property, cls of a classmethod, ctx of an autograd Function's
    forward/backward. None where any caller could pass anything there (a staticmethod, a
    method under another decorator) or where the method binds the name again."""
    if not isinstance(method, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None
    positional = [*method.args.posonlyargs, *method.args.args]
    if not positional:
        return None
    decorators = []
    for d in method.decorator_list:
        if isinstance(d, ast.Name):
            decorators.append(d.id)
        elif isinstance(d, ast.Attribute) and d.attr in _PROPERTY_PARTS and isinstance(d.value, ast.Name):
            decorators.append("property")
        else:
            return None
    if decorators == ["staticmethod"]:
        if not (function_class and method.name in CTX_METHODS):
            return None
        if method.name == "forward" and not forward_takes_ctx:
            return None   # with a setup_context, autograd calls forward(*inputs): no ctx
    elif decorators not in ([], ["classmethod"], ["property"]):
        return None
    first = positional[0].arg
    return None if _rebinds(method, first) else first


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
        self.function_classes: set[str] = set()       # own classes that are autograd Functions
        self.conflicts: set[str] = set()              # names bound to a module and to other things
        self.multi_module: set[str] = set()           # names bound to two different modules
        self.binding_count: dict[str, int] = {}       # name -> how many places bind it
        # "ipython" when a cell (or a magic's body) calls a magic the fast path cannot honour;
        # every magic of the default allowlist is honoured, so only a flagged notebook (or a
        # course that allowed more magics) runs in a real shell
        self.mode = "fast"
        class_nodes: list[ast.ClassDef] = []
        classmethods: set[str] = set()
        plain: set[str] = set()
        other: set[str] = set()
        count = self.binding_count

        def bind(name: str) -> None:
            count[name] = count.get(name, 0) + 1

        pending = list(trees)
        trees_seen: list[ast.AST] = []
        while pending:
            tree = pending.pop()
            trees_seen.append(tree)
            for node in ast.walk(tree):
                relative = isinstance(node, ast.ImportFrom) and (node.level or not node.module)
                names = [] if relative else _names_bound_by(node)   # relative imports are findings
                for name in names:
                    self.bound.add(name)
                    bind(name)
                if isinstance(node, ast.Import):
                    for alias, name in zip(node.names, names):
                        self._alias(name, alias.name if alias.asname else name, other)
                elif isinstance(node, ast.ImportFrom):
                    for alias, name in zip(node.names, names):
                        full = f"{node.module}.{alias.name}"
                        if full in policy.modules:
                            self._alias(name, full, other)
                        else:
                            other.add(name)
                            self.members.setdefault(name, set()).add((node.module, alias.name))
                elif not isinstance(node, (ast.Global, ast.Nonlocal)):
                    other.update(names)
                if isinstance(node, ast.ClassDef):
                    self.classes.add(node.name)
                    class_nodes.append(node)
                    for item in node.body:
                        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                            self.methods.add(item.name)
                            decorators = [d.id for d in item.decorator_list if isinstance(d, ast.Name)]
                            (classmethods if decorators == ["classmethod"] else plain).add(item.name)
                call = _magic_call(node)
                if call is not None and call[1] and not fast_path_honours(call[0], call[1][0]):
                    self.mode = "ipython"   # read from parsed calls: a look-alike string changes nothing
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
            if self.modules.pop(name, None) is not None:
                self.conflicts.add(name)   # a module here, a variable there: a finding
        for name in self.multi_module:
            self.modules.pop(name, None)
        self.library_names = self.conflicts | self.multi_module
        self.library_aliases = self._library_aliases(trees_seen)
        self._function_classes(class_nodes)
        # one setup_context anywhere (a subclass may add it) and no forward takes a ctx
        self.forward_takes_ctx = not any(isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))
                                         and item.name == "setup_context"
                                         for node in class_nodes for item in node.body)
        for node in class_nodes:
            for item in node.body:
                receiver = own_receiver(item, node.name in self.function_classes, self.forward_takes_ctx)
                if receiver is not None:
                    self.own_attributes |= _stored_on(item, receiver)
        self.classmethods = classmethods - plain   # names that are a classmethod in every class
        self.instances = {name for name, values in self.strings.items()
                          if values and self.binding_count.get(name, 0) == len(values)
                          and all(isinstance(v, ast.Call) and isinstance(v.func, ast.Name)
                                            and v.func.id in self.classes for v in values)}

    def _library_root(self, name: str) -> bool:
        return name in self.modules or name in self.library_names or name in self.library_aliases \
            or (name in self.members and name not in self.classes)

    def _holds_library_object(self, value: ast.AST) -> bool:
        """Whether an expression can evaluate to (a container of) a library module or class
        itself, rather than a value made by calling it: `torch.Tensor`, `[torch.autograd]`,
        `type(x)`, or another such alias."""
        nodes = list(ast.walk(value))
        # a chain's inner parts (torch in torch.Tensor) and what is called are not values here
        skip = {id(n.func) for n in nodes if isinstance(n, ast.Call)} | \
               {id(n.value) for n in nodes if isinstance(n, ast.Attribute)}
        for node in nodes:
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _CALL_ONLY:
                return True
            if isinstance(node, (ast.Name, ast.Attribute)) and id(node) not in skip:
                root = node
                while isinstance(root, ast.Attribute):
                    root = root.value
                if isinstance(root, ast.Name) and self._library_root(root.id):
                    return True
        return False

    def _library_aliases(self, trees: list[ast.AST]) -> set[str]:
        """Names some binding of which is a library object itself (m = torch.autograd,
        T = torch.Tensor, for m in [torch.nn]): storing an attribute on them changes the library."""
        self.library_aliases: set[str] = set()
        sources: list[tuple[list[str], ast.AST]] = []
        for tree in trees:
            for node in ast.walk(tree):
                if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.NamedExpr)) and node.value is not None:
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    names = [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
                    sources.append((names, node.value))
                elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
                    sources.append(([n.id for n in ast.walk(node.target) if isinstance(n, ast.Name)], node.iter))
                elif isinstance(node, (ast.With, ast.AsyncWith)):
                    for item in node.items:
                        if item.optional_vars is not None:
                            sources.append(([n.id for n in ast.walk(item.optional_vars) if isinstance(n, ast.Name)],
                                            item.context_expr))
        grew = True
        while grew:   # an alias of an alias is one too
            grew = False
            for names, value in sources:
                if set(names) - self.library_aliases and self._holds_library_object(value):
                    self.library_aliases |= set(names)
                    grew = True
        return self.library_aliases

    def _function_classes(self, class_nodes: list[ast.ClassDef]) -> None:
        def function_base(base: ast.AST) -> bool:
            if isinstance(base, ast.Attribute):
                return base.attr == "Function"
            return isinstance(base, ast.Name) and (base.id == "Function" or base.id in self.function_classes)

        grew = True
        while grew:
            grew = False
            for node in class_nodes:
                if node.name not in self.function_classes and any(function_base(b) for b in node.bases):
                    self.function_classes.add(node.name)
                    grew = True

    def _alias(self, name: str, module: str, other: set[str]) -> None:
        if self.modules.get(name, module) != module:
            self.multi_module.add(name)   # one name, two modules (pyplot and pylab as plt): resolve neither
        self.modules.setdefault(name, module)

    def only_strings(self, name: str) -> list[str] | None:
        """The string literals `name` is assigned, when it is never bound to anything else."""
        values = self.strings.get(name)
        if not values or not all(isinstance(v, ast.Constant) and isinstance(v.value, str) for v in values):
            return None
        if self.binding_count.get(name, 0) != len(values):   # also a parameter, loop variable...
            return None
        return [v.value for v in values]


class _CellScreen(ast.NodeVisitor):
    """Walks one cell; every construct outside the allowlist becomes a Finding."""

    def __init__(self, cell: int, policy: Allowlist, bindings: _Bindings, findings: list[Finding],
                 seen: set | None = None) -> None:
        self.cell, self.policy, self.bindings, self.findings = cell, policy, bindings, findings
        self.seen = set(findings) if seen is None else seen
        self.offset = 0   # line offset inside a magic's body
        self.params: set[str] = set()   # parameters of the functions being visited (self, ctx...)
        self.firsts: set[str] = set()   # first parameters of the methods being visited
        self.in_class = False           # directly in a class body (not in one of its methods)
        self.class_methods: list[set[str]] = []   # the methods of each class being visited
        self.receiver = False           # visiting the object an attribute is read from
        self.plain_type_calls: set[int] = set()   # type(x) calls only compared or printed

    def visit_Module(self, node):
        self.plain_type_calls |= _plain_type_calls(node)
        self.generic_visit(node)

    # ----------------------------------------------------------------- helpers

    def flag(self, node: ast.AST | None, what: str) -> None:
        line = (getattr(node, "lineno", 1) or 1) + self.offset
        finding = Finding(self.cell, line, what)
        if finding not in self.seen:   # all of them: screen_cells chooses what the record keeps
            self.seen.add(finding)
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

    def _conflict(self, node, name: str) -> None:
        if name in self.bindings.conflicts:
            self.flag(node, f"`{name}` names a module here and something else elsewhere (give each its own name)")

    def visit_Import(self, node):
        for alias in node.names:
            self._conflict(node, alias.asname or alias.name.split(".")[0])
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
            self._conflict(node, alias.asname or alias.name)
            if alias.name == "*":
                self.flag(node, f"`from {node.module} import *`: import the names you use")
            elif full not in self.policy.modules and alias.name not in self.policy.members(node.module):
                self.flag(node, f"import of `{full}`, which a lab submission does not need")

    def visit_FunctionDef(self, node):
        if _is_dunder(node.name) and node.name not in self.policy.dunder_defs:
            self.flag(node, f"a method named `{node.name}` (special methods can make objects lie to checks)")
        for decorator in node.decorator_list:   # evaluated where the def stands
            if isinstance(decorator, ast.Attribute) and decorator.attr in _PROPERTY_PARTS \
                    and isinstance(decorator.value, ast.Name):
                continue   # @value.setter of a property
            self.visit(decorator)
        saved, saved_firsts = self.params, self.firsts
        args = node.args
        positional = [*args.posonlyargs, *args.args]
        names = {a.arg for a in [*positional, *args.kwonlyargs, args.vararg, args.kwarg] if a is not None}
        self.params = saved | names
        firsts = saved_firsts - names   # a parameter of the same name hides an outer self
        if self.in_class:
            function_class = self.class_name in self.bindings.function_classes
            receiver = own_receiver(node, function_class, self.bindings.forward_takes_ctx)
            if receiver is not None:
                firsts = firsts | {receiver}
        self.firsts = firsts
        self.params, self.firsts = saved, saved_firsts   # defaults and annotations: evaluated outside
        self.visit(args)
        if node.returns is not None:
            self.visit(node.returns)
        self.params, self.firsts = saved | names, firsts
        was_in_class, self.in_class = self.in_class, False
        for child in node.body:
            self.visit(child)
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
        saved_name, self.class_name = getattr(self, "class_name", None), node.name
        self.class_methods.append({item.name for item in node.body
                                   if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))})
        was_in_class, self.in_class = self.in_class, True
        self.generic_visit(node)
        self.in_class, self.class_name = was_in_class, saved_name
        self.class_methods.pop()

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
        self.visit(node.args)   # its defaults belong to the enclosing scope
        args = node.args
        names = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
                 if a is not None}
        saved, saved_firsts = self.params, self.firsts
        self.params, self.firsts = saved | names, saved_firsts - names   # `lambda self: ...` is not self
        self.visit(node.body)
        self.params, self.firsts = saved, saved_firsts

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
        if self.in_class and self.class_methods and name in self.class_methods[-1] \
                and isinstance(node.ctx, ast.Load):
            # in its class body a method is a plain function: it would take any object as self
            self.flag(node, f"the method `{name}` used inside its class body (call methods on an instance)")
            return
        if isinstance(node.ctx, ast.Load) and not self.receiver and (
                name in self.bindings.modules or name in self.bindings.multi_module):
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
            elif not isinstance(node.ctx, ast.Load):
                self.flag(node, f"assigning to `.{attr}` (special attributes are not for changing)")
            self._visit_receiver(node.value)
            return
        module = self.module_of(node.value)
        receiver = node.value.id if isinstance(node.value, ast.Name) else None
        self._visit_receiver(node.value)
        if receiver in self.bindings.classes and attr in self.bindings.methods \
                and attr not in self.bindings.classmethods and receiver not in self.bindings.modules:
            # C.method(obj) would run a method on any object: call it on an instance instead
            self.flag(node, f"`{receiver}.{attr}` used on the class (call methods on an instance, "
                            f"or use {receiver}.apply for an autograd Function)")
        if not isinstance(node.ctx, ast.Load):
            own = isinstance(node.value, ast.Name) and node.value.id in self.firsts
            library = self._library_object(node.value)
            if module is not None:
                self.flag(node, f"assigning to `{module}.{attr}` (changing a library is not allowed)")
            elif library is not None:
                self.flag(node, f"assigning to `.{attr}` of `{library}` (changing a library is not allowed)")
            elif not own and attr not in STORE_ATTRIBUTES:
                self.flag(node, f"assigning to the attribute `.{attr}` of an object the notebook did not make")
        if module is not None:
            if attr not in self.policy.members(module) and f"{module}.{attr}" not in self.policy.modules:
                self.flag(node, f"`{module}.{attr}`, which a lab submission does not need")
        elif attr == "format":
            pass   # checked where it is called (visit_Call)
        elif attr not in self.policy.attributes and not self._own(node):
            self.flag(node, f"the attribute `.{attr}`, which a lab submission does not need")

    def _library_object(self, node: ast.AST) -> str | None:
        """What an attribute is stored on, when that is (part of) a library rather than a value
        the notebook made: torch.nn.Parameter, an imported class, type(x), x.__class__."""
        chain, root = [], node
        while isinstance(root, (ast.Attribute, ast.Subscript)):
            if isinstance(root, ast.Attribute):
                chain.append(root.attr)
                if root.attr.startswith("__"):
                    return f"...{root.attr}"
            root = root.value
        if isinstance(root, ast.Name):
            if root.id in self.bindings.modules or root.id in self.bindings.library_names \
                    or root.id in self.bindings.library_aliases:
                return ".".join([root.id, *reversed(chain)])
            if root.id in self.bindings.members and root.id not in self.bindings.classes:
                return ".".join([root.id, *reversed(chain)])
        if isinstance(root, ast.Call) and isinstance(root.func, ast.Name) and root.func.id in _CALL_ONLY:
            return f"{root.func.id}(...)"
        return None

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
            if func.id == "getattr" and self._literal_attribute(node):
                # getattr(obj, "name") reads what obj.name reads: screen it as that
                attribute = ast.copy_location(ast.Attribute(value=node.args[0], attr=node.args[1].value,
                                                            ctx=ast.Load()), node)
                self.visit(attribute)
                for child in [*node.args[2:], *node.keywords]:
                    self.visit(child)
                return
            if func.id == "hasattr":
                self._literal_attribute(node)
            elif func.id == "super":
                self._super_call(node)
            elif len(node.args) != 1 or node.keywords:
                self.flag(node, "`type(...)` with more than one argument (it creates classes)")
            elif id(node) not in self.plain_type_calls:
                self.flag(node, "`type(x)` used other than to compare or print it (isinstance says what x is)")
            for child in [*node.args, *node.keywords]:
                self.visit(child)
            return
        if isinstance(func, ast.Attribute) and func.attr == "format":
            self._format_call(node)
        if isinstance(func, ast.Name) and func.id in self.bindings.function_classes \
                and func.id not in self.bindings.modules:
            # an instance would let forward/backward be called with any object as ctx
            self.flag(node, f"an instance of the autograd Function `{func.id}` (use {func.id}.apply)")
        self.generic_visit(node)

    def _super_call(self, node: ast.Call) -> None:
        """super() or super(ThisClass, self): anything else calls a method with any object as self."""
        args = node.args
        if node.keywords or (args and not (
                len(args) == 2 and isinstance(args[0], ast.Name) and args[0].id in self.bindings.classes
                and isinstance(args[1], ast.Name) and args[1].id in self.firsts)):
            self.flag(node, "`super(...)` with arguments other than (this class, self)")

    def _own(self, node: ast.Attribute) -> bool:
        """self.linear / ctx.k / self.helper() inside a method, net.helper() on an instance of
        the notebook's own class, Net().helper(): names of the notebook's own making, on
        objects of its own making only."""
        names = self.bindings.own_attributes | self.bindings.methods
        if node.attr not in names:
            return False
        receiver = node.value
        if isinstance(receiver, ast.Name):
            return receiver.id in self.firsts or receiver.id in self.bindings.instances or (
                receiver.id in self.bindings.classes and node.attr in self.bindings.classmethods)
        return (isinstance(receiver, ast.Call) and isinstance(receiver.func, ast.Name)
                and receiver.func.id in self.bindings.classes)

    def _literal_attribute(self, node: ast.Call) -> bool:
        """Is the attribute name a literal one a lab needs? (flagged when not)"""
        name = node.args[1] if len(node.args) > 1 else None
        if not (isinstance(name, ast.Constant) and isinstance(name.value, str)) or node.keywords:
            self.flag(node, f"`{node.func.id}` with a computed attribute name")
            return False
        attr = name.value
        if attr.startswith("_") or attr not in self.policy.attributes:
            self.flag(node, f"`{node.func.id}(..., {attr!r})`: the attribute `.{attr}` is not one a lab needs")
            return False
        return True

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
            pending = [template]
            while pending:   # a format spec may hold replacement fields of its own: {0:{1.x}}
                try:
                    parsed = list(string.Formatter().parse(pending.pop()))
                except ValueError:
                    self.flag(node, "`.format` with a malformed template")
                    return
                for _, field_name, spec, _ in parsed:
                    if field_name is None:
                        continue
                    if "." in field_name or "[" in field_name:
                        self.flag(node, f"`.format` field `{{{field_name}}}` reads attributes or items by name")
                        return
                    if spec:
                        pending.append(spec)

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
            elif name == "timeit" and (unknown := timeit_statement(line)[1]):
                self.flag(node, f"`%timeit` with options the graded run does not know ({' '.join(unknown)[:40]})")
            elif name in ("time", "timeit"):
                self.screen_code(magic_code("line", name, line) or "", node, f"`%{name}`")
            elif name == "config" and not _CONFIG_LINE.fullmatch(line):
                # IPython executes a %config line as code; only `Class.trait = literal` is plain
                self.flag(node, "`%config` with something other than `Class.trait = value`")
            return True
        if func.attr == "run_cell_magic" and len(values) == 3:
            name, line, body = values
            if name not in self.policy.cell_magics:
                self.flag(node, f"the cell magic `%%{name}`, which a graded lab does not run")
            elif name in ("time", "timeit", "capture"):
                if name == "capture" and not _plain_words(line.split()):
                    self.flag(node, "`%%capture` with unusual options")
                if name == "timeit":   # IPython runs the line as set-up code
                    statement, unknown = timeit_statement(line)
                    if unknown:
                        self.flag(node, "`%%timeit` with options the graded run does not know")
                    self.screen_code(statement, node, "`%%timeit`")
                code = _magic_body(node)   # what the fast path runs
                if code is None:
                    self.flag(node, f"`%%{name}` whose body is not Python")
                else:
                    self.screen_code(code, node, f"`%%{name}`")
            return True
        if func.attr == "system" and len(values) == 1:
            words = values[0].split()
            if words[:2] in INSTALL_COMMANDS and _plain_words(words[2:]):
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


def _plain_type_calls(tree: ast.AST) -> set[int]:
    """The type(x) calls whose result is only compared, printed or tested with isinstance:
    there the result, even when it is `type` itself, can do nothing."""
    def is_type_call(node):
        return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "type"

    plain = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            parts = [node.left, *node.comparators]
        elif isinstance(node, ast.FormattedValue):
            parts = [node.value]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in ("print", "str", "repr", "isinstance", "issubclass"):
            parts = node.args
        else:
            continue
        plain.update(id(part) for part in parts if is_type_call(part))
    return plain


@dataclass(frozen=True)
class Screened:
    """A submission after the screen: the code each cell runs (None: it does not parse, so it
    never runs) and what needs review."""

    codes: tuple[str | None, ...]
    findings: tuple[Finding, ...]
    mode: str = "fast"   # "ipython" when a magic needs a real IPython shell (see _Bindings.mode)


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
    seen: set[Finding] = set()
    for index, tree in enumerate(trees, start=1):
        if tree is not None:
            try:
                _CellScreen(index, policy, bindings, findings, seen).visit(tree)
            except RecursionError:
                findings.append(Finding(index, 1, "code nested too deeply to screen"))
    return Screened(codes=tuple(codes), findings=_bounded(findings), mode=bindings.mode)


def _bounded(findings: list[Finding]) -> tuple[Finding, ...]:
    """At most MAX_FINDINGS for the record. Padding a cell with many harmless findings must not
    push the one that matters out of the reviewer's sight: the first finding of each kind comes
    first, and a last line says how many more there are and where."""
    if len(findings) <= MAX_FINDINGS:
        return tuple(findings)
    kinds, first, rest = set(), [], []
    for f in findings:
        kind = re.sub(r"`[^`]*`|\d+", "_", f.what)   # the same check on another name or number
        (rest if kind in kinds else first).append(f)
        kinds.add(kind)
    kept = (first + rest)[:MAX_FINDINGS - 1]
    left = [f for f in findings if f not in set(kept)]
    cells = ", ".join(str(c) for c in sorted({f.cell for f in left})[:20])
    kept.sort(key=lambda f: (f.cell, f.line))
    return (*kept, Finding(left[0].cell, left[0].line,
                           f"and {len(left)} more findings not listed here (cells {cells}): read those cells in full"))


def screen(cells: Sequence[str], policy: Allowlist = DEFAULT) -> tuple[Finding, ...]:
    """Findings for a submission's code cells, in order (empty: nothing to review)."""
    return screen_cells(cells, policy).findings
