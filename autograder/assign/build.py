"""`autograder build LAB`: master notebook -> student notebook + otter autograder zip.

The pipeline: validate the master (YAML, questions, tests) -> stage it with the shipped checks
module and the project's otter_config.json -> run otter assign -> normalise what otter writes
(cell ids, zip timestamps) so that a rebuild without changes is byte-identical -> install the
student files under student_templates/LAB and the autograder under dist/LAB.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import nbformat

from ..errors import BuildError
from ..paths import project_root
from .master import MasterNotebook, read_master

from ..grade.autograder_zip import source_digest
from .setup_cell import ZIP_EPOCH, embed, student_files

CHECKS_MODULE = Path(__file__).resolve().parent.parent / "autograd_checks.py"


@dataclass(frozen=True)
class BuildResult:
    lab: str
    student_dir: Path        # the student notebook and its support files
    autograder_zip: Path     # otter-compatible, stable name
    solution_dir: Path       # otter's autograder folder with the solution notebook
    points: dict[str, float]  # question -> points possible


def find_master(lab: str, root: Path) -> Path:
    folder = root / "assignments" / lab
    if not folder.is_dir():
        known = sorted(p.name for p in (root / "assignments").glob("*") if p.is_dir())
        raise BuildError(f"no assignment '{lab}' under {root / 'assignments'} (found: {', '.join(known) or 'none'})")
    preferred = folder / f"{lab}.ipynb"
    if preferred.is_file():
        return preferred
    notebooks = sorted(folder.glob("*.ipynb"))
    if len(notebooks) != 1:
        raise BuildError(f"{folder} should hold exactly one master notebook, found {len(notebooks)}")
    return notebooks[0]


def load_otter_config(root: Path) -> dict:
    """The project's otter_config.json, checked against the keys otter actually knows."""
    from otter.run.run_autograder.autograder_config import AutograderConfig

    path = root / "otter_config.json"
    if not path.is_file():
        return {}
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BuildError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise BuildError(f"{path} should hold a JSON object of otter settings")
    known = set(AutograderConfig()._get_attrs_to_names())
    unknown = sorted(set(config) - known)
    if unknown:
        raise BuildError(f"{path}: unknown otter setting(s) {', '.join(unknown)} (otter would ignore them silently)")
    return config


def _referenced_files(config: dict) -> list[str]:
    """The support files the assignment config names (otter copies nothing else)."""
    names = []
    for key in ("files", "autograder_files", "student_files"):
        value = config.get(key) or []
        names += [value] if isinstance(value, str) else list(value)
    for key in ("requirements", "environment"):
        if isinstance(config.get(key), str):
            names.append(config[key])
    return names


def _stage(master: MasterNotebook, otter_config: dict, stage: Path) -> Path:
    """Copy the files the master uses (links resolved) and merge otter_config.json into its
    config; sample submissions and other folders beside the master stay out."""
    src = master.path.parent
    wanted = _referenced_files(master.config)
    if (src / "requirements.txt").is_file():
        wanted.append("requirements.txt")   # otter picks this one up by name
    for name in sorted(set(wanted)):
        item = src / name
        if name == CHECKS_MODULE.name:
            continue   # always the package's own copy, below
        if not item.exists():
            raise BuildError(f"{master.path.name}: the config names {name!r}, which is not in {src}")
        target = stage / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if item.is_dir():
            shutil.copytree(item, target, symlinks=False)
        else:
            shutil.copy(item, target)
    shutil.copy(CHECKS_MODULE, stage / CHECKS_MODULE.name)
    nb = master.with_generate_config(otter_config)
    staged = stage / master.path.name
    nbformat.write(nb, staged)
    return staged


def _run_otter_assign(staged: Path, result: Path, master: MasterNotebook) -> None:
    from otter.assign import main as otter_assign

    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            otter_assign(str(staged), str(result), no_pdfs=True)
    except RuntimeError as exc:
        text = str(exc)
        if "autograder tests failed" in text:
            raise BuildError(_explain_failed_solution(text, master)) from None
        raise BuildError(f"otter assign failed on {master.path}: {text.splitlines()[0] if text else exc!r}") from None
    except Exception as exc:  # otter's own validation errors carry the useful text
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BuildError(f"otter assign failed on {master.path}: {first}") from None


def _where(master: MasterNotebook, question: str) -> str:
    """"question q3 (cell 21)": where a build error points in the master notebook."""
    if question in master.question_names():
        return f"question {question} (cell {master.question(question).cell_index})"
    return f"question {question}"


def _explain_failed_solution(text: str, master: MasterNotebook) -> str:
    """otter's summary lists every question; name those with a failed case and the first reason."""
    blocks = re.split(r"^\s*(\S+) results:", text, flags=re.M)
    parts = []
    for name, block in zip(blocks[1::2], blocks[2::2]):
        if "❌" not in block and "failed" not in block.lower():
            continue
        where = _where(master, name)
        reason = next((ln.strip() for ln in block.splitlines()
                       if ln.strip().startswith(("CheckFailed", "AssertionError")) or "Error:" in ln), "")
        parts.append(where + (f": {reason}" if reason else ""))
    if not parts:
        return f"the solutions in {master.path} fail their own tests"
    return f"the solution fails its own tests in {'; '.join(parts)}"


def stable_cell_ids(nb: nbformat.NotebookNode) -> None:
    """Cell ids from their positions (nbformat makes random ones), so a rewrite is byte-identical."""
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{index:03d}"


def _normalise_notebook(path: Path) -> None:
    """Give otter's freshly added cells stable ids so a rebuild is byte-identical."""
    nb = nbformat.read(path, as_version=4)
    stable_cell_ids(nb)
    nbformat.write(nb, path)


def _write_stable_zip(source: Path, target: Path, extra: dict[str, bytes] | None = None) -> None:
    """Re-pack otter's timestamped zip with sorted entries and fixed dates (plus our files)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".zip.tmp")
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        members = {info.filename: (info.external_attr, src.read(info)) for info in src.infolist()}
        members.update({name: (0o644 << 16, data) for name, data in (extra or {}).items()})
        for name in sorted(members):
            attr, data = members[name]
            fixed = zipfile.ZipInfo(name, ZIP_EPOCH)
            fixed.external_attr = attr
            fixed.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(fixed, data)
    tmp.replace(target)


def _allowlist_extension(master: MasterNotebook) -> dict[str, bytes]:
    """The config's `allow:` block, checked, as allow.json for the grader's source screen."""
    from ..grade.allowlist import DEFAULT
    from ..grade.autograder_zip import ALLOW_FILE

    extra = master.config.get("allow")
    if extra is None:
        return {}
    if not isinstance(extra, dict):
        raise BuildError(f"{master.path.name}: `allow:` should map modules/members/attributes/... to lists")
    try:
        DEFAULT.extended(extra)
    except (ValueError, TypeError, AttributeError) as exc:
        raise BuildError(f"{master.path.name}: `allow:` {exc}") from None
    return {ALLOW_FILE: (json.dumps(extra, indent=1, sort_keys=True) + "\n").encode()}


ANSWER_TAGS = frozenset({"otter_answer_cell", "otter_assign_solution_cell"})
STALE_HINT = "was not set in this question's cells"   # the start of autograd_checks.Stale's message


def _lab_cells(student_notebook: Path) -> dict:
    """autograd_lab.json: fingerprints of the student notebook's code cells that are the lab's own
    (not answer cells), so that both graders judge each question on what its own cells set."""
    from ..autograd_checks import cell_fingerprint

    nb = nbformat.read(student_notebook, as_version=4)
    provided = sorted({cell_fingerprint(cell.source) for cell in nb.cells if cell.cell_type == "code"
                       and not ANSWER_TAGS & set(cell.get("metadata", {}).get("tags", []) or [])})
    return {"provided_cells": provided}


def _json_file(data: dict) -> bytes:
    return (json.dumps(data, indent=1) + "\n").encode()


# What the secure grader's judge can give a test, for the gate's message.
SUPPORTED = ("tests get the question's names as real objects rebuilt from what the run observed: tensors "
             "(values, dtype, requires_grad, is_leaf, grad_fn, .grad), Python numbers, strings, lists, "
             "tuples and dicts of these, NumPy arrays and torch.nn modules from torch; a test may call the "
             "student's functions, modules and autograd Functions bound to a name of the notebook, by "
             "position, with tensors, numbers, strings, None, lists and tuples (the call runs in the "
             "sandbox; backward() through what it returns gives first-order gradients of its inputs)")


def secure_gate(autograder_zip: Path, solution: Path, master: MasterNotebook) -> None:
    """otter assign has checked that otter run gives the solution full marks; the secure
    grader must agree on every test, or students would get a different verdict from it."""
    from ..grade.batch import grade_solution
    from ..results import GRADED

    result = grade_solution(autograder_zip, solution)
    problems = []
    if result.findings:
        problems += [f"the source screen flags the solution ({f.describe()}): students writing the same "
                     f"would be held for review; add what it needs to the config's `allow:`"
                     for f in result.findings[:5]]
    if result.status != GRADED:
        problems.append(f"the solution could not be graded: {result.status_text}")
    for q in result.questions:
        where = _where(master, q.name)
        if not q.graded_normally:
            problems.append(f"{where}: {q.status_text}")
            continue
        for t in q.tests:
            if t.passed:
                continue
            if not t.error and STALE_HINT in t.hint:   # both graders apply this rule
                problems.append(f"{where}, {t.name}: {t.hint.split('.')[0]}: a question's tests may use only "
                                f"names its own cells set, or names set by the lab's own cells (set-up or data "
                                f"cells without SOLUTION markers); test what this question computes")
                continue
            problems.append(f"{where}, {t.name}: " + (t.error or f"fails under the secure grader: {t.hint}"))
    if problems:
        raise BuildError(f"{master.path.name}: the secure grader does not give the solution full marks, "
                         f"though otter run does: " + "; ".join(problems) + f". In the secure grader, {SUPPORTED}.")


def _replace_tree(source: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)


def build(lab: str, *, root: Path | None = None, student_root: Path | None = None,
          dist_root: Path | None = None) -> BuildResult:
    root = (root or project_root()).resolve()
    student_root = student_root or root / "student_templates"
    dist_root = dist_root or root / "dist"
    master = read_master(find_master(lab, root))
    otter_config = load_otter_config(root)

    with tempfile.TemporaryDirectory(prefix="autograder-build-") as tmp:
        stage, result = Path(tmp) / "stage", Path(tmp) / "result"
        stage.mkdir()
        staged = _stage(master, otter_config, stage)
        _run_otter_assign(staged, result, master)

        student, autograder = result / "student", result / "autograder"
        for nb_path in [*student.glob("*.ipynb"), *autograder.glob("*.ipynb")]:
            _normalise_notebook(nb_path)
        zips = sorted(autograder.glob("*-autograder_*.zip"))
        if len(zips) != 1:
            raise BuildError(f"otter assign wrote {len(zips)} autograder zips, expected 1")
        lab_dist = dist_root / lab
        staged_zip = Path(tmp) / "autograder.zip"
        students = sorted(student.glob("*.ipynb"))
        if len(students) != 1:
            raise BuildError(f"otter assign wrote {len(students)} student notebooks, expected 1")
        solutions = sorted(autograder.glob("*.ipynb"))
        if len(solutions) != 1:
            raise BuildError(f"otter assign wrote {len(solutions)} solution notebooks, expected 1")
        from ..autograd_checks import LAB_FILE, cell_fingerprint
        lab_cells = _lab_cells(students[0])   # before embedding: the master's own first cell is the lab's
        (student / LAB_FILE).write_bytes(_json_file(lab_cells))
        # the notebooks carry the student folder's files in their first cell; the secure grader
        # runs the master's original cell in its place
        files = student_files(student)
        setup_cells, setup_sources = {}, {}
        for nb_path in (students[0], solutions[0]):
            setup, original = embed(nb_path, lab, files)
            setup_cells[cell_fingerprint(setup)] = original
            setup_sources[source_digest(setup)] = original   # the unedited cell, without parsing it
        zip_lab_cells = _json_file({**lab_cells, "setup_cells": setup_cells, "setup_sources": setup_sources})
        _write_stable_zip(zips[0], staged_zip, {**_allowlist_extension(master), f"files/{LAB_FILE}": zip_lab_cells})
        zips[0].unlink()
        secure_gate(staged_zip, solutions[0], master)
        lab_dist.mkdir(parents=True, exist_ok=True)
        shutil.copy(staged_zip, lab_dist / "autograder.zip")
        _replace_tree(autograder, lab_dist / "autograder")
        _replace_tree(student, student_root / lab)

    return BuildResult(
        lab=lab,
        student_dir=student_root / lab,
        autograder_zip=lab_dist / "autograder.zip",
        solution_dir=lab_dist / "autograder",
        points={q.name: q.points for q in master.questions},
    )
