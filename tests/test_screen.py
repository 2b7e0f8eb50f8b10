"""The source screen (autograder/grade/screen.py): deny by default.

Honest lab code (every notebook in the repo and the idioms below) gives no finding; each attack
route of the threat notes gives at least one, naming the cell and line.
"""

from __future__ import annotations

import pytest

from autograder.grade.allowlist import DEFAULT
from autograder.grade.screen import screen
from autograder.grade.submission import read_cells

from conftest import AUTOGRADER_ZIP, HONEST_NOTEBOOKS, TEMPLATE

HONEST = {
    "lab": "import torch\nimport matplotlib.pylab as plt\nx = torch.tensor(2.0, requires_grad=True)\n"
           "y = x ** 2\ny.backward()\nprint(x.grad, x.grad_fn, y.grad_fn, x.is_leaf)\n",
    "function": "import torch\nclass SQ(torch.autograd.Function):\n    @staticmethod\n"
                "    def forward(ctx, i):\n        ctx.save_for_backward(i)\n        ctx.k = 2\n"
                "        return i ** 2\n    @staticmethod\n    def backward(ctx, grad_output):\n"
                "        (i,) = ctx.saved_tensors\n        return grad_output * ctx.k * i\n",
    "function_import": "from torch.autograd import Function\nclass SQ(Function):\n    pass\n",
    "module": "import torch\nimport torch.nn as nn\nclass Net(nn.Module):\n    def __init__(self):\n"
              "        super().__init__()\n        self.linear = nn.Linear(1, 1)\n"
              "    def forward(self, x):\n        return torch.relu(self.linear(x))\n"
              "net = Net()\nopt = torch.optim.SGD(net.parameters(), lr=0.1)\nopt.zero_grad()\n",
    "magics": "%matplotlib inline\n%time y = 1 + 1\n!pip install otter-grader\n%pip install torch==2.1\n"
              "print(y)\n",
    "cell_magic": "%%time\nz = sum(range(10))\nprint(z)\n",
    "underscore_vars": "import matplotlib.pyplot as plt\n_ = plt.plot([1, 2], [3, 4])\n_tmp = 3\n"
                       "print(_tmp, _)\n",
    "gradient_descent": "import torch\nw = torch.tensor(1.0, requires_grad=True)\nloss = (w - 3) ** 2\n"
                        "loss.backward()\nw.data -= 0.1 * w.grad\nw.grad = None\n"
                        "w.grad.zero_() if w.grad is not None else None\n",
    "numpy_plot": "import numpy as np\nimport matplotlib.pyplot as plt\nxs = np.linspace(-1, 1, 5)\n"
                  "fig, ax = plt.subplots()\nax.plot(xs, np.sin(xs), label='sin')\nax.set_xlabel('x')\n"
                  "plt.legend()\nplt.show()\nprint('{:.3f} and {}'.format(1.0, 2))\n",
    "format_var": "template = 'x = {:.2f}'\nprint(template.format(3.14159))\n",
    "getattr_literal": "import torch\nx = torch.ones(2)\nprint(getattr(x, 'grad', None), hasattr(x, 'grad'))\n",
    "main_guard": "if __name__ == '__main__':\n    print(type(3))\n",
    "comprehension": "vals = [v ** 2 for v in range(3)]\nd = {k: v for k, v in zip('ab', vals)}\n"
                     "try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    print(e)\n",
    "no_grad": "import torch\nx = torch.ones(3, requires_grad=True)\nwith torch.no_grad():\n"
               "    y = x * 2\nprint(x.detach().numpy(), torch.autograd.grad((x ** 2).sum(), x))\n",
    "otter": "import otter\nimport autograd_checks\ngrader = otter.Notebook(tests_dir='tests')\n"
             "grader.check('q1')\ngrader.export(pdf=False)\n",
    "syntax_error": "x = (1,\n",   # never runs, so nothing to review
    "version": "import torch\nprint(torch.__version__)\n",
    "own_methods": "class Net:\n    def helper(self):\n        return self.k\n    def set(self):\n"
                   "        self.k = 1\nnet = Net()\nnet.set()\nprint(net.helper(), Net().helper())\n",
    "shadow_input": "input = 3\nprint(input)\n",
    "deleted_cell": "import matplotlib.pyplot as plt\nplt.plot(Y)\n",   # Y's cell was deleted: NameError
    "old_style_super": "import torch.nn as nn\nclass Net(nn.Module):\n    def __init__(self):\n"
                       "        super(Net, self).__init__()\n        self.fc = nn.Linear(1, 1)\n",
    "property_setter": "class A:\n    @property\n    def k(self):\n        return self.v\n"
                       "    @k.setter\n    def k(self, value):\n        self.v = value\n"
                       "    @classmethod\n    def make(cls):\n        cls.count = 1\n        return cls()\n"
                       "a = A.make()\nb = A()\nprint(b.k)\n",
    "type_compared": "import torch\nx = torch.ones(1)\nprint(type(x), type(x) == torch.Tensor, f'{type(x)}')\n"
                     "assert isinstance(x, type(x))\n",
    "config_literal": "%config InlineBackend.figure_format = 'retina'\n"
                      "%config InlineBackend.figure_formats = {'png', 'retina'}\n",
    "timeit_options": "%timeit -n 10 -r 2 sum(range(5))\n",
    "cell_timeit": "%%timeit -n 3\nz = sum(range(10))\n",
    "alias_used_plainly": "import torch as t\nx = t.ones(2)\n",
    "parameters_loop": "import torch\nnet = torch.nn.Linear(1, 1)\nfor p in net.parameters():\n    p.grad = None\n"
                       "net.weight = torch.nn.Parameter(torch.ones(1, 1))\n",
    "pyplot_and_pylab": "import matplotlib.pylab as plt\nimport matplotlib.pyplot as plt\nplt.plot([1], [2])\n",
    "matplotlib_rc": "import matplotlib.pyplot as plt\nplt.rcParams['figure.figsize'] = (4, 3)\n",
}

ATTACKS = {
    "import_os": "import os\nos._exit(0)\n",
    "import_ctypes": "import ctypes\n",
    "from_sys": "from sys import modules\n",
    "importlib": "import importlib\n",
    "dunder_import": "m = __import__('os')\n",
    "builtins_dict": "b = __builtins__\n",
    "frames": "import torch\nf = torch.tensor(1).grad_fn\nx = (lambda: 0).__code__\n",
    "closure": "def f():\n    pass\nc = f.__closure__\n",
    "private_attr": "import torch\nx = torch.ones(1)\nx._version\n",
    "torch_inspect": "import torch\ni = torch.inspect\n",
    "torch_ctypes": "import torch\nc = torch.ctypes\n",
    "numpy_ctypeslib": "import numpy as np\nnp.ctypeslib\n",
    "numpy_ctypes_attr": "import numpy as np\na = np.zeros(2)\na.ctypes\n",
    "cbook_operator": "import matplotlib.cbook\n",
    "ticker_string": "from matplotlib.ticker import string\n",
    "numpy_testing": "import numpy as np\nnp.testing.measure('1+1')\n",
    "benchmark_timer": "import torch\ntorch.utils.benchmark.Timer('x')\n",
    "torch_fx": "import torch.fx\n",
    "torch_hub": "import torch\ntorch.hub.load('.', 'x', source='local')\n",
    "torch_package": "import torch\ntorch.package.PackageImporter('x')\n",
    "torch_load": "import torch\ntorch.load('x.pt')\n",
    "np_load": "import numpy as np\nnp.load('x.npy', allow_pickle=True)\n",
    "load_library": "import torch\ntorch.ops.load_library('x.so')\n",
    "backend": "import matplotlib\nmatplotlib.use('module://evil')\n",
    "switch_backend": "import matplotlib.pyplot as plt\nplt.switch_backend('module://evil')\n",
    "savetxt": "import numpy as np\nnp.savetxt('evil.py', [1], header='import os')\nimport evil\n",
    "exec": "exec('print(1)')\n",
    "eval": "eval('1')\n",
    "compile": "compile('1', 'x', 'eval')\n",
    "open": "open('/etc/passwd').read()\n",
    "format_field": "'{0.__class__}'.format(1)\n",
    "format_index": "'{0[0]}'.format([1])\n",
    "format_computed": "t = input()\nt.format(1)\n",
    "format_str_method": "str.format('{0.real}', 1)\n",
    "formatter": "import string\nstring.Formatter().get_field('0.x', [1], {})\n",
    "attrgetter": "import operator\noperator.attrgetter('x')\n",
    "match": "match 1:\n    case int(real=r):\n        pass\n",
    "vars": "v = vars()\n",
    "globals": "g = globals()\n",
    "getattr_computed": "n = 'gr' + 'ad'\ngetattr(1, n)\n",
    "getattr_alias": "g = getattr\n",
    "getattr_private": "getattr(1, '_x')\n",
    "type3": "T = type('T', (), {})\n",
    "type_alias": "t = type\n",
    "monkeypatch_torch": "import torch\ntorch.allclose = lambda *a, **k: True\n",
    "monkeypatch_tensor": "import torch\ntorch.Tensor.backward = lambda self: None\n",
    "del_module_attr": "import math\ndel math.isclose\n",
    "dunder_method": "class Liar:\n    def __eq__(self, other):\n        return True\n",
    "tensor_subclass": "import torch\nclass T(torch.Tensor):\n    pass\n",
    "float_subclass": "class F(float):\n    pass\n",
    "metaclass": "class M(object, metaclass=type):\n    pass\n",
    "register_hook": "import torch\nx = torch.ones(1, requires_grad=True)\nx.register_hook(lambda g: g * 0)\n",
    "post_accumulate_hook": "import torch\nx = torch.ones(1, requires_grad=True)\n"
                            "x.register_post_accumulate_grad_hook(print)\n",
    "as_subclass": "import torch\ntorch.ones(1).as_subclass(torch.Tensor)\n",
    "magic_run": "%run other.py\n",
    "magic_env": "%env PYTHONPATH=/tmp\n",
    "magic_writefile": "%%writefile evil.py\nimport os\n",
    "magic_time_body": "%time import os\n",
    "cell_time_body": "%%time\nimport ctypes\n",
    "capture_body": "%%capture\nimport sys\n",
    "shell": "!cat /etc/passwd\n",
    "shell_pip_url": "!pip install git+https://x/y\n",
    "shell_getoutput": "x = !ls\n",
    "get_ipython": "ip = get_ipython()\nip.run_cell('import os')\n",
    "pinfo": "x = 1\nx?\n",
    "load_ext": "%load_ext evil\n",
    "async": "async def f():\n    await g()\n",
    "star_import": "from torch import *\n",
    "relative_import": "from . import x\n",
    "autograd_checks_tracker": "import autograd_checks\nautograd_checks.tracker.clear()\n",
    "otter_internals": "import otter\notter.test_files\n",
    "gc": "import gc\n",
    "inspect": "import inspect\n",
    "unbound_method": "class A:\n    def f(self):\n        return self.ctypes\n    def g(self):\n"
                      "        self.ctypes = 1\n" "import numpy as np\nA.f(np.zeros(1))\n",
    # found by the red team: names bound in another scope (or never) leave the builtin in place
    "exec_bound_in_comprehension": "[0 for exec in ()]\nexec('print(1)')\n",
    "exec_parameter": "def f(exec):\n    pass\nexec('1')\n",
    "eval_dead_binding": "if False:\n    eval = 0\neval('1')\n",
    "open_except_name": "try:\n    pass\nexcept Exception as open:\n    pass\nopen('/etc/passwd')\n",
    # a method name of the notebook's own class read on a library object
    "method_name_on_module": "class K:\n    def sys(self):\n        pass\nimport torch\nm = torch\nm.sys\n",
    "method_name_on_value": "class K:\n    def emit(self):\n        pass\nimport torch\nt = torch.ones(1)\nt.emit\n",
    "module_as_value": "import torch\nm = torch\n",
    "module_as_argument": "import torch\nprint(torch)\n",
    "store_on_parameter": "import torch\ndef put(o, v):\n    o.apply = v\nput(torch.autograd.Function, abs)\n",
    "own_name_elsewhere": "class A:\n    def g(self):\n        self.ctypes = 1\n"
                          "import numpy as np\nnp.zeros(1).ctypes\n",
    # found by the second red team
    "timeit_option_is_code": "%timeit -exec('import os')\n",
    "config_value_is_code": "%config A.b = exec('import os')\n",
    "cell_timeit_setup_is_code": "%%timeit exec('import os')\nz = 1\n",
    "type_of_type": "T = type(type(0))\nK = T('K', (), {})\n",
    "type_called": "type(type(0))('K', (), {})\n",
    "staticmethod_store": "import torch\nclass A:\n    @staticmethod\n    def put(o, v):\n        o.forward = v\n"
                          "A().put(torch.nn.Linear, abs)\n",
    "function_forward_called": "import torch\nclass F(torch.autograd.Function):\n    @staticmethod\n"
                               "    def forward(ctx, x):\n        ctx.forward = x\n        return x\n"
                               "F().forward(torch.nn.Linear, abs)\n",
    "other_decorator_store": "import torch\ndef deco(f):\n    f(torch.nn.Linear, abs)\n    return f\n"
                             "class A:\n    @deco\n    def put(self, v):\n        self.forward = v\n",
    "self_rebound": "import torch\nclass A:\n    def put(self, v):\n        for self in [torch.nn.Linear]:\n"
                    "            self.forward = v\n",
    "self_shadowed_by_inner": "import torch\nclass A:\n    def put(self):\n        def inner(self):\n"
                              "            self.forward = abs\n        inner(torch.nn.Linear)\n",
    "method_called_in_class_body": "import torch\nclass A:\n    def put(self, v):\n        self.forward = v\n"
                                   "    put(torch.nn.Linear, abs)\n",
    "super_unbound": "import torch\nclass A:\n    def put(self, v):\n        self.forward = v\n"
                     "class B(A):\n    pass\nsuper(B, B).put(torch.nn.Linear, abs)\n",
    "super_as_value": "s = super\n",
    "dunder_store_on_library": "import torch\ntorch.nn.Linear.__init__ = print\n",
    "dunder_store_on_own": "class A:\n    def __init__(self):\n        self.__init__ = print\n",
    "grad_store_on_library_class": "import torch\ntorch.nn.Parameter.grad = property(print)\n",
    "grad_store_on_imported_class": "from torch.nn import Parameter\nParameter.grad = property(print)\n",
    # found by the fourth red team: a library object under another name is still the library
    "grad_store_on_module_alias": "import torch\nm = torch.autograd\nm.grad = print\n",
    "grad_store_on_class_alias": "import torch\nT = torch.Tensor\nT.grad = property(print)\n",
    "grad_store_on_alias_of_alias": "import torch\nT = torch.Tensor\nU = T\nU.data = 1\n",
    "grad_store_through_container": "import torch\nL = [torch.Tensor]\nL[0].grad = property(print)\n",
    "grad_store_on_loop_variable": "import torch\nfor T in (torch.Tensor,):\n    T.grad = property(print)\n",
    "grad_store_on_type_result": "import torch\nx = torch.ones(1)\nT = type(x)\nT.grad = property(print)\n",
    "format_on_parameter": "def f(t, x):\n    return t.format(x)\nt = '{}'\nprint(t.format(1))\n",
    "format_on_loop_variable": "t = '{}'\nfor t in [t]:\n    print(t.format(1))\n",
    "store_on_two_module_alias": "import matplotlib.pylab as plt\nimport matplotlib.pyplot as plt\n"
                                 "plt.Figure.data = 1\n",
    "two_module_alias_as_value": "import matplotlib.pylab as plt\nimport matplotlib.pyplot as plt\nprint(plt)\n",
    "module_alias_reused": "import torch as t\ndef f(t):\n    return t\nt.ops\n",
    # found by the third red team: the caller decides what a method's first parameter is
    "lambda_default_self": "class P:\n    def keep(self):\n        self.gi_frame = 1\n"
                           "    def read(self, reader=lambda self: self.gi_frame):\n        return reader\n",
    "setup_context_forward": "import torch\nclass R(torch.autograd.Function):\n    @staticmethod\n"
                             "    def forward(ctx):\n        return ctx.gi_frame\n    @staticmethod\n"
                             "    def setup_context(ctx, inputs, output):\n        ctx.gi_frame = 1\n"
                             "R.apply(torch.ones(1))\n",
    "getattr_unbound_method": "class P:\n    def get(self):\n        return self.gi_frame\n    def put(self):\n"
                              "        self.gi_frame = 1\ngetattr(P, 'get')((i for i in ()))\n",
    "getattr_module_member": "import torch\ngetattr(torch, 'load')\n",
    "format_nested_field": "print('{0:{1.__class__}}'.format('a', 1))\n",
}


def test_automagic_is_inert_because_clean_notebooks_run_without_ipython():
    """IPython would run a bare `ls` as %ls; an unflagged notebook runs in the fast path (every
    allowed magic is honoured there), where `ls` is only a NameError."""
    from autograder.grade.screen import screen_cells

    screened = screen_cells(["%matplotlib inline\n%time z = 1\n", "ls\n", "cd /tmp\n", "cd ..\n"])
    assert screened.findings == ()       # `cd /tmp` is even Python: cd divided by tmp, a NameError
    assert screened.mode == "fast"
    assert screened.codes[3] is None     # not Python: never run


def test_code_too_deep_to_parse_is_inert_and_does_not_crash():
    deep = "x = " + "-" * 200_000 + "1\n"
    assert screen([deep]) == ()
    from autograder.grade.screen import parse_cell
    assert parse_cell(deep) is None   # never run, so nothing to screen


@pytest.mark.parametrize("name", sorted(HONEST))
def test_honest_code_has_no_finding(name):
    assert screen([HONEST[name]]) == ()


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_is_a_finding(name):
    findings = screen(["import torch\n", ATTACKS[name]])
    assert findings, f"{name} passed the screen"
    assert all(f.cell in (1, 2) and f.line >= 1 and f.what for f in findings)


@pytest.fixture(scope="module")
def lab_autograder():
    from autograder.grade.autograder_zip import load_autograder
    autograder = load_autograder(AUTOGRADER_ZIP)
    yield autograder
    autograder.cleanup()


def test_every_honest_notebook_in_the_repo_is_clean(lab_autograder):
    """What the grader screens: the cells after the notebook's self-contained first cell is
    replaced by the master's own cell."""
    from autograder.grade.batch import lab_cells_replaced
    assert HONEST_NOTEBOOKS, "no notebooks found"
    dirty = {}
    for path in HONEST_NOTEBOOKS:
        cells, _ = lab_cells_replaced(read_cells(path.read_bytes()), lab_autograder)
        findings = screen(cells)
        if findings:
            dirty[path.name] = [f.describe() for f in findings]
    assert dirty == {}


def test_an_edited_setup_cell_is_screened_like_an_answer(lab_autograder):
    """Only the unedited first cell is replaced: a student who changes it (here one character of
    the packed text) has it screened and run as their own code, and its unpacking is flagged."""
    from autograder.grade.batch import lab_cells_replaced
    cells = read_cells(TEMPLATE.read_bytes())
    setup = next(i for i, c in enumerate(cells) if c.startswith("#@title "))
    replaced, answers = lab_cells_replaced(cells, lab_autograder)
    assert "_autograd_lab_setup" not in replaced[setup] and answers[setup] is False
    assert screen(replaced) == ()
    edited = cells[setup].replace("'UEsDB", "'UEsDC", 1)
    assert edited != cells[setup]
    replaced, answers = lab_cells_replaced([*cells[:setup], edited, *cells[setup + 1:]], lab_autograder)
    assert replaced[setup] == edited and answers[setup] is True
    assert any(f.cell == setup + 1 for f in screen(replaced))


def test_finding_names_cell_and_line():
    (finding,) = screen(["x = 1\n", "y = 2\nimport os\n"])
    assert (finding.cell, finding.line) == (2, 2)
    assert "`os`" in finding.what
    assert finding.describe() == "code cell 2, line 2: " + finding.what


def test_magic_body_line_numbers_point_into_the_cell():
    (finding,) = screen(["x = 1\n%time import os\n"])
    assert (finding.cell, finding.line) == (1, 2)


def test_names_bound_in_magic_bodies_are_known():
    assert screen(["%time y = 1\n", "print(y)\n"]) == ()


def test_assignment_config_extends_the_defaults():
    policy = DEFAULT.extended({"modules": ["torch.utils.data"], "members": {"torch.utils.data": ["DataLoader"]},
                               "attributes": ["register_hook"]})
    code = "import torch.utils.data\nfrom torch.utils.data import DataLoader\nimport torch\n" \
           "x = torch.ones(1, requires_grad=True)\nx.register_hook(print)\n"
    assert screen([code]) != ()
    assert screen([code], policy) == ()
    with pytest.raises(ValueError, match="unknown key"):
        DEFAULT.extended({"modulez": []})


def test_fast_path_runs_exactly_what_the_screen_read():
    """A `%timeit` option that is code is a finding, and the fast path refuses to run it."""
    from autograder.grade.protocol import magic_code

    assert magic_code("line", "timeit", "-exec('import os')") is None
    assert magic_code("line", "timeit", "-n 10 -r2 sum(range(3))") == "sum(range(3))"
    assert magic_code("line", "time", "z = 1") == "z = 1"
    assert magic_code("line", "config", "A.b = exec('x')") is None


def test_run_mode_is_read_from_code_not_from_strings():
    """Text that looks like a magic call (in a string or comment) does not make the run use a
    real IPython shell, where %config and %%timeit would run code the fast path ignores."""
    from autograder.grade.screen import screen_cells

    lookalike = "s = \"get_ipython().run_line_magic('bash', '')\"  # get_ipython().run_cell_magic('x'\n"
    screened = screen_cells([lookalike, "%config A.b = 1\n"])
    assert screened.mode == "fast"
    assert screened.findings == ()
    flagged = screen_cells(["%bash\n"])
    assert flagged.mode == "ipython" and flagged.findings


def test_padding_with_harmless_findings_does_not_hide_the_one_that_matters():
    """A cell of many flagged but harmless lines, then the payload: the record keeps the payload's
    finding and says how many were left out, and where."""
    from autograder.grade.screen import MAX_FINDINGS
    padding = "".join(f"dir(torch{i % 3})\n" for i in range(3 * MAX_FINDINGS))
    cell = "import torch\n" + padding + "import sys\nsys.modules['autograd_checks'] = None\n"
    findings = screen([cell])
    assert len(findings) == MAX_FINDINGS
    assert any("sys" in f.what for f in findings), [f.what for f in findings]
    assert "more findings not listed here (cells 1)" in findings[-1].what
