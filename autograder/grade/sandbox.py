"""Warm workers in bubblewrap sandboxes, driven by the supervisor.

Each worker sees a read-only system (/usr, /etc, the Python install, the venv, this package),
a private /tmp, no network and no other processes; it does not see the hidden tests, the
output folder, the submissions or the user's home. It gets each submission's code over a
pipe and answers with plain observations (see worker.py).
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..results import Status
from . import isolate
from .protocol import MAX_RECORD_BYTES, Job, parse_record
from .worker import EXIT_SETUP_FAILED

_READY_TIMEOUT = 120
KILL_GRACE = 30.0   # seconds the kernel may take to tear down a killed run's namespaces


class SandboxUnavailable(UserError):
    pass


def _package_root() -> Path:
    import autograder
    return Path(autograder.__file__).resolve().parent


def bwrap_command(public_dir: Path) -> list[str]:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailable(
            "bubblewrap (bwrap) is not installed, so submissions cannot be isolated. "
            "Install it with `sudo apt-get install -y bubblewrap` (or `make test` as root), "
            "or pass --no-sandbox to grade without isolation (not safe for untrusted code).")
    if os.geteuid() != 0:
        raise SandboxUnavailable(
            "the sandbox needs root to give every submission its own uid and namespaces; "
            "run `autograder grade` as root (e.g. in a VM or CI runner), or pass --no-sandbox")
    venv = Path(sys.prefix).resolve()
    base = Path(sys.base_prefix).resolve()
    package = _package_root()
    bind, parents = [], set()
    for path in sorted({venv, base, package, Path(public_dir).resolve()}):
        parents.update(p for p in path.parents if str(p) not in ("/", "/tmp"))
        bind += ["--ro-bind", str(path), str(path)]
    # bwrap would create the parents of bind targets as 0700: readable ones for the run's uid
    bind = [arg for p in sorted(parents, key=lambda p: len(p.parts))
            for arg in ("--perms", "0755", "--dir", str(p))] + bind
    for path in ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib64", "/lib32"):
        bind += ["--ro-bind-try", path, path]
    env = {
        "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp", "LANG": "C.UTF-8", "MPLBACKEND": "Agg", "MPLCONFIGDIR": "/tmp/mpl",
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(package.parent),
    }
    setenv = [arg for k, v in env.items() for arg in ("--setenv", k, v)]
    return [bwrap, "--die-with-parent", "--new-session", "--unshare-net", "--unshare-ipc",
            "--unshare-uts", "--unshare-pid", "--unshare-cgroup-try", "--cap-add", "ALL",
            "--tmpfs", "/tmp", *bind, "--dev", "/dev", "--proc", "/proc",
            "--clearenv", *setenv, "--chdir", "/tmp"]


class SlotCgroup:
    """A memory and pids cgroup (v1) around one worker and everything it runs, so that the
    sum over a submission's processes is bounded too (rlimits bound each process alone).
    Where cgroups cannot be made (not root, no v1 controllers), the rlimits stand alone."""

    def __init__(self, slot: int, memory_bytes: int, pids: int) -> None:
        self.paths: list[Path] = []
        name = f"autograder-{os.getpid()}-{slot}"
        for controller, settings in (("memory", {"memory.limit_in_bytes": memory_bytes,
                                                  "memory.memsw.limit_in_bytes": memory_bytes}),
                                     ("pids", {"pids.max": pids})):
            base = _own_cgroup(controller)
            if base is None:
                continue
            path = base / name
            try:
                path.mkdir(exist_ok=True)
                for key, value in settings.items():
                    if (path / key).exists():
                        (path / key).write_text(str(value))
                self.paths.append(path)
            except OSError:
                continue

    def join(self) -> None:
        """Runs in the worker's process just before exec (preexec_fn): move it in."""
        for path in self.paths:
            try:
                (path / "cgroup.procs").write_text(str(os.getpid()))
            except OSError:
                pass

    def remove(self) -> None:
        for path in self.paths:
            try:
                path.rmdir()
            except OSError:
                pass


def _own_cgroup(controller: str) -> Path | None:
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, where = line.split(":", 2)
            if controller in controllers.split(","):
                path = Path("/sys/fs/cgroup") / controller / where.lstrip("/")
                return path if os.access(path, os.W_OK) else None
    except OSError:
        return None
    return None


@dataclass
class RunOutcome:
    """What one run of a submission reported, as the supervisor saw it."""

    observations: dict[str, dict] = field(default_factory=dict)
    stale: dict[str, dict] = field(default_factory=dict)     # question -> name -> earlier question
    errors: dict[int, list[str]] = field(default_factory=dict)
    done: bool = False
    segment: int | None = None       # the segment running when the run ended
    status: Status | None = None     # why the run ended early
    detail: str = ""
    tampered: bool = False
    setup_error: str = ""
    mode: str = ""
    background: set[int] = field(default_factory=set)   # segments that left threads or processes


@dataclass(frozen=True)
class RunAnswer:
    """A submission's runs together: observations per question and what happened to each."""

    id: str
    observations: dict[str, dict]
    status: dict[str, tuple[Status, str]]
    notes: dict[str, list[str]]
    tampered: bool
    runs: int
    mode: str
    seconds: float
    setup_error: str = ""
    error: str = ""                  # the grader's own failure (the submission is not to blame)
    stale: dict[str, dict] = field(default_factory=dict)   # question -> name -> earlier question


def describe_exit(code: int) -> tuple[Status, str]:
    """Why a run ended before finishing, as a status and its detail."""
    if code == EXIT_SETUP_FAILED:
        return Status.SANDBOX_FAILED, ""
    if code <= 128:
        return Status.EXITED, ""   # os._exit() or the like, in the student's code
    sig = code - 128
    if sig == signal.SIGXCPU:
        return Status.CPU_LIMIT, ""
    if sig == signal.SIGKILL:
        return Status.KILLED, ""
    try:
        return Status.CRASHED, signal.Signals(sig).name
    except ValueError:
        return Status.CRASHED, f"signal {sig}"


class Worker:
    """One warm worker process (the template); one run at a time, driven from here."""

    def __init__(self, slot: int, public_dir: Path, sandboxed: bool, limits=None) -> None:
        self.slot = slot
        self.sandboxed = sandboxed
        self.cgroup = None
        if sandboxed and limits is not None:
            # the worker's own warm pages (~0.5 GB) are charged here too
            self.cgroup = SlotCgroup(slot, (limits.memory_mb + 768) * 2**20, limits.processes + 32)
        self.control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        fd = theirs.fileno()
        base = [sys.executable, "-m", "autograder.grade.worker", "--checks-dir", str(public_dir),
                "--control-fd", str(fd)]
        if sandboxed:
            command = bwrap_command(public_dir) + base
        else:
            command = base + ["--no-sandbox"]
        env = None if sandboxed else {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg",
                                      "PYTHONPATH": str(_package_root().parent)}
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=env, pass_fds=(fd,), preexec_fn=self.cgroup.join if self.cgroup else None)
        theirs.close()

    def wait_ready(self) -> None:
        ready = select.select([self.control], [], [], _READY_TIMEOUT)[0]
        message = self.control.recv(64) if ready else b""
        if message != b"ready":
            self.close()
            raise SandboxUnavailable(
                "the grading sandbox did not start (bubblewrap failed or the worker crashed); "
                "check that `bwrap --ro-bind / / true` works here, or pass --no-sandbox")

    # ------------------------------------------------------------------ one run

    def run_once(self, job: Job, skip: list[int], deadline: float) -> RunOutcome:
        out = RunOutcome()
        nonce = secrets.token_hex(16)
        job_r, job_w = os.pipe()
        rec_r, rec_w = os.pipe()
        host_uid = isolate.fresh_host_uid() if self.sandboxed and os.geteuid() == 0 else 0
        try:
            socket.send_fds(self.control, [b"run %d" % host_uid], [job_r, rec_w])
        finally:
            os.close(job_r)
            os.close(rec_w)
        request = json.dumps({"job": dataclasses.asdict(job), "skip": skip, "nonce": nonce}).encode()
        try:
            _write_all(job_w, request)
        except OSError:
            pass   # the run died before reading its job: its setup record says why
        finally:
            os.close(job_w)
        max_bytes = int(job.limits.output_mb * 2**20)
        received, buffer = 0, b""
        segment_deadline = deadline
        killed: tuple[Status, str] | None = None
        exit_code: int | None = None
        try:
            while True:
                wait = min(segment_deadline, deadline) - time.monotonic()
                if wait <= 0:
                    killed = (Status.TIMED_OUT, "")
                    break
                ready, _, _ = select.select([rec_r, self.control], [], [], wait)
                if self.control in ready:
                    exit_code = self._exit_code(self.control.recv(64))
                    if exit_code is None:
                        raise WorkerDied()
                if rec_r not in ready:
                    if exit_code is not None:
                        break
                    continue
                chunk = os.read(rec_r, 1 << 16)
                if not chunk:
                    break
                received += len(chunk)
                if received > max_bytes:
                    killed = (Status.OUTPUT_LIMIT, "")
                    break
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    record = parse_record(line)
                    self._take(out, record, nonce, job)
                    if record is not None and record.kind == "seg":
                        segment_deadline = time.monotonic() + job.limits.question_timeout
                if len(buffer) > MAX_RECORD_BYTES:
                    out.tampered = True
                    buffer = b""
        finally:
            os.close(rec_r)
        if exit_code is None and killed is not None:
            exit_code = self._wait_exit(KILL_GRACE, kill_now=True)
        elif exit_code is None:
            # EOF does not mean the run ended (it may have closed the pipe and gone on): it gets
            # a moment to exit, then it is killed.
            exit_code = self._wait_exit(2.0 if out.done else 0.5, kill_now=False)
            if exit_code is None:
                exit_code = self._wait_exit(KILL_GRACE, kill_now=True)
                if not out.done:
                    killed = (Status.STOPPED_REPORTING, "")
        if killed is not None:
            out.done = False
            out.status, out.detail = killed
        elif not out.done:
            out.status, out.detail = describe_exit(exit_code if exit_code is not None else 128 + 9)
        return out

    def _take(self, out: RunOutcome, record, nonce: str, job: Job) -> None:
        if record is None:
            out.tampered = True
            return
        if record.kind == "setup":   # written by our setup code, before any student code ran
            if out.segment is None and not out.observations:
                out.setup_error = record.text
            else:
                out.tampered = True
            return
        if record.nonce != nonce:
            out.tampered = True
            return
        if record.kind == "seg":
            out.segment = record.segment
        elif record.kind == "obs":
            # a question is judged on its first observation, taken at its own check cell
            spec = job.question(record.question)
            if spec is not None and spec.segment == out.segment and record.question not in out.observations:
                out.observations[record.question] = record.values
                out.stale[record.question] = record.stale or {}
        elif record.kind == "err":
            out.errors.setdefault(record.segment, []).append(record.text)
        elif record.kind == "done":
            out.done = True
        elif record.kind == "mode":
            out.mode = record.text
        elif record.kind == "bg":
            out.background.add(record.segment)

    @staticmethod
    def _exit_code(message: bytes) -> int | None:
        words = message.split()
        if len(words) == 2 and words[0] == b"exit" and words[1].isdigit():
            return int(words[1])
        return None

    def _wait_exit(self, grace: float, kill_now: bool) -> int | None:
        if kill_now:
            self.control.send(b"kill")
        ready = select.select([self.control], [], [], grace)[0]
        if not ready:
            if not kill_now:
                return None
            raise WorkerDied()
        code = self._exit_code(self.control.recv(64))
        if code is None:
            raise WorkerDied()
        return code

    # ------------------------------------------------------------ a submission

    def grade(self, job: Job) -> RunAnswer:
        """Run a submission, re-running without any question's cells that hung or crashed."""
        started = time.monotonic()
        deadline = started + job.limits.timeout
        segment_questions: dict[int, list[str]] = {}
        for q in job.questions:
            segment_questions.setdefault(q.segment, []).append(q.name)
        observations: dict[str, dict] = {}
        stale: dict[str, dict] = {}
        status: dict[str, tuple[Status, str]] = {}
        notes: dict[str, list[str]] = {}
        skip: list[int] = []
        tampered, runs, mode, setup_error = False, 0, "", ""
        while True:
            runs += 1
            out = self.run_once(job, skip, deadline)
            tampered |= out.tampered
            mode = mode or out.mode
            for segment, errors in out.errors.items():
                for q in segment_questions.get(segment, []):
                    notes.setdefault(q, []).extend(e for e in errors if e not in notes.get(q, []))
            failed = out.segment if not out.done else None
            if failed is not None:
                # A thread or process left running by an earlier question may be what ended the
                # run: blame the earliest such question first (a rerun without it settles it).
                earlier = [s for s in out.background if s < failed and s not in skip]
                if earlier:
                    failed = min(earlier)
            for q, facts in out.observations.items():
                spec = job.question(q)
                if spec is None or q in status:
                    continue
                if failed is None or spec.segment < failed:
                    observations[q], status[q] = facts, (Status.GRADED, "")
                    stale[q] = out.stale.get(q, {})
            if out.done:
                break
            if out.status is Status.SANDBOX_FAILED:
                setup_error = out.setup_error or "the run exited before it was isolated"
                break
            if failed is None or failed in skip:
                for q in job.questions:   # nothing ran at all: the run itself could not start
                    status.setdefault(q.name, (out.status or Status.NOT_RUN, out.detail))
                break
            for q in segment_questions.get(failed, []):
                status.setdefault(q, (out.status, out.detail))
            skip.append(failed)
            if time.monotonic() >= deadline:
                for q in job.questions:
                    status.setdefault(q.name, (Status.TIMED_OUT, ""))
                break
        for q in job.questions:
            if not q.checked:
                status[q.name] = (Status.NOT_CHECKED, "")
                observations.pop(q.name, None)
            status.setdefault(q.name, (Status.NOT_REACHED, ""))
            if status[q.name][0] is Status.GRADED and "MemoryError" in notes.get(q.name, []):
                status[q.name] = (Status.MEMORY_LIMIT, "")
        return RunAnswer(id=job.id, observations=observations, stale=stale, status=status, notes=notes,
                         tampered=tampered, runs=runs, mode=mode,
                         seconds=round(time.monotonic() - started, 4), setup_error=setup_error)

    def close(self) -> None:
        try:
            self.control.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.cgroup is not None:
            self.cgroup.remove()


class WorkerDied(Exception):
    """The worker process itself went away (not the student's run)."""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class WorkerPool:
    """N workers pulling jobs from one queue; answers come back in completion order."""

    def __init__(self, size: int, public_dir: Path, sandboxed: bool, limits=None) -> None:
        self.size, self.public_dir, self.sandboxed, self.limits = size, public_dir, sandboxed, limits
        self.jobs: queue.Queue = queue.Queue(maxsize=size * 4)
        self.answers: queue.Queue = queue.Queue()
        # Started from this thread on purpose: bwrap --die-with-parent watches the thread that
        # spawned it, so a worker started from a short-lived thread would be killed with it.
        # The workers warm up (import torch...) while the caller prepares; start() waits for them.
        self.workers = [Worker(slot, public_dir, sandboxed, limits) for slot in range(size)]
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        try:
            for worker in self.workers:
                worker.wait_ready()
        except Exception:
            self.close()
            raise
        self.threads = [threading.Thread(target=self._serve, args=(w,), daemon=True) for w in self.workers]
        for t in self.threads:
            t.start()

    def _serve(self, worker: Worker) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            answer = None
            for attempt in range(2):   # the worker itself died (not the student's run): restart, retry once
                try:
                    answer = worker.grade(job)
                    break
                except (WorkerDied, OSError):
                    worker.close()
                    try:
                        worker = Worker(worker.slot, self.public_dir, self.sandboxed, self.limits)
                        worker.wait_ready()
                    except Exception:
                        break
            if answer is None:
                answer = RunAnswer(id=job.id, observations={}, status={}, notes={}, tampered=False,
                                   runs=0, mode="", seconds=0.0,
                                   error="the grading worker crashed twice on this submission")
            self.answers.put(answer)

    def submit(self, job: Job) -> None:
        self.jobs.put(job)

    def close(self) -> None:
        for _ in self.threads:
            self.jobs.put(None)
        for t in self.threads:
            t.join(timeout=30)
        for w in self.workers:
            w.close()
