"""The student notebook's first cell: it carries the lab's checks, so the notebook is all a student needs.

otter's own first cell (`grader = otter.Notebook(tests_dir="tests")`) needs otter-grader
installed, `autograd_checks.py` beside the notebook and a `tests/` folder: on Colab, or for a
student who downloaded only the .ipynb from the LMS, none of that is there. The build replaces
that cell with one that

- installs otter-grader (the version the lab was built with) when the kernel lacks it,
- unpacks the checks module, the lab's cell fingerprints and the public tests, packed into the
  cell as base64 text, into `.autograd_lab/LAB/` in the working folder (a private temporary
  folder where that is read-only) and puts that folder first on sys.path,
- then runs the master's own cell, with `tests_dir` pointing at the unpacked tests.

The cell's input is collapsed in JupyterLab, Notebook 7 and VS Code (`jupyter.source_hidden`)
and shown as a titled form on Colab (`#@title`, `cellView: form`). Only public files are packed:
the student template's own tests/ folder, which otter assign writes without hidden tests.

The secure grader never runs this cell: the autograder zip maps its fingerprint to the master's
original cell, which runs in its place (see `setup_cells` in autograd_lab.json). A student who
edits it gets it screened and run like any answer cell.
"""

from __future__ import annotations

import ast
import base64
import io
import zipfile
from pathlib import Path

import nbformat

from ..errors import BuildError

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
TITLE = "Run this cell first: it sets up the checks for this notebook"

# Kept short and plain: a curious student who expands the cell reads this.
_UNPACKER = '''\
#@title {title} {{ display-mode: "form" }}
# This notebook carries its own checks and public tests (the long text below), so it needs no other
# file: this cell installs otter-grader if it is missing, unpacks the checks into the folder
# .autograd_lab/{lab} and starts the checker. Please do not edit it.
def _autograd_lab_setup(lab, otter_version, packed):
    import base64, importlib, importlib.util, io, os, subprocess, sys, tempfile, zipfile
    if importlib.util.find_spec("otter") is None:
        print(f"Installing otter-grader {{otter_version}}, which runs the checks (only the first time) ...")
        pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"otter-grader=={{otter_version}}"])
        importlib.invalidate_caches()
        if pip.returncode != 0 or importlib.util.find_spec("otter") is None:
            raise RuntimeError(f"otter-grader could not be installed. Install it with: pip install "
                               f"otter-grader=={{otter_version}} (in this notebook's environment), then run this cell again.")
    import otter
    if getattr(otter.Notebook, "_grading_mode", False) and importlib.util.find_spec("autograd_checks"):
        return "tests"   # otter is grading this notebook with the autograder's own copy of the checks
    try:
        folder = os.path.join(os.getcwd(), ".autograd_lab", lab)
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, ".writable")
        open(probe, "w").close()
        os.remove(probe)
    except OSError:   # a read-only folder: a private temporary one instead
        folder = tempfile.mkdtemp(prefix="autograd_lab-")
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(packed))) as archive:
        archive.extractall(folder)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return os.path.join(folder, "tests")


_autograd_lab_tests = _autograd_lab_setup({lab!r}, {otter_version!r}, {packed!r})
del _autograd_lab_setup
'''


def find_init_cell(nb: nbformat.NotebookNode, where: str) -> int:
    """The index of the one code cell that creates `otter.Notebook`."""
    found = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code" and _notebook_call(cell.source)]
    if len(found) != 1:
        raise BuildError(f"{where}: expected exactly one code cell that creates the checker "
                         f"(grader = otter.Notebook(tests_dir=\"tests\")), found {len(found)}; "
                         f"put one such cell before the first question")
    return found[0]


def _notebook_call(source: str) -> ast.Call | None:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name == "Notebook":
                return node
    return None


def _with_unpacked_tests(source: str) -> str:
    """The master's cell, its `otter.Notebook(...)` told where the unpacked tests are."""
    call = _notebook_call(source)
    lines = source.encode().splitlines(keepends=True)   # ast's column offsets count UTF-8 bytes
    start = sum(len(line) for line in lines[:call.lineno - 1]) + call.col_offset
    end = sum(len(line) for line in lines[:call.end_lineno - 1]) + call.end_col_offset
    call.keywords = [k for k in call.keywords if k.arg != "tests_dir"]
    call.keywords.append(ast.keyword(arg="tests_dir", value=ast.Name(id="_autograd_lab_tests", ctx=ast.Load())))
    data = source.encode()
    return (data[:start] + ast.unparse(call).encode() + data[end:]).decode() + "\ndel _autograd_lab_tests"


def pack(files: dict[str, bytes]) -> str:
    """The files as base64 text of a zip with fixed dates, so a rebuild is byte-identical."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, files[name])
    return base64.b64encode(buffer.getvalue()).decode("ascii")


MAX_PACKED_BYTES = 2 * 2**20   # a notebook much larger than this is slow to open and to upload


def student_files(student_dir: Path) -> dict[str, bytes]:
    """What the notebook carries: every file otter assign wrote beside the student notebook."""
    files = {path.relative_to(student_dir).as_posix(): path.read_bytes()
             for path in sorted(student_dir.rglob("*")) if path.is_file() and path.suffix != ".ipynb"}
    size = sum(len(data) for data in files.values())
    if size > MAX_PACKED_BYTES:
        raise BuildError(f"the student's support files ({', '.join(files)}) hold {size >> 10} KB, more than the "
                         f"{MAX_PACKED_BYTES >> 20} MB the notebook can carry in its first cell; load large data "
                         f"from a URL in a cell of the notebook instead")
    return files


def setup_cell_source(lab: str, otter_version: str, packed: str, init_source: str) -> str:
    return (_UNPACKER.format(title=TITLE, lab=lab, otter_version=otter_version, packed=packed)
            + "\n" + _with_unpacked_tests(init_source))


def embed(nb_path: Path, lab: str, files: dict[str, bytes]) -> tuple[str, str]:
    """Replace the notebook's otter.Notebook cell by the self-contained set-up cell; returns
    (the set-up cell's source, the cell it replaced)."""
    import otter

    nb = nbformat.read(nb_path, as_version=4)
    index = find_init_cell(nb, nb_path.name)
    cell = nb.cells[index]
    original = cell.source
    cell.source = setup_cell_source(lab, otter.__version__, pack(files), original)
    cell.metadata["jupyter"] = {**cell.metadata.get("jupyter", {}), "source_hidden": True}
    cell.metadata["cellView"] = "form"   # Colab: show the #@title, hide the code
    nbformat.write(nb, nb_path)
    return cell.source, original
