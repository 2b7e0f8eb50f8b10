"""Warm workers in bubblewrap sandboxes, driven by the supervisor.

Each worker sees a read-only system (/usr, /etc, the Python install, the venv, this package),
a private /tmp, no network and no other processes; it does not see the hidden tests, the
output folder, the submissions or the user's home. It gets each submission's code over a
pipe and answers with plain observations (see worker.py).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from ..errors import UserError

_READY_TIMEOUT = 120


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


class Worker:
    """One warm worker process; one job at a time."""

    def __init__(self, slot: int, public_dir: Path, sandboxed: bool, limits=None) -> None:
        self.slot = slot
        self.cgroup = None
        if sandboxed and limits is not None:
            # the worker's own warm pages (~0.5 GB) are charged here too
            self.cgroup = SlotCgroup(slot, (limits.memory_mb + 768) * 2**20, limits.processes + 32)
        base = [sys.executable, "-m", "autograder.grade.worker", "--slot", str(slot),
                "--checks-dir", str(public_dir)]
        if sandboxed:
            command = bwrap_command(public_dir) + base
        else:
            command = base + ["--no-sandbox"]
        env = None if sandboxed else {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg",
                                      "PYTHONPATH": str(_package_root().parent)}
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, bufsize=1, env=env, preexec_fn=self.cgroup.join if self.cgroup else None)

    def wait_ready(self) -> None:
        ready = self._readline()
        if not ready or not json.loads(ready).get("ready"):
            self.close()
            raise SandboxUnavailable(
                "the grading sandbox did not start (bubblewrap failed or the worker crashed); "
                "check that `bwrap --ro-bind / / true` works here, or pass --no-sandbox")

    def _readline(self) -> str:
        return self.process.stdout.readline()

    def run(self, job: dict) -> dict | None:
        try:
            self.process.stdin.write(json.dumps(job) + "\n")
            self.process.stdin.flush()
            line = self._readline()
        except (BrokenPipeError, OSError):
            return None
        return json.loads(line) if line else None

    def close(self) -> None:
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.cgroup is not None:
            self.cgroup.remove()


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
            answer = worker.run(job)
            if answer is None:   # the worker itself died (not the student's run): restart, retry once
                worker.close()
                try:
                    worker = Worker(worker.slot, self.public_dir, self.sandboxed, self.limits)
                    worker.wait_ready()
                    answer = worker.run(job)
                except Exception:
                    answer = None
                if answer is None:
                    answer = {"id": job["id"], "error": "the grading worker crashed twice on this submission"}
            self.answers.put(answer)

    def submit(self, job: dict) -> None:
        self.jobs.put(job)

    def close(self) -> None:
        for _ in self.threads:
            self.jobs.put(None)
        for t in self.threads:
            t.join(timeout=30)
        for w in self.workers:
            w.close()
