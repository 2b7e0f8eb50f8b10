"""Hostile submissions (tests/fixtures/threats, one per entry of the threat notes) graded in ONE
batch next to the plain solution and the plain blank template.

What must hold for every threat: the batch finishes; every file is exactly one row of
final_grades.csv; a blank notebook with hostile code earns 0; a correct notebook with hostile code
earns no more than its honest answers (and when the code sits in one question, the others keep
their full marks); the row says what happened where the grader can know it; nothing outside the
sandbox changed (the output folder, the submissions, the host's /tmp, the hidden tests); nobody
connected to the test's listening sockets; and the plain solution, graded among these
neighbours, still gets 20/20.

Attacks on the observation itself are compared with "control" fixtures: the same honest (partly
wrong) answers without the attack, which the attack must not out-score. Reading threats leak one
bit through q1 (see make_threats.py), so a blank at 0 and a correct notebook at 20 prove they
found nothing. The fixture in tests/fixtures/threats/hangs is graded by the CLI in a separate
process under a deadline, overlapping the main batch. Threats the grader does not stop today are
strict xfails whose reason names the defect. The fixtures and their expectations are written by
tests/fixtures/threats/make_threats.py (threats.json holds the expectations).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
THREATS = ROOT / "tests" / "fixtures" / "threats"
MANIFEST: dict[str, dict] = json.loads((THREATS / "threats.json").read_text(encoding="utf-8"))
AUTOGRADER_ZIP = ROOT / "dist" / "differentiation" / "autograder.zip"
HIDDEN = ROOT / "dist" / "differentiation"
SOLUTION = HIDDEN / "autograder" / "differentiation.ipynb"
TEMPLATE = ROOT / "student_templates" / "differentiation" / "differentiation.ipynb"
CLI = Path(sys.executable).parent / "autograder"

QUESTIONS = [f"q{n}" for n in range(1, 9)]
FULL = {"q1": 2.0, "q2": 2.0, "q3": 2.0, "q4": 4.0, "q5": 3.0, "q6": 2.0, "q7": 2.0, "q8": 3.0}
TOTAL = sum(FULL.values())
PLAIN_SOLUTION, PLAIN_BLANK = "plain_solution.ipynb", "plain_blank.ipynb"
SECRET_VAR = "AUTOGRADER_TEST_SECRET"
FORGED = "THREAT_FORGED"
SENTINEL = "THREAT_SENTINEL.txt"
QUESTION_TIMEOUT, TIMEOUT, MEMORY_MB = 3.0, 20.0, 1024
HANG_DEADLINE = 50.0      # seconds the separate run of tests/fixtures/threats/hangs gets
GRADER_FILES = {"batch.json", "final_grades.csv", "records", "results", "feedback", SENTINEL}

MAIN = sorted(name for name, spec in MANIFEST.items() if not spec["hang"])
HANGS = sorted(name for name, spec in MANIFEST.items() if spec["hang"])


# --------------------------------------------------------------------------- helpers


def _tree_digest(folder: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under folder (symlinks by target)."""
    digests = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink():
            digests[rel] = "link:" + os.readlink(path)
        elif path.is_file():
            digests[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def _substitute(text: str, values: dict[str, str]) -> str:
    for token, value in values.items():
        text = text.replace(token, json.dumps(value)[1:-1])   # safe inside a JSON string
    return text


def _forged_in_tmp() -> set[str]:
    root = Path(tempfile.gettempdir())
    return {p.name for p in root.iterdir() if FORGED in p.name}


def _rows(final_grades: Path) -> list[dict]:
    with final_grades.open(newline="", encoding="utf-8") as f:
        return [row for row in csv.DictReader(f) if row["file"] != "points-per-question"]


@dataclass
class Batch:
    base: Path
    out: Path
    submissions: Path
    results: dict              # file -> SubmissionResult
    rows: list[dict]           # final_grades.csv data rows
    answers: dict              # file -> the worker's raw answer (notes, runs, mode), for diagnostics
    inputs: list[str]
    seconds: float
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)
    tcp_connections: list = field(default_factory=list)
    udp_datagrams: list = field(default_factory=list)
    canary: Path | None = None
    canary_text: str = ""
    forged_tmp_before: set = field(default_factory=set)
    hang: dict = field(default_factory=dict)

    def result(self, name: str):
        return self.results[name]

    def why(self, name: str) -> str:
        r = self.results[name]
        from autograder.grade.outputs import grading_status
        return (f"{name}: {r.points}/{r.max_points} (graded {r.graded_points}) [{grading_status(r)}] "
                f"{[(q.name, q.points, q.status) for q in r.questions]} raw={self.answers.get(name)}")


def _start_hang_run(base: Path, values: dict[str, str]) -> dict:
    """Grade the fixtures that would hang a batch in their own CLI process, started now and
    collected later under a deadline (so the wait overlaps the main batch)."""
    if not HANGS:
        return {}
    folder = base / "hang_submissions"
    folder.mkdir()
    for name in HANGS:
        (folder / Path(name).name).write_text(_substitute((THREATS / name).read_text(encoding="utf-8"), values),
                                              encoding="utf-8")
    tmp = base / "hang_tmp"      # the killed run's private folders land here, not in /tmp
    tmp.mkdir()
    out = base / "hang_out"
    command = [str(CLI), "grade", "-q", "-a", str(AUTOGRADER_ZIP), "-o", str(out), "--containers", "1",
               "--question-timeout", str(QUESTION_TIMEOUT), "--timeout", str(TIMEOUT),
               "--memory-mb", str(MEMORY_MB), str(folder)]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "TMPDIR": str(tmp)},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    return {"process": process, "started": time.monotonic(), "out": out}


def _finish_hang_run(run: dict) -> dict:
    if not run:
        return {}
    process = run["process"]
    left = HANG_DEADLINE - (time.monotonic() - run["started"])
    try:
        output, _ = process.communicate(timeout=max(left, 1.0))
        finished = True
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)      # our own process group: the CLI and its bwraps
        output, _ = process.communicate()
        finished = False
    from autograder.results import load_batch

    final = run["out"] / "final_grades.csv"
    return {"finished": finished, "seconds": time.monotonic() - run["started"],
            "output": (output or b"").decode("utf-8", "replace")[-2000:],
            "rows": _rows(final) if finished and final.is_file() else [],
            "results": load_batch(run["out"]) if finished else []}


# --------------------------------------------------------------------------- the batch


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Batch:
    if not AUTOGRADER_ZIP.is_file():
        pytest.fail(f"{AUTOGRADER_ZIP} is missing: run `autograder build differentiation` first.")
    from autograder.grade import Limits, batch as batch_module, grade_batch

    base = tmp_path_factory.mktemp("threats")
    submissions, out = base / "submissions", base / "out"
    submissions.mkdir()
    out.mkdir()
    (out / SENTINEL).write_text("the output folder's own file\n")
    (submissions / SENTINEL).write_text("the submissions folder's own file\n")

    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(16)
    port = tcp.getsockname()[1]
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", port))

    canary = Path(tempfile.gettempdir()) / f"threat-canary-{secrets.token_hex(6)}.txt"
    canary_text = f"canary {secrets.token_hex(8)}\n"
    canary.write_text(canary_text)
    old_secret = os.environ.get(SECRET_VAR)
    os.environ[SECRET_VAR] = f"threat-secret-{secrets.token_hex(8)}"

    values = {"@@OUT@@": str(out), "@@SUBMISSIONS@@": str(submissions), "@@PORT@@": str(port),
              "@@REPO@@": str(ROOT), "@@CANARY@@": str(canary)}
    for name in MAIN:
        (submissions / name).write_text(_substitute((THREATS / name).read_text(encoding="utf-8"), values),
                                        encoding="utf-8")
    shutil.copyfile(SOLUTION, submissions / PLAIN_SOLUTION)
    shutil.copyfile(TEMPLATE, submissions / PLAIN_BLANK)
    inputs = sorted(p.name for p in submissions.glob("*.ipynb"))

    before = {"hidden": _tree_digest(HIDDEN), "submissions": _tree_digest(submissions),
              "sentinel": (out / SENTINEL).read_text()}
    forged_tmp_before = _forged_in_tmp()

    answers: dict[str, dict] = {}
    judged = batch_module._judged

    def spy(judge, answer, probe, item, digest, findings, *rounds):
        answers[item.file] = {k: getattr(answer, k) for k in ("notes", "runs", "mode", "tampered", "seconds", "error")}
        return judged(judge, answer, probe, item, digest, findings, *rounds)

    hang_run = _start_hang_run(base, values)
    started = time.monotonic()
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(batch_module, "_judged", spy)
            summary = grade_batch(AUTOGRADER_ZIP, [submissions], out,
                                  limits=Limits(question_timeout=QUESTION_TIMEOUT, timeout=TIMEOUT,
                                                memory_mb=MEMORY_MB),
                                  summaries=True, progress=False)
        seconds = time.monotonic() - started
        hang = _finish_hang_run(hang_run)
    finally:
        if old_secret is None:
            os.environ.pop(SECRET_VAR, None)
        else:
            os.environ[SECRET_VAR] = old_secret

    tcp.setblocking(False)
    udp.setblocking(False)
    connections, datagrams = [], []
    while True:
        try:
            conn, addr = tcp.accept()
        except (BlockingIOError, OSError):
            break
        connections.append(addr)
        conn.close()
    while True:
        try:
            datagrams.append(udp.recv(4096))
        except (BlockingIOError, OSError):
            break
    tcp.close()
    udp.close()

    after = {"hidden": _tree_digest(HIDDEN), "submissions": _tree_digest(submissions),
             "sentinel": (out / SENTINEL).read_text()}
    result = Batch(base=base, out=out, submissions=submissions,
                   results={r.file: r for r in summary.results}, rows=_rows(out / "final_grades.csv"),
                   answers=answers, inputs=inputs, seconds=seconds, before=before, after=after,
                   tcp_connections=connections, udp_datagrams=datagrams, canary=canary,
                   canary_text=canary_text, forged_tmp_before=forged_tmp_before, hang=hang)
    yield result
    canary.unlink(missing_ok=True)


# --------------------------------------------------------------------------- the batch as a whole


def test_every_input_is_exactly_one_row(batch):
    files = [row["file"] for row in batch.rows]
    assert sorted(files) == batch.inputs, "final_grades.csv rows differ from the input files"
    assert len(batch.results) == len(batch.inputs)
    for row in batch.rows:
        assert row["grading_status"].strip(), f"{row['file']}: empty grading_status"


def test_plain_solution_gets_full_marks_among_hostile_neighbours(batch):
    r = batch.result(PLAIN_SOLUTION)
    assert r.points == TOTAL, batch.why(PLAIN_SOLUTION)
    assert all(q.status == "graded" for q in r.questions), batch.why(PLAIN_SOLUTION)
    row = next(row for row in batch.rows if row["file"] == PLAIN_SOLUTION)
    assert float(row["total_points_earned"]) == TOTAL and row["grading_status"] == "Completed"


def test_plain_blank_gets_zero(batch):
    r = batch.result(PLAIN_BLANK)
    assert r.points == 0.0, batch.why(PLAIN_BLANK)


def test_no_grader_error_anywhere(batch):
    """A grader error means our code broke, not the submission's: none may happen."""
    broken = [batch.why(n) for n, r in batch.results.items() if r.status == "grader error"]
    assert not broken


# --------------------------------------------------------------------------- nothing outside changed


def test_nobody_connected_to_the_listening_sockets(batch):
    assert batch.tcp_connections == [], f"submissions connected to the test's TCP port: {batch.tcp_connections}"
    assert batch.udp_datagrams == [], f"submissions reached the test's UDP port: {batch.udp_datagrams}"


def test_host_tmp_canary_unchanged_and_nothing_forged_there(batch):
    assert batch.canary.read_text() == batch.canary_text
    new = _forged_in_tmp() - batch.forged_tmp_before
    assert not new, f"files named by the threats appeared in the host's /tmp: {sorted(new)}"


def test_submissions_folder_unchanged(batch):
    assert batch.after["submissions"] == batch.before["submissions"]


def test_output_folder_holds_only_the_graders_files(batch):
    assert batch.after["sentinel"] == batch.before["sentinel"]
    top = {p.name for p in batch.out.iterdir()}
    assert top <= GRADER_FILES, f"unexpected entries in the output folder: {sorted(top - GRADER_FILES)}"
    forged = [p for p in batch.out.rglob("*") if FORGED in p.name]
    assert not forged, forged
    for sub in ("records", "results", "feedback"):
        for path in (batch.out / sub).iterdir():
            assert not path.name.startswith("."), f"left-over temporary file {path}"
    results = {p.stem for p in (batch.out / "results").glob("*.json")}
    assert len(results) == len(batch.inputs)


def test_hidden_tests_unchanged(batch):
    assert batch.after["hidden"] == batch.before["hidden"]


def test_no_forged_file_anywhere_in_the_test_folders(batch):
    forged = [p for p in batch.base.rglob("*") if FORGED in p.name]
    assert not forged, forged


# --------------------------------------------------------------------------- per threat fixture


def _params():
    params = []
    for name in MAIN:
        spec = MANIFEST[name]
        marks = [pytest.mark.xfail(strict=True, raises=AssertionError, reason=spec["bug"])] if spec["bug"] else []
        params.append(pytest.param(name, marks=marks, id=name.removesuffix(".ipynb")))
    return params


# Threats whose code is ordinary lab code (an endless loop, honest mistakes): not flagged. Every
# other threat needs something outside the allowlist (os, ctypes, sys, gc, dunders, library
# patching, %%bash...), so the screen flags it and it earns 0 until staff accept it.
UNFLAGGED_THREATS = {"while_true", "memory_bomb", "backward_wrong_fn", "dataedit", "handtyped", "wrong_backward"}


@pytest.mark.parametrize("name", _params())
def test_threat(batch, name):
    """The runtime layers hold on their own (the graded points, before the screen's hold, stay
    within the honest answers), and the screen holds every attack that needs flagged code."""
    from autograder.grade.outputs import grading_status

    spec = MANIFEST[name]
    r = batch.result(name)
    why = batch.why(name)
    points = {q.name: q.points for q in r.questions}    # graded points, before any hold
    statuses = {q.name: q.status_text for q in r.questions}
    row = next(row for row in batch.rows if row["file"] == name)
    assert r.status != "graded" or len(r.questions) == len(QUESTIONS), why

    flagged = spec["threat"] not in UNFLAGGED_THREATS
    assert r.flagged == flagged, why
    if flagged:
        assert r.points == 0.0 and float(row["total_points_earned"]) == 0.0, why
        assert row["grading_status"].startswith("needs review: code cell"), why
    # what happened, in the words the row would carry once the submission is accepted
    status_line = grading_status(replace(r, findings=())) if flagged else row["grading_status"]

    # the row says what happened
    for question, expected in spec["status"].items():
        allowed = {expected}
        if spec["threat"] == "memory_bomb":
            # RLIMIT_AS turns the bomb into a MemoryError ("memory limit") within a second when the
            # machine is idle; with both bombs and other work competing for 2 cores, filling 1 GB
            # was seen to take longer than the 3 s question limit ("timed out"): both are true
            allowed.add("timed out")
        assert statuses[question] in allowed, why
        assert f"{r.question(question).status_text} in {question}" in status_line, why
    if spec["row_status"]:
        assert spec["row_status"] in status_line, why

    variant = spec["variant"]
    if variant == "blank":
        assert r.points == spec["blank"] == 0.0, why
        if not spec["status"] and not spec["row_status"]:
            assert status_line == "Completed", why
    elif variant == "control":
        assert r.points == spec["blank"], why
    elif variant == "attack":
        control = batch.result(spec["compare"])
        assert {q.name: q.points for q in control.questions} == points, \
            f"{why}\n  earns more than its honest answers: {batch.why(spec['compare'])}"
    elif variant == "correct":
        assert r.points <= TOTAL, why
        mode, question = spec["correct"], spec["question"]
        others = [q for q in QUESTIONS if q != question]
        if mode == "full":
            if spec["threat"] == "memory_bomb" and statuses["q3"] == "timed out":
                assert points["q3"] == 0.0 and all(points[q] == FULL[q] for q in others), why
            else:
                assert points == FULL, why
                if not spec["status"]:
                    assert status_line == "Completed", why
        elif mode == "lose_question":
            assert points[question] == 0.0, why
            assert all(points[q] == FULL[q] for q in others), why
        elif mode == "others_full":
            assert all(points[q] == FULL[q] for q in others), why
        elif mode == "zero":
            assert r.points == 0.0, why
        elif mode == "at_most":
            pass
        else:
            pytest.fail(f"unknown expectation {mode!r} for {name}")
    else:
        pytest.fail(f"unknown variant {variant!r} for {name}")


def test_ipython_path_was_exercised(batch):
    """The %%bash fixture must really run in the IPython shell (the path with a real shell)."""
    for name in MAIN:
        if MANIFEST[name]["threat"] == "ipython_shell_tamper":
            assert batch.answers[name]["mode"] == "ipython", batch.why(name)


def test_reading_threats_found_nothing(batch):
    """Each reading threat leaks one bit through q1; q1 of the blank must be 0 and of the correct 2."""
    leaking = {"read_hidden_relative", "read_hidden_tmp", "read_hidden_repo", "read_proc", "search_filesystem",
               "read_other_students", "env_secret", "network_loopback", "network_external", "dns_lookup"}
    seen = set()
    for name in MAIN:
        spec = MANIFEST[name]
        if spec["threat"] in leaking:
            seen.add(spec["threat"])
            q1 = batch.result(name).question("q1").points
            assert q1 == (0.0 if spec["variant"] == "blank" else FULL["q1"]), \
                f"{spec['threat']} found something it must not see: {batch.why(name)}"
    assert seen == leaking


# --------------------------------------------------------------------------- would hang the batch


def test_closing_the_record_pipe_then_sleeping_does_not_hang_the_batch(batch):
    hang = batch.hang
    assert hang, "no fixture in tests/fixtures/threats/hangs"
    assert hang["finished"], (f"the batch did not finish within {HANG_DEADLINE:.0f} s "
                              f"(killed after {hang['seconds']:.0f} s)")
    row = next(row for row in hang["rows"] if row["file"].startswith("close_record_fd_then_sleep"))
    assert row["grading_status"].startswith("needs review"), row   # it closes fds: flagged
    r = next(r for r in hang["results"] if r.file.startswith("close_record_fd_then_sleep"))
    assert not r.question("q3").graded_normally, r
    for q in QUESTIONS:
        if q != "q3":
            assert r.question(q).points == FULL[q], r
