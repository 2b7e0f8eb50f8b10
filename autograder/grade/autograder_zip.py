"""The autograder zip as the grader sees it: questions, test files, points, the checks module.

The zip is extracted into a private folder of the supervisor that no sandbox can see. Only
the checks module (public: students have it too) is copied to a folder the workers mount.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from .allowlist import DEFAULT, Allowlist

CHECKS_MODULE = "autograd_checks.py"
ALLOW_FILE = "allow.json"      # the assignment's extensions of the screen's allowlist
MAX_ZIP_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Question:
    name: str
    test_path: Path        # tests/qN.py inside the private extraction
    names: tuple[str, ...]  # the student names its tests look at
    points: float
    template: Any = field(default=None, compare=False, repr=False)  # otter's TestFile, loaded once

    def test_file(self):
        """A fresh otter TestFile for one submission (a shallow copy: the test code is shared)."""
        fresh = copy.copy(self.template)
        fresh.test_case_results = []
        return fresh


@dataclass
class Autograder:
    zip_path: Path
    digest: str
    private_dir: Path      # extracted zip: hidden tests live here
    public_dir: Path       # just the checks module, for the workers
    questions: list[Question]
    allowlist: Allowlist = DEFAULT   # what the source screen allows (defaults + the lab's allow:)
    # fingerprints of the lab's own code cells (files/autograd_lab.json): names they set are shared
    # by every question; None (an older zip): the stale-state rule is off, as in the kernel
    provided_cells: frozenset[str] | None = None
    # the student notebook's self-contained first cell (by fingerprint) -> the master's cell that
    # runs in its place: the secure grader never unpacks or installs anything
    setup_cells: dict[str, str] = field(default_factory=dict)
    setup_sources: dict[str, str] = field(default_factory=dict)   # the same, by digest of the exact text

    def question(self, name: str) -> Question | None:
        return next((q for q in self.questions if q.name == name), None)

    @property
    def max_points(self) -> float:
        return sum(q.points for q in self.questions)

    def cleanup(self) -> None:
        shutil.rmtree(self.private_dir, ignore_errors=True)
        shutil.rmtree(self.public_dir, ignore_errors=True)


def _names_used(source: str) -> tuple[str, ...]:
    """Identifier-like string constants in a test file: the names its checks look up."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            head = node.value.split(".", 1)[0]   # "layer.weight" is about `layer`
            if head.isidentifier():
                names.add(head)
        elif isinstance(node, ast.FunctionDef) and node.name.startswith("test"):
            names.update(a.arg for a in node.args.args)   # otter injects parameters by name
    return tuple(sorted(names - {"env"}))


def source_digest(source: str) -> str:
    """Names the exact text of a cell: the grader recognises an unedited set-up cell by it in
    microseconds, where its fingerprint (which parses the cell) takes milliseconds."""
    return hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()


def load_autograder(zip_path: Path) -> Autograder:
    from otter.nbmeta_config import NBMetadataConfig
    from otter.test_files import create_test_file

    zip_path = Path(zip_path)
    if not zip_path.is_file():
        raise UserError(f"autograder zip not found: {zip_path} (build it with `autograder build LAB`)")
    if zip_path.stat().st_size > MAX_ZIP_BYTES:
        raise UserError(f"{zip_path} is larger than {MAX_ZIP_BYTES >> 20} MB; is it really an autograder zip?")
    data = zip_path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:16]
    private = Path(tempfile.mkdtemp(prefix="autograder-private-"))
    public = Path(tempfile.mkdtemp(prefix="autograder-public-"))
    try:
        with zipfile.ZipFile(zip_path) as zf:
            for info in zf.infolist():
                parts = Path(info.filename).parts
                if info.filename.startswith("/") or ".." in parts:
                    raise UserError(f"{zip_path} contains an unsafe path: {info.filename}")
            zf.extractall(private)
    except zipfile.BadZipFile:
        raise UserError(f"{zip_path} is not a zip file") from None
    checks = private / "files" / CHECKS_MODULE
    tests_dir = private / "tests"
    if not tests_dir.is_dir():
        raise UserError(f"{zip_path} has no tests/ folder: is it an otter autograder zip?")
    if not checks.is_file():
        raise UserError(f"{zip_path} has no files/{CHECKS_MODULE}: rebuild it with `autograder build LAB`")
    shutil.copy(checks, public / CHECKS_MODULE)
    public.chmod(0o755)
    (public / CHECKS_MODULE).chmod(0o644)

    questions = []
    for path in sorted(tests_dir.glob("*.py"), key=lambda p: _natural_key(p.stem)):
        test_file = create_test_file(str(path), NBMetadataConfig())
        questions.append(Question(
            name=test_file.name, test_path=path, names=_names_used(path.read_text()),
            points=float(test_file.possible), template=test_file,
        ))
    if not questions:
        raise UserError(f"{zip_path} has no test files under tests/")
    allowlist = DEFAULT
    if (private / ALLOW_FILE).is_file():
        import json
        try:
            allowlist = DEFAULT.extended(json.loads((private / ALLOW_FILE).read_text()))
        except (ValueError, TypeError, AttributeError) as exc:
            raise UserError(f"{zip_path}: {ALLOW_FILE} is not a valid allowlist extension ({exc})") from None
    from ..autograd_checks import lab_provided_cells
    return Autograder(zip_path=zip_path, digest=digest, private_dir=private, public_dir=public,
                      questions=questions, allowlist=allowlist,
                      provided_cells=lab_provided_cells(str(private / "files")),
                      setup_cells=_setup_cells(private / "files", "setup_cells"),
                      setup_sources=_setup_cells(private / "files", "setup_sources"))


def _setup_cells(files: Path, key: str) -> dict[str, str]:
    import json

    from ..autograd_checks import LAB_FILE
    try:
        cells = json.loads((files / LAB_FILE).read_text(encoding="utf-8")).get(key, {})
    except (OSError, ValueError, AttributeError):
        return {}
    if not isinstance(cells, dict):
        return {}
    return {k: v for k, v in cells.items() if isinstance(k, str) and isinstance(v, str)}


def _natural_key(name: str):
    import re
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]
