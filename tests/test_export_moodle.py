"""Moodle offline grading worksheet: fill Grade and Feedback comments, touch nothing else."""

import csv
import hashlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from autograder.errors import UserError
from autograder.export import export_moodle, feedback_summary
from autograder.export.cli import export_group
from autograder.lms_names import parse_canvas_name, parse_moodle_folder
from autograder.results import QuestionResult, StudentRef, SubmissionResult
from autograder.results import TestCaseResult as CaseResult   # not collected as a test class
from autograder.results import save_batch

FIXTURES = Path(__file__).parent / "fixtures" / "lms"
EXPECTED = FIXTURES / "expected"
WORKSHEET = FIXTURES / "moodle_worksheet.csv"

# What must never reach a student: hidden tests' names and their messages (which may hold
# reference values).
SECRET_NAME = "test_q3_hidden_matches_reference"
SECRET_HINT = "expected tensor([0.2500, 0.5000]), got tensor([0.5000, 1.0000])"
VISIBLE_HINT = "grad is None: read .grad of the leaf tensor x, not of y (or call y.retain_grad())"
SIGN_HINT = "sign flipped: x.grad < 0 where the derivative is positive"


def case(name, points, passed, hidden=False, hint=""):
    return CaseResult(name=name, hidden=hidden, points=points if passed else 0.0,
                      max_points=points, passed=passed, hint="" if passed else hint)


def lab(failing=(), timed_out=False):
    """q1 and q2 (a visible and a hidden test, 1 point each), q3 (visible 2, two hidden 1)."""
    def make(q, tests):
        cases = tuple(case(n, p, n not in failing, hidden=h, hint=hint) for n, p, h, hint in tests)
        return QuestionResult(q, sum(t.points for t in cases), sum(t.max_points for t in cases),
                              tests=cases)
    q1 = make("q1", [("test_q1_value", 1, False, SIGN_HINT),
                     ("test_q1_hidden_grad", 1, True, "hidden q1: " + SECRET_HINT)])
    q2 = make("q2", [("test_q2_grad", 1, False, VISIBLE_HINT),
                     ("test_q2_hidden_second_point", 1, True, SECRET_HINT)])
    q3 = (QuestionResult("q3", 0.0, 4.0, status="timed out") if timed_out else
          make("q3", [("test_q3_value", 2, False, "q3 value differs"),
                      (SECRET_NAME, 1, True, SECRET_HINT),
                      ("test_q3_hidden_edge_case", 1, True, "x = torch.tensor([-1.0]) " + SECRET_HINT)]))
    return (q1, q2, q3)


def result(path, questions, submitted_at=1709330000.0, student=None):
    folder = path.split("/")[0]
    return SubmissionResult(
        file=path.rsplit("/", 1)[-1], source=f"submissions/{path}",
        digest=hashlib.sha256(path.encode()).hexdigest()[:16], status="graded",
        questions=questions, submitted_at=submitted_at,
        student=student or parse_moodle_folder(folder) or parse_canvas_name(folder) or StudentRef())


def batch():
    f = "differentiation.ipynb"
    return [
        # a Canvas download mixed into a Moodle batch
        result(f"alvarezjose_101001_5550001_{f}", lab()),
        result(f"José Álvarez Pérez_880101_assignsubmission_file_/{f}", lab()),
        result(f"Mary-Jane O'Neil_880102_assignsubmission_file_/{f}",
               lab(failing=("test_q2_grad", SECRET_NAME, "test_q3_hidden_edge_case"))),
        result(f"Jan_de Vries_880104_assignsubmission_file_/{f}",
               lab(failing=("test_q1_value",), timed_out=True)),
        result(f"Lena Schmidt_880105_assignsubmission_file_/{f}", lab(failing=("test_q3_value",))),
        result(f"Ahmed Al-Farsi_880106_assignsubmission_file_/{f}",
               lab(failing=("test_q3_hidden_edge_case",))),
        # not (or no longer) on the worksheet
        result(f"Tom Baker_880199_assignsubmission_file_/{f}", lab()),
    ]


@pytest.fixture
def out(tmp_path):
    folder = tmp_path / "OUT"
    save_batch(folder, batch())
    return folder


def read_rows(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        return list(csv.reader(f))


def test_worksheet_matches_hand_checked_file(out, tmp_path):
    dest = tmp_path / "moodle_grades.csv"
    report = export_moodle(out, WORKSHEET, dest)
    got, want = read_rows(dest), read_rows(EXPECTED / "moodle_grades.csv")
    assert len(got) == len(want)
    for line, (g, w) in enumerate(zip(got, want), start=1):
        assert g == w, f"line {line}: {g} != {w}"
    assert report.matched == 4
    assert report.summary() == "moodle: 4 grades written, 4 unmatched"
    unmatched = [row[:3] for row in read_rows(tmp_path / "unmatched.csv")]
    assert unmatched == read_rows(EXPECTED / "moodle_unmatched.csv")
    assert report.paths == [dest, tmp_path / "unmatched.csv"]


def test_untouched_rows_are_byte_for_byte_the_same_fields(out, tmp_path):
    dest = tmp_path / "m.csv"
    export_moodle(out, WORKSHEET, dest)
    before, after = read_rows(WORKSHEET), read_rows(dest)
    assert before[0] == after[0]
    changed = {4, 9}                       # Grade, Feedback comments
    for b, a in zip(before[1:], after[1:]):
        assert [c for i, c in enumerate(b) if i not in changed] == \
               [c for i, c in enumerate(a) if i not in changed]
    # every row we graded has both a grade and feedback
    for row in after[1:]:
        assert bool(row[4]) == bool(row[9]) or row[0] == "Participant 880105"


def test_feedback_never_leaks_hidden_tests(out, tmp_path):
    dest = tmp_path / "m.csv"
    export_moodle(out, WORKSHEET, dest)
    text = dest.read_text(encoding="utf-8")
    for secret in (SECRET_NAME, "test_q3_hidden_edge_case", "test_q1_hidden_grad",
                   "test_q2_hidden_second_point", "hidden q1", "0.2500", "torch.tensor", "tensor(["):
        assert secret not in text
    # visible hints do reach the student, escaped for Moodle's HTML feedback
    assert "x.grad &lt; 0" in text and VISIBLE_HINT in text


def test_feedback_summary_rules():
    r = result("A B_1_assignsubmission_file_/x.ipynb",
               lab(failing=("test_q1_value", "test_q1_hidden_grad", SECRET_NAME)))
    assert feedback_summary(r) == ("q1 0/2: sign flipped: x.grad &lt; 0 where the derivative is "
                                   "positive (1 of 1 hidden tests failed); q2 2/2; "
                                   "q3 3/4 (1 of 2 hidden tests failed)")
    # a failing visible test without a message, a long message, no questions at all
    q = QuestionResult("q1", 0.5, 1.5, tests=(case("t", 1, False), case("u", 0.5, True)))
    assert feedback_summary(result("A B_1_assignsubmission_file_/x", (q,))) == "q1 0.5/1.5: a visible test failed"
    long_hint = "word " * 100
    q = QuestionResult("q1", 0, 1, tests=(case("t", 1, False, hint=long_hint),))
    text = feedback_summary(result("A B_1_assignsubmission_file_/x", (q,)))
    assert text.endswith("...") and len(text) < 200 and "\n" not in text
    assert feedback_summary(result("A B_1_assignsubmission_file_/x", ())) == "no questions were graded"


def test_points_scaling(out, tmp_path):
    dest = tmp_path / "m.csv"
    export_moodle(out, WORKSHEET, dest, points=50)
    grades = {row[0]: row[4] for row in read_rows(dest)[1:]}
    assert grades == {"Participant 880101": "50", "Participant 880102": "31.25",
                      "Participant 880103": "", "Participant 880104": "18.75",
                      "Participant 880105": "70.00", "Participant 880106": "43.75"}


def test_points_above_maximum_grade_is_refused(out, tmp_path):
    with pytest.raises(UserError, match="above the Maximum grade 100"):
        export_moodle(out, WORKSHEET, tmp_path / "m.csv", points=150)
    assert not (tmp_path / "m.csv").exists()


def test_scale_grading_needs_points(out, tmp_path):
    sheet = tmp_path / "scale.csv"
    sheet.write_text(WORKSHEET.read_text(encoding="utf-8").replace(",100.00,", ",,"), encoding="utf-8")
    with pytest.raises(UserError, match="no Maximum grade.*give --points"):
        export_moodle(out, sheet, tmp_path / "m.csv")
    export_moodle(out, sheet, tmp_path / "m.csv", points=10)
    assert read_rows(tmp_path / "m.csv")[1][4] == "10"


def test_decimal_comma_worksheet(out, tmp_path):
    sheet = tmp_path / "comma.csv"
    sheet.write_text(WORKSHEET.read_text(encoding="utf-8").replace(",100.00,", ',"100,00",')
                     .replace("70.00", '"70,00"').replace("55.00", '"55,00"'), encoding="utf-8")
    export_moodle(out, sheet, tmp_path / "m.csv")
    assert read_rows(tmp_path / "m.csv")[2][4] == "62,5"


def test_not_a_worksheet(out, tmp_path):
    sheet = tmp_path / "fr.csv"
    sheet.write_text("Identifiant,Nom complet,Note\nParticipant 1,A,\n", encoding="utf-8")
    with pytest.raises(UserError, match="not a Moodle offline grading worksheet"):
        export_moodle(out, sheet, tmp_path / "m.csv")


def test_keeps_bom_and_crlf(out, tmp_path):
    sheet = tmp_path / "bom.csv"
    sheet.write_bytes(b"\xef\xbb\xbf" + WORKSHEET.read_bytes().replace(b"\n", b"\r\n"))
    export_moodle(out, sheet, tmp_path / "m.csv")
    raw = (tmp_path / "m.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfIdentifier,") and raw.count(b"\r\n") == 7


def test_cli_moodle(out, tmp_path):
    res = CliRunner().invoke(export_group, ["moodle", str(out), "--worksheet", str(WORKSHEET)])
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines() == ["moodle: 4 grades written, 4 unmatched",
                                       f"  wrote {out / 'moodle_grades.csv'}",
                                       f"  wrote {out / 'unmatched.csv'}"]
    assert sum(line.startswith("unmatched ") for line in res.stderr.splitlines()) == 4
