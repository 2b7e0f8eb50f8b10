"""The warm worker: imports torch once, then forks one isolated child per submission run.

Started by the supervisor inside a bubblewrap sandbox (read-only system, no network, no view
of the hidden tests, the output folder or other submissions). It reads jobs as JSON lines on
stdin and answers with one JSON line per job on stdout. A run that hangs, crashes or exits
inside one question's cells is killed and the submission is run again without that
question's cells, so the other questions are still observed.

    python -m autograder.grade.worker --slot N --checks-dir DIR [--no-sandbox]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import select
import signal
import sys
import tempfile
import time

UID_BASE = 61000          # each worker slot runs its submissions under uid UID_BASE + slot
EXIT_SETUP_FAILED = 111   # the child could not isolate itself: never run student code then


def _warm_up(checks_dir: str) -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.path.insert(0, checks_dir)
    import torch
    torch.set_num_threads(1)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pylab  # noqa: F401  (the lab imports it; pay the cost once)
    import matplotlib.pyplot  # noqa: F401
    import autograd_checks
    from . import harness  # IPython's transformer
    harness.ipython_shell()   # the path for unusual magics: built once, forked into each run
    # Pay every lazy first-use cost once, here, instead of in every child: autograd, tensor
    # printing, gradcheck (via a probe), NumPy conversion, and a matplotlib figure with fonts.
    x = torch.linspace(-1, 1, 4, requires_grad=True)
    torch.relu(x * x).sum().backward()
    str(x), repr(x.grad), x.detach().numpy()

    class _Square(torch.autograd.Function):
        @staticmethod
        def forward(ctx, i):
            ctx.save_for_backward(i)
            return i ** 2

        @staticmethod
        def backward(ctx, grad_output):
            (i,) = ctx.saved_tensors
            return grad_output * 2 * i

    autograd_checks.observe(_Square, "_Square")
    plt = matplotlib.pyplot
    plt.plot(x.detach().numpy(), x.detach().numpy(), label="warm-up")
    plt.xlabel("x")
    plt.legend()
    plt.show()
    plt.close("all")
    plt.figure()
    plt.gca()   # left open: a child's first plt.plot then skips building a figure (~20 ms)
    autograd_checks.tracker.clear()
    import gc
    gc.collect()
    gc.freeze()   # children then leave the warm objects' pages alone (fewer copy-on-write faults)


class RunOutcome:
    def __init__(self) -> None:
        self.observations: dict[str, list] = {}
        self.errors: dict[int, list[str]] = {}
        self.done = False
        self.segment: int | None = None      # the segment running when the run ended
        self.reason = ""                      # why the run ended early
        self.tampered = False
        self.setup_error = ""
        self.mode = ""
        self.background: set[int] = set()   # segments that left threads or processes running


def _child(job: dict, skip: list[int], record_fd: int, nonce: str, uid: int, sandboxed: bool) -> None:
    """PID 1 of the submission's namespaces (or a plain child without a sandbox)."""
    from . import harness, isolate

    try:
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        high = 200 + secrets.randbelow(800)   # keep the record pipe out of the way (below RLIMIT_NOFILE)
        os.dup2(record_fd, high)
        os.closerange(3, high)
        os.closerange(high + 1, 65536)
        limits = isolate.Limits(**job["limits"])
        cpu = int(limits.timeout) + 5
        if sandboxed:
            isolate.unshare_namespaces()
            isolate.prepare_init(uid, limits, cpu)
        else:
            os.setsid()
            isolate.apply_limits(limits, cpu)
            os.chdir(tempfile.mkdtemp(prefix="autograder-run-"))
    except BaseException as exc:   # say why on the record pipe (no student code has run yet)
        where = exc.__traceback__
        while where.tb_next is not None:
            where = where.tb_next
        step = f"{where.tb_frame.f_code.co_name}:{where.tb_lineno}"
        reason = json.dumps({"t": "setup", "e": f"{type(exc).__name__} at {step}: {exc}"[:300]}) + "\n"
        os.write(record_fd, reason.encode())
        os._exit(EXIT_SETUP_FAILED)
    try:
        harness.run_cells({**job, "skip": skip}, harness.Recorder(high, nonce))
    except BaseException:
        pass
    os._exit(0)


def _start_run(job: dict, skip: list[int], uid: int, sandboxed: bool):
    """Fork the run (PID 1 of a new PID namespace when sandboxed); returns (pid, pipe, nonce)."""
    from . import isolate

    nonce = secrets.token_hex(16)
    rec_r, rec_w = os.pipe()
    if sandboxed:
        isolate.children_in_new_pid_namespace()
    try:
        pid = os.fork()
    except BaseException:
        if sandboxed:
            isolate.children_in_own_pid_namespace()
        raise
    if pid == 0:
        os.close(rec_r)
        _child(job, skip, rec_w, nonce, uid, sandboxed)
    if sandboxed:
        isolate.children_in_own_pid_namespace()
    os.close(rec_w)
    return pid, rec_r, nonce


def _kill(pid: int, sandboxed: bool) -> None:
    try:
        if sandboxed:
            os.kill(pid, signal.SIGKILL)    # PID 1 of the namespace: takes everything with it
        else:
            os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _describe_exit(code: int) -> str:
    """Why a run ended before finishing, in the words of a grading_status."""
    if code == EXIT_SETUP_FAILED:
        return "sandbox setup failed"
    if code <= 128:
        return "exited"            # os._exit() or the like, in the student's code
    sig = code - 128
    if sig == signal.SIGXCPU:
        return "CPU time limit"
    if sig == signal.SIGKILL:
        return "killed (CPU or memory limit)"
    try:
        return f"crashed ({signal.Signals(sig).name})"
    except ValueError:
        return f"crashed (signal {sig})"


def _reap(pid: int, sandboxed: bool, grace: float) -> tuple[int, bool]:
    """waitpid with a deadline: (status, whether the run had to be killed after `grace` s)."""
    deadline = time.monotonic() + grace
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status, False
        if time.monotonic() >= deadline:
            _kill(pid, sandboxed)
            return os.waitpid(pid, 0)[1], True
        time.sleep(0.001)


def run_once(job: dict, skip: list[int], deadline: float, uid: int, sandboxed: bool) -> RunOutcome:
    limits = job["limits"]
    out = RunOutcome()
    pid, rec_r, nonce = _start_run(job, skip, uid, sandboxed)
    expected_pid = 1 if sandboxed else pid
    max_bytes = int(limits["output_mb"] * 2**20)
    received, buffer = 0, b""
    segment_deadline = deadline
    killed_for = ""
    try:
        while True:
            now = time.monotonic()
            wait = min(segment_deadline, deadline) - now
            if wait <= 0:
                killed_for = "timed out"
                _kill(pid, sandboxed)
                break
            ready, _, _ = select.select([rec_r], [], [], wait)
            if not ready:
                continue
            chunk = os.read(rec_r, 1 << 16)
            if not chunk:
                break
            received += len(chunk)
            if received > max_bytes:
                killed_for = "output limit"
                _kill(pid, sandboxed)
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                try:
                    record = json.loads(line)
                    if not isinstance(record, dict):
                        raise ValueError
                except ValueError:
                    out.tampered = True
                    continue
                kind = record.get("t")
                if kind == "setup":   # written by our setup code, before any student code ran
                    if out.segment is None and not out.observations:
                        out.setup_error = str(record.get("e"))[:300]
                    else:
                        out.tampered = True
                    continue
                if record.get("pid") != expected_pid or record.get("nonce") != nonce:
                    out.tampered = True
                    continue
                if kind == "seg" and isinstance(record.get("s"), int):
                    out.segment = record["s"]
                    segment_deadline = time.monotonic() + limits["question_timeout"]
                elif kind == "obs" and isinstance(record.get("q"), str) and isinstance(record.get("facts"), list):
                    out.observations[record["q"]] = record["facts"]
                elif kind == "err" and isinstance(record.get("s"), int):
                    out.errors.setdefault(record["s"], []).append(str(record.get("e"))[:60])
                elif kind == "done":
                    out.done = True
                elif kind == "mode" and record.get("m") in ("fast", "ipython"):
                    out.mode = record["m"]
                elif kind == "bg" and isinstance(record.get("s"), int):
                    out.background.add(record["s"])
                else:
                    out.tampered = True
    finally:
        os.close(rec_r)
        # EOF does not mean the run ended (it may have closed the pipe and gone on): it gets a
        # moment to exit, then it is killed.
        status, lingered = _reap(pid, sandboxed, grace=2.0 if out.done else 0.5)
        if lingered and not out.done and not killed_for:
            killed_for = "stopped reporting (closed the grader's channel)"
    if killed_for:
        out.done, out.reason = False, killed_for
    elif not out.done:
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
        out.reason = _describe_exit(code)
    return out


def grade_job(job: dict, uid: int, sandboxed: bool) -> dict:
    """Run a submission, re-running without any question's cells that hung or crashed."""
    started = time.monotonic()
    deadline = started + job["limits"]["timeout"]
    segment_questions: dict[int, list[str]] = {}
    for q, spec in job["questions"].items():
        segment_questions.setdefault(spec["segment"], []).append(q)
    observations: dict[str, list] = {}
    status: dict[str, str] = {}
    notes: dict[str, list[str]] = {}
    skip: list[int] = []
    tampered, runs, mode = False, 0, ""
    while True:
        runs += 1
        out = run_once(job, skip, deadline, uid, sandboxed)
        tampered |= out.tampered
        mode = mode or out.mode
        for segment, errors in out.errors.items():
            for q in segment_questions.get(segment, []):
                notes.setdefault(q, []).extend(e for e in errors if e not in notes.get(q, []))
        failed = out.segment if not out.done else None
        if failed is not None:
            # A thread or process left running by an earlier question may be what ended the run:
            # blame the earliest such question first (a rerun without it settles the matter).
            earlier = [s for s in out.background if s < failed and s not in skip]
            if earlier:
                failed = min(earlier)
        for q, facts in out.observations.items():
            spec = job["questions"].get(q)
            if spec is None or q in status:
                continue
            if failed is None or spec["segment"] < failed:
                observations[q], status[q] = facts, "graded"
        if out.done:
            break
        if out.reason == "sandbox setup failed":
            notes.setdefault("_sandbox", []).append(out.setup_error)
            for q in job["questions"]:
                status.setdefault(q, "sandbox setup failed")
            break
        if failed is None or failed in skip:
            for q in job["questions"]:   # nothing ran at all: the run itself could not start
                status.setdefault(q, out.reason or "not run")
            break
        for q in segment_questions.get(failed, []):
            status.setdefault(q, out.reason)
        skip.append(failed)
        if time.monotonic() >= deadline:
            for q in job["questions"]:
                status.setdefault(q, "timed out")
            break
    for q in job["questions"]:
        status.setdefault(q, "not reached")
        if status[q] == "graded" and "MemoryError" in notes.get(q, []):
            status[q] = "memory limit"
    return {"id": job["id"], "observations": observations, "status": status, "notes": notes,
            "tampered": tampered, "runs": runs, "mode": mode, "seconds": round(time.monotonic() - started, 4)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slot", type=int, default=0)
    parser.add_argument("--checks-dir", required=True)
    parser.add_argument("--no-sandbox", action="store_true")
    args = parser.parse_args(argv)
    results = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    _warm_up(args.checks_dir)
    sandboxed = not args.no_sandbox
    uid = UID_BASE + args.slot
    results.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        try:
            answer = grade_job(job, uid, sandboxed)
        except Exception as exc:   # a bug of ours: report it for this job, keep serving
            answer = {"id": job.get("id"), "error": f"{type(exc).__name__}: {exc}"}
        results.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()
