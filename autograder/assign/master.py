"""Reading and validating an otter-assign (format v1) master notebook.

otter assign accepts many mistakes silently or fails far from their cause; these checks
stop the build first, naming the question and the cell.
"""

from __future__ import annotations

import ast
import copy
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import yaml

from ..errors import BuildError

CONFIG_MARK = "# ASSIGNMENT CONFIG"


@dataclass(frozen=True)
class QuestionInfo:
    name: str
    cell_index: int          # the `# BEGIN QUESTION` cell
    points: float
    tests: int
    hidden_tests: int


@dataclass
class MasterNotebook:
    path: Path
    notebook: nbformat.NotebookNode
    config_index: int
    config: dict
    questions: list[QuestionInfo] = field(default_factory=list)

    def question_names(self) -> list[str]:
        return [q.name for q in self.questions]

    def question(self, name: str) -> QuestionInfo:
        return next(q for q in self.questions if q.name == name)

    def with_generate_config(self, otter_config: dict) -> nbformat.NotebookNode:
        """A copy whose ASSIGNMENT CONFIG carries otter_config.json under `generate`
        (settings written in the master itself win)."""
        nb = copy.deepcopy(self.notebook)
        config = {k: v for k, v in self.config.items() if k != "allow"}   # ours, not otter's
        own = config.get("generate") if isinstance(config.get("generate"), dict) else {}
        config["generate"] = {**otter_config, **own}
        nb.cells[self.config_index].source = CONFIG_MARK + "\n" + yaml.safe_dump(config, sort_keys=False)
        return nb


def _yaml(cell_source: str, mark: str, where: str):
    body = cell_source.split("\n", 1)[1] if "\n" in cell_source else ""
    try:
        data = yaml.safe_load(body) or {}
    except yaml.YAMLError as exc:
        mark_info = getattr(exc, "problem_mark", None)
        line = f" at line {mark_info.line + 2}" if mark_info is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise BuildError(f"{where}: the {mark} YAML is invalid{line}: {problem}") from None
    if not isinstance(data, dict):
        raise BuildError(f"{where}: the {mark} block should be YAML 'key: value' lines")
    return data


def _points(value, tests: int, where: str) -> float:
    if value is None:
        return 1.0
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, list):
        if len(value) != tests:
            raise BuildError(f"{where}: 'points' lists {len(value)} values but the question has {tests} tests")
        return float(sum(v or 0 for v in value))
    if isinstance(value, dict) and "each" in value:
        return float(value["each"]) * tests
    raise BuildError(f"{where}: 'points' should be a number or a list with one number per test")


def read_master(path: Path) -> MasterNotebook:
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:
        raise BuildError(f"{path} is not a readable notebook: {exc}") from None

    config_index, config = None, None
    questions: list[QuestionInfo] = []
    current = None   # (name, cell index, config) of the open question
    in_tests, tests, hidden = False, 0, 0

    for index, cell in enumerate(nb.cells):
        source = cell.source.strip()
        first = source.split("\n", 1)[0].strip().upper()
        where = f"{path.name}, cell {index}"
        if cell.cell_type == "raw" and first == CONFIG_MARK:
            config_index, config = index, _yaml(source, "ASSIGNMENT CONFIG", where)
        elif cell.cell_type == "raw" and first == "# BEGIN QUESTION":
            if current is not None:
                raise BuildError(f"{where}: question starts before question {current[0]} ends (# END QUESTION missing)")
            qconfig = _yaml(source, "BEGIN QUESTION", where)
            name = qconfig.get("name")
            if not name:
                raise BuildError(f"{where}: the question has no 'name'")
            if any(q.name == name for q in questions):
                raise BuildError(f"{where}: question name {name} is used twice")
            current, tests, hidden = (str(name), index, qconfig), 0, 0
        elif cell.cell_type == "raw" and first == "# BEGIN TESTS":
            in_tests = True
        elif cell.cell_type == "raw" and first == "# END TESTS":
            in_tests = False
        elif cell.cell_type == "raw" and first == "# END QUESTION":
            if current is None:
                raise BuildError(f"{where}: # END QUESTION without a # BEGIN QUESTION")
            name, start, qconfig = current
            qwhere = f"{path.name}: question {name} (cell {start})"
            if tests == 0 and not qconfig.get("manual"):
                raise BuildError(f"{qwhere} has no tests: add test cells between # BEGIN TESTS and # END TESTS")
            questions.append(QuestionInfo(name, start, _points(qconfig.get("points"), tests, qwhere), tests, hidden))
            current = None
        elif cell.cell_type == "code" and in_tests:
            if current is None:
                raise BuildError(f"{where}: test cell outside a question")
            try:
                ast.parse(source)
            except SyntaxError as exc:
                raise BuildError(f"{path.name}: question {current[0]}, test cell {index} has a syntax error "
                                 f"at line {exc.lineno}: {exc.msg}") from None
            tests += 1
            hidden += first.startswith("#") and "HIDDEN" in first

    if config is None:
        raise BuildError(f"{path}: no raw cell starting with '{CONFIG_MARK}'")
    tests_config = config.get("tests") if isinstance(config.get("tests"), dict) else {}
    if tests_config.get("ok_format", True) is not False:
        # otter's default (OK/doctest) format compares printed output; a `def test_...` cell in
        # it only defines a function that nothing calls, so every submission would pass
        raise BuildError(f"{path.name}: the config must say `tests: {{ok_format: false}}` (exception-style "
                         f"tests, one `def test_...` a cell); otter's default doctest format would define "
                         f"the test functions and never call them")
    if current is not None:
        raise BuildError(f"{path.name}: question {current[0]} (cell {current[1]}) has no # END QUESTION")
    if not questions:
        raise BuildError(f"{path}: no questions (raw cells starting with '# BEGIN QUESTION')")
    return MasterNotebook(path=path, notebook=nb, config_index=config_index, config=config, questions=questions)
