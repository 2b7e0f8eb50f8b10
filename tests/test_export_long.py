"""The long CSV: one row per test case, plus rows for questions that were not graded normally."""

import csv
from pathlib import Path

from click.testing import CliRunner

from autograder.export import export_long
from autograder.export.cli import export_group
from autograder.lms_names import parse_canvas_name, parse_moodle_folder
from autograder.results import QuestionResult, StudentRef, SubmissionResult
from autograder.results import TestCaseResult as CaseResult   # not collected as a test class
from autograder.results import save_batch


def case(name, points, max_points, passed, hidden=False, hint=""):
    return CaseResult(name=name, hidden=hidden, points=points, max_points=max_points,
                      passed=passed, hint=hint)


def results():
    canvas = "smithj_LATE_12345_678901_differentiation-2.ipynb"
    older = "smithj_12345_678800_differentiation.ipynb"
    moodle = "José Álvarez Pérez_880101_assignsubmission_file_"
    return [
        SubmissionResult(
            file=canvas, source=f"sub/{canvas}", digest="d1", status="graded",
            student=parse_canvas_name(canvas),
            questions=(
                QuestionResult("q1", 1.5, 2, tests=(
                    case("q1_value", 1, 1, True),
                    case("q1_hidden", 0.5, 1, False, hidden=True, hint="x.grad, is 2x the reference"))),
                QuestionResult("q2", 0, 3, status="timed out"),
                QuestionResult("q3", 1, 1),                                  # no test cases
            )),
        SubmissionResult(file=older, source=f"sub/{older}", digest="d0", status="graded",
                         student=parse_canvas_name(older), counts=False, note="superseded",
                         questions=(QuestionResult("q1", 2, 2, tests=(case("q1_value", 2, 2, True),)),)),
        SubmissionResult(file="lab.ipynb", source=f"sub/{moodle}/lab.ipynb", digest="d2",
                         status="could not read the notebook", student=parse_moodle_folder(moodle)),
        SubmissionResult(file="mine.ipynb", source="mine.ipynb", digest="d3", status="graded",
                         student=StudentRef(),
                         questions=(QuestionResult("q1", 0, 2, tests=(case("q1_value", 0, 2, False),)),)),
    ]


def test_long_rows(tmp_path):
    out = tmp_path / "OUT"
    save_batch(out, results())
    dest = tmp_path / "long.csv"
    report = export_long(out, dest)
    with open(dest, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [
        ["student", "file", "question", "test", "score", "max", "status", "hint", "counts"],
        ["smithj", "sub/smithj_LATE_12345_678901_differentiation-2.ipynb", "q1", "q1_value",
         "1", "1", "passed", "", "yes"],
        ["smithj", "sub/smithj_LATE_12345_678901_differentiation-2.ipynb", "q1", "q1_hidden",
         "0.5", "1", "failed", "x.grad, is 2x the reference", "yes"],
        ["smithj", "sub/smithj_LATE_12345_678901_differentiation-2.ipynb", "q2", "",
         "0", "3", "timed out", "", "yes"],
        ["smithj", "sub/smithj_LATE_12345_678901_differentiation-2.ipynb", "q3", "",
         "1", "1", "graded", "", "yes"],
        ["smithj", "sub/smithj_12345_678800_differentiation.ipynb", "q1", "q1_value",
         "2", "2", "passed", "", "no"],
        ["José Álvarez Pérez", "sub/José Álvarez Pérez_880101_assignsubmission_file_/lab.ipynb",
         "", "", "0", "0", "could not read the notebook", "", "yes"],
        ["mine", "mine.ipynb", "q1", "q1_value", "0", "2", "failed", "", "yes"],
    ]
    assert report.matched == 7 and report.paths == [dest]
    assert report.summary() == "long: 7 rows written"


def test_cli_long(tmp_path):
    out = tmp_path / "OUT"
    save_batch(out, results())
    res = CliRunner().invoke(export_group, ["long", str(out)])
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines() == ["long: 7 rows written", f"  wrote {out / 'grades_long.csv'}"]
    assert Path(out / "grades_long.csv").is_file()
