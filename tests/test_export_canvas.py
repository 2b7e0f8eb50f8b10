"""Canvas gradebook import: realistic export in, hand-checked import CSV out."""

import csv
import hashlib
from datetime import datetime, timezone
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from autograder.errors import UserError
from autograder.export import export_canvas, read_gradebook
from autograder.export.cli import export_group, parse_due
from autograder.lms_names import parse_canvas_name
from autograder.results import QuestionResult, StudentRef, SubmissionResult
from autograder.results import TestCaseResult as CaseResult   # not collected as a test class
from autograder.results import load_batch, save_batch

FIXTURES = Path(__file__).parent / "fixtures" / "lms"
EXPECTED = FIXTURES / "expected"
GRADEBOOK = FIXTURES / "canvas_gradebook.csv"
ASSIGNMENT = "Differentiation (48213)"
DUE = datetime(2024, 3, 1, 23, 59, tzinfo=timezone.utc)


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def case(name, max_points, passed, hidden=False, hint=""):
    return CaseResult(name=name, hidden=hidden, points=max_points if passed else 0.0,
                          max_points=max_points, passed=passed,
                          hint="" if passed else hint)


def questions(failing=()):
    """The lab: q1 (2 pts), q2 (2 pts), q3 (4 pts) = 8 raw points; `failing` names tests."""
    layout = {
        "q1": [("q1_value", 1, False), ("q1_hidden_grad", 1, True)],
        "q2": [("q2_shape", 1, False), ("q2_hidden_grad", 1, True)],
        "q3": [("q3_value", 2, False), ("q3_hidden_big", 1.5, True), ("q3_hidden_small", 0.5, True)],
    }
    out = []
    for q, tests in layout.items():
        cases = tuple(case(n, p, n not in failing, hidden=h, hint=f"{n} is wrong")
                      for n, p, h in tests)
        out.append(QuestionResult(name=q, points=sum(t.points for t in cases),
                                  max_points=sum(t.max_points for t in cases), tests=cases))
    return tuple(out)


def result(filename, submitted_at, failing=(), counts=True, note="", status="graded"):
    student = parse_canvas_name(filename) or StudentRef()
    return SubmissionResult(
        file=filename, source=f"submissions/{filename}",
        digest=hashlib.sha256(filename.encode()).hexdigest()[:16], status=status,
        questions=questions(failing) if status == "graded" else (), student=student,
        submitted_at=submitted_at, counts=counts, note=note)


def batch():
    newer_nguyen = "nguyenthiminhanh_101003_5550013_differentiation-1.ipynb"
    return [
        result("alvarezjose_101001_5550001_differentiation.ipynb", at("2024-03-01T20:00:00+00:00")),
        # 6.5/8, handed in 1 day 10 h late -> 2 started days
        result("chenwei_LATE_101002_5550002_differentiation.ipynb", at("2024-03-03T10:00:00+00:00"),
               failing=("q3_hidden_big",)),
        result("nguyenthiminhanh_101003_5550003_differentiation.ipynb", at("2024-02-28T09:00:00+00:00"),
               failing=("q1_value", "q2_shape", "q3_value"), counts=False,
               note=f"superseded by a newer file: {newer_nguyen}"),
        result(newer_nguyen, at("2024-03-01T08:00:00+00:00"), failing=("q1_hidden_grad",)),
        result("mullerludenscheidtanna_101006_5550006_differentiation.ipynb",
               at("2024-03-01T21:00:00+00:00"),
               status="could not read the notebook: it is not valid JSON"),
        # two counting files for one student (should not happen, but may): the newer counts
        result("patelravi_101008_5550008_differentiation.ipynb", at("2024-03-01T10:00:00+00:00"),
               failing=("q1_value", "q2_shape", "q3_value")),
        result("patelravi_101008_5550018_Differentiation_final_v2.ipynb", at("2024-03-01T22:00:00+00:00"),
               failing=("q3_value", "q3_hidden_small")),
        # a student who dropped the course after handing in
        result("kowalskipiotr_101050_5550050_differentiation.ipynb", at("2024-03-01T12:00:00+00:00")),
        # renamed by hand: no student in the name
        result("differentiation.ipynb", at("2024-03-01T12:00:00+00:00")),
    ]


@pytest.fixture
def out(tmp_path):
    folder = tmp_path / "OUT"
    save_batch(folder, batch())
    return folder


def read_rows(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        return list(csv.reader(f))


def assert_same_csv(produced: Path, expected: Path, columns: int | None = None):
    got, want = read_rows(produced), read_rows(expected)
    if columns is not None:
        got = [row[:columns] for row in got]
    assert len(got) == len(want), f"{produced.name}: {len(got)} rows, expected {len(want)}"
    for line, (g, w) in enumerate(zip(got, want), start=1):
        assert g == w, f"{produced.name} line {line}: {g} != {w}"


def test_batch_round_trips(out):
    loaded = load_batch(out)
    assert [r.file for r in loaded] == [r.file for r in batch()]
    chen = loaded[1]
    assert chen.student.late and chen.student.key == "101002" and chen.points == 6.5


def test_canvas_import_matches_hand_checked_file(out, tmp_path):
    dest = tmp_path / "exports" / "canvas_import.csv"
    report = export_canvas(out, GRADEBOOK, ASSIGNMENT, dest, points=10, late_penalty=10, due=DUE)

    assert_same_csv(dest, EXPECTED / "canvas_import.csv")
    raw = dest.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")                      # kept the export's BOM
    assert b"Integration ID" not in raw and b"Manual Posting" not in raw
    assert raw.splitlines()[1] == b"    Points Possible,,,,,10.00"

    assert_same_csv(dest.parent / "canvas_import_late.csv", EXPECTED / "canvas_import_late.csv")
    assert_same_csv(dest.parent / "unmatched.csv", EXPECTED / "canvas_unmatched.csv", columns=3)
    assert all(row[3] for row in read_rows(dest.parent / "unmatched.csv")[1:]), "every entry has a reason"

    assert report.matched == 4
    assert report.paths == [dest, dest.parent / "canvas_import_late.csv", dest.parent / "unmatched.csv"]
    assert report.warnings == []
    assert report.summary() == "canvas: 4 grades written, 8 unmatched, 1 late (1 penalised)"


def test_semicolon_export_with_muted_row_under_points_possible(out, tmp_path):
    """Another locale's export: semicolons, decimal commas, CRLF, the hidden row in column 1."""
    dest = tmp_path / "canvas_import.csv"
    gb = read_gradebook(FIXTURES / "canvas_gradebook_semicolon.csv", "48213")
    assert [s.id for s in gb.students] == ["101001", "101002", "101006", "101003", "101004",
                                           "101008", "101005", "101007", "101099"]
    assert gb.points_possible == 10.0 and gb.warnings == []
    export_canvas(out, FIXTURES / "canvas_gradebook_semicolon.csv", ASSIGNMENT, dest,
                  points=10, late_penalty=10, due=DUE)
    assert_same_csv(dest, EXPECTED / "canvas_import.csv")
    assert dest.read_bytes().startswith(b"Student,ID,")          # comma separated, no BOM
    assert b"\r\n" in dest.read_bytes()


def test_reads_gradebook_quirks():
    gb = read_gradebook(GRADEBOOK, "48213")
    assert gb.bom and gb.points_possible == 10.0
    assert gb.assignment_header == ASSIGNMENT
    assert "Intro Quiz (48100)" in gb.assignment_headers
    names = [s.student for s in gb.students]
    assert names[0] == "Álvarez, José" and names[-1] == "Student, Test"
    assert gb.students[-1].is_test_student
    by_id = gb.by_id()
    assert by_id["101003"].section == "Section 01 and Section 02"
    assert by_id["101005"].current == "8.00" and by_id["101007"].current == "EX"


def test_missing_zero(out, tmp_path):
    dest = tmp_path / "c.csv"
    export_canvas(out, GRADEBOOK, ASSIGNMENT, dest, points=10, missing_zero=True)
    cells = {row[1]: row[5] for row in read_rows(dest)[2:]}
    assert cells["101004"] == "0"          # no submission, nothing in Canvas -> 0
    assert cells["101005"] == "8"          # a grade Canvas already has is kept, not zeroed
    assert cells["101007"] == "EX"         # excused stays excused
    assert cells["101006"] == ""           # handed in but grading failed: never a silent 0
    assert cells["101099"] == ""           # the Student View account gets nothing
    reasons = {row[1]: row[3] for row in read_rows(tmp_path / "unmatched.csv")[1:] if row[0] == "no_submission"}
    assert "wrote 0" in reasons["101004"] and "kept the grade" in reasons["101005"]


def test_raw_points_without_scaling_and_no_penalty(out, tmp_path):
    dest = tmp_path / "c.csv"
    report = export_canvas(out, GRADEBOOK, ASSIGNMENT, dest)
    cells = {row[1]: row[5] for row in read_rows(dest)[2:]}
    assert cells["101001"] == "8" and cells["101002"] == "6.5" and cells["101008"] == "5.5"
    assert read_rows(dest)[1][5] == "10.00"       # Points Possible copied from the export
    assert any("--points 10" in w for w in report.warnings)
    assert not (tmp_path / "c_late.csv").exists()
    [late] = report.late
    assert late.key == "101002" and late.penalty_pct == 0 and late.final == late.original == 6.5


def test_points_scaling_rounds_half_up(tmp_path):
    # 2/3 of 10 -> 6.67; 0.1+0.2 style float noise never shows
    results = [result("alvarezjose_101001_5550001_differentiation.ipynb", 0.0)]
    r = results[0]
    q = QuestionResult("q1", points=2.0, max_points=3.0, tests=())
    results[0] = SubmissionResult(**{**r.__dict__, "questions": (q,)})
    dest = tmp_path / "c.csv"
    export_canvas(results, GRADEBOOK, ASSIGNMENT, dest, points=10)
    assert {row[1]: row[5] for row in read_rows(dest)[2:]}["101001"] == "6.67"
    export_canvas(results, GRADEBOOK, ASSIGNMENT, dest, points=20.5)
    assert {row[1]: row[5] for row in read_rows(dest)[2:]}["101001"] == "13.67"


@pytest.mark.parametrize("submitted, days, pct, final", [
    ("2024-03-01T23:59:01+00:00", 1, 10, 9.0),       # one second late: one started day
    ("2024-03-02T23:59:00+00:00", 1, 10, 9.0),       # exactly 24 h late: still one day
    ("2024-03-02T23:59:01+00:00", 2, 20, 8.0),
    ("2024-03-08T12:00:00+00:00", 7, 70, 3.0),
    ("2024-03-12T00:00:00+00:00", 11, 100, 0.0),     # capped at 100 %
    ("2024-03-01T23:00:00+00:00", 0, 0, 10.0),       # marked LATE but before --due: no penalty
])
def test_late_penalty_math(tmp_path, submitted, days, pct, final):
    results = [result("chenwei_LATE_101002_5550002_differentiation.ipynb", at(submitted))]
    report = export_canvas(results, GRADEBOOK, ASSIGNMENT, tmp_path / "c.csv", points=10,
                           late_penalty=10, due=DUE)
    [late] = report.late
    assert (late.days_late, late.penalty_pct, late.original, late.final) == (days, pct, 10.0, final)
    assert (late.note != "") == (days == 0)
    rows = read_rows(tmp_path / "c_late.csv")
    assert rows[1][:6] == ["Chen, Wei", "101002", str(days), str(pct),
                           "10", f"{final:g}"]


def test_late_penalty_uses_the_due_offset(tmp_path):
    # 23:59 in UTC-05:00 is 04:59 UTC the next day: a file at 03:00 UTC is on time
    results = [result("chenwei_LATE_101002_5550002_differentiation.ipynb", at("2024-03-02T03:00:00+00:00"))]
    report = export_canvas(results, GRADEBOOK, ASSIGNMENT, tmp_path / "c.csv", points=10,
                           late_penalty=25, due=parse_due("2024-03-01T23:59:00-05:00"))
    assert report.late[0].penalty_pct == 0


def test_unknown_submission_time_is_not_penalised(tmp_path):
    results = [result("chenwei_LATE_101002_5550002_differentiation.ipynb", 0.0)]
    report = export_canvas(results, GRADEBOOK, ASSIGNMENT, tmp_path / "c.csv", points=10,
                           late_penalty=10, due=DUE)
    assert report.late[0].penalty_pct == 0 and "unknown" in report.late[0].note


def test_on_time_flag_wins_over_the_clock(tmp_path):
    """Canvas knows about extensions: a file it did not mark LATE is never penalised."""
    results = [result("alvarezjose_101001_5550001_differentiation.ipynb", at("2024-03-04T00:00:00+00:00"))]
    report = export_canvas(results, GRADEBOOK, ASSIGNMENT, tmp_path / "c.csv", points=10,
                           late_penalty=10, due=DUE)
    assert report.late == []
    assert any("did not mark it LATE" in w for w in report.warnings)
    assert {row[1]: row[5] for row in read_rows(tmp_path / "c.csv")[2:]}["101001"] == "10"


def test_duplicate_counting_results_keep_the_newest(out, tmp_path):
    report = export_canvas(out, GRADEBOOK, ASSIGNMENT, tmp_path / "c.csv", points=10)
    [dup] = [u for u in report.unmatched if u.kind == "duplicate"]
    assert dup.file.endswith("5550008_differentiation.ipynb")
    assert "5550018_Differentiation_final_v2.ipynb" in dup.reason


@pytest.mark.parametrize("name", ["Differentiation", "Differentiation ()", "(48213)", "Differentiation [48213]"])
def test_assignment_without_id_is_refused(out, tmp_path, name):
    with pytest.raises(UserError, match="NEW assignment") as err:
        export_canvas(out, GRADEBOOK, name, tmp_path / "c.csv")
    assert not (tmp_path / "c.csv").exists()
    if name == "Differentiation":
        assert '"Differentiation (48213)"' in str(err.value)   # suggests the real header


def test_unknown_assignment_id_is_a_warning(out, tmp_path):
    report = export_canvas(out, GRADEBOOK, "Differentiation (99999)", tmp_path / "c.csv", points=10)
    assert any("no column for assignment id 99999" in w for w in report.warnings)
    assert read_rows(tmp_path / "c.csv")[0][5] == "Differentiation (99999)"


@pytest.mark.parametrize("kwargs, message", [
    (dict(late_penalty=10), "go together"),
    (dict(due=DUE), "go together"),
    (dict(late_penalty=150, due=DUE), "between 0 and 100"),
    (dict(points=0), "above 0"),
])
def test_bad_options(out, tmp_path, kwargs, message):
    with pytest.raises(UserError, match=message):
        export_canvas(out, GRADEBOOK, ASSIGNMENT, tmp_path / "c.csv", **kwargs)


def test_user_errors_for_bad_inputs(out, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        export_canvas(out, tmp_path / "nope.csv", ASSIGNMENT, tmp_path / "c.csv")
    not_canvas = tmp_path / "grades.csv"
    not_canvas.write_text("name,score\nann,3\n", encoding="utf-8")
    with pytest.raises(UserError, match="not a Canvas gradebook export"):
        export_canvas(out, not_canvas, ASSIGNMENT, tmp_path / "c.csv")
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("Student,ID\n\"Müller, A\",1\n".encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8"):
        export_canvas(out, latin1, ASSIGNMENT, tmp_path / "c.csv")
    with pytest.raises(UserError, match="not a folder"):
        export_canvas(tmp_path / "missing", GRADEBOOK, ASSIGNMENT, tmp_path / "c.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no graded submissions"):
        export_canvas(tmp_path / "empty", GRADEBOOK, ASSIGNMENT, tmp_path / "c.csv")


def test_mangled_student_row_is_reported_not_dropped(out, tmp_path):
    gb = tmp_path / "gb.csv"
    gb.write_text(GRADEBOOK.read_text(encoding="utf-8-sig").replace("101004", "1.01E+05"),
                  encoding="utf-8")
    report = export_canvas(out, gb, ASSIGNMENT, tmp_path / "c.csv", points=10)
    assert any("O'Brien, Siobhán" in w and "no numeric Canvas ID" in w for w in report.warnings)


# --------------------------------------------------------------------------- the command

def test_cli_canvas(out, tmp_path):
    dest = tmp_path / "import.csv"
    res = CliRunner().invoke(export_group, [
        "canvas", str(out), "--gradebook", str(GRADEBOOK), "--assignment", ASSIGNMENT,
        "-o", str(dest), "--points", "10", "--late-penalty", "10", "--due", "2024-03-01T23:59:00Z"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0] == "canvas: 4 grades written, 8 unmatched, 1 late (1 penalised)"
    assert lines[1:] == [f"  wrote {dest}", f"  wrote {tmp_path / 'import_late.csv'}",
                         f"  wrote {tmp_path / 'unmatched.csv'}"]
    err = res.stderr.splitlines()
    assert sum(line.startswith("unmatched ") for line in err) == 8
    assert any("no_gradebook_row: student 101050" in line for line in err)
    assert_same_csv(dest, EXPECTED / "canvas_import.csv")


def test_cli_default_output_in_out(out):
    res = CliRunner().invoke(export_group, ["canvas", str(out), "--gradebook", str(GRADEBOOK),
                                            "--assignment", ASSIGNMENT])
    assert res.exit_code == 0, res.output
    assert (out / "canvas_import.csv").is_file() and (out / "unmatched.csv").is_file()


def test_cli_errors_are_one_line_through_the_main_cli(out, tmp_path):
    from autograder.cli import _Group

    @click.group(cls=_Group)
    def root():
        pass

    root.add_command(export_group)
    res = CliRunner().invoke(root, ["export", "canvas", str(out), "--gradebook", str(GRADEBOOK),
                                    "--assignment", "Differentiation", "-o", str(tmp_path / "c.csv")])
    assert res.exit_code == 2
    [line] = res.stderr.splitlines()
    assert line.startswith("autograder: error: --assignment \"Differentiation\" has no Canvas assignment id")
    res = CliRunner().invoke(root, ["export", "canvas", str(out), "--gradebook", str(GRADEBOOK),
                                    "--assignment", ASSIGNMENT, "--late-penalty", "5", "--due", "friday"])
    assert res.exit_code == 2 and "is not an ISO 8601 date" in res.stderr
