"""Per-submission isolation, applied inside the worker's bubblewrap sandbox.

For every run of a submission the worker forks a child that is PID 1 of a fresh PID namespace
and enters fresh mount, network, IPC and UTS namespaces of its own; it mounts a private
scratch tmpfs and /proc, sets resource limits, drops to an unprivileged uid of its own and only
then runs student code. When that init exits or is killed, the kernel kills everything the
student started, so nothing outlives the run or reaches the next submission.
"""

from __future__ import annotations

import ctypes
import os
import resource
from dataclasses import dataclass

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x2, 0x4, 0x8
MS_REC, MS_PRIVATE = 0x4000, 0x40000
PR_SET_NO_NEW_PRIVS = 38
PR_SET_DUMPABLE = 4

SCRATCH = "/tmp/work"

_libc = ctypes.CDLL(None, use_errno=True)


class IsolationError(OSError):
    pass


@dataclass(frozen=True)
class Limits:
    """Resource limits for one submission; defaults sized for this lab."""

    question_timeout: float = 10.0  # wall seconds for one question's cells
    timeout: float = 60.0           # wall seconds for the whole submission (all runs)
    memory_mb: int = 1024           # address space on top of the warm interpreter
    processes: int = 64             # processes and threads of the submission's uid
    file_size_mb: int = 64          # largest file, and the scratch tmpfs size
    output_mb: int = 16             # observation records a run may send
    open_files: int = 256

    def to_plain(self) -> dict:
        return dict(self.__dict__)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise IsolationError(err, f"{what}: {os.strerror(err)}")


_own_pid_namespace: int | None = None


def children_in_new_pid_namespace() -> None:
    """The caller's next child becomes PID 1 of a fresh PID namespace (the caller stays put)."""
    global _own_pid_namespace
    if _own_pid_namespace is None:
        _own_pid_namespace = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    _check(_libc.unshare(CLONE_NEWPID), "unshare(CLONE_NEWPID)")


def children_in_own_pid_namespace() -> None:
    """Undo children_in_new_pid_namespace, so that it can be used again for the next run."""
    _check(_libc.setns(_own_pid_namespace, CLONE_NEWPID), "setns(CLONE_NEWPID)")


def unshare_namespaces() -> None:
    """For the calling process: its own mount, network, IPC and hostname namespaces."""
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS), "unshare")


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(_libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None,
                       ctypes.c_ulong(flags), data.encode() if data else None), f"mount {target}")


def _vm_size_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def prepare_init(uid: int, limits: Limits, cpu_seconds: int) -> None:
    """Run as PID 1 of the new namespaces, still privileged: scratch, /proc, limits, uid."""
    _mount("none", "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={limits.file_size_mb}m,mode=1777")
    if os.path.isdir("/dev/shm"):
        _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=1777")
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    with open("/proc/self/oom_score_adj", "w") as f:
        f.write("1000")   # if a limit is hit, the kernel kills the submission, not the worker
    os.mkdir(SCRATCH, 0o700)
    os.chown(SCRATCH, uid, uid)
    apply_limits(limits, cpu_seconds)
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    os.chdir(SCRATCH)


def apply_limits(limits: Limits, cpu_seconds: int) -> None:
    mem = _vm_size_bytes() + limits.memory_mb * 2**20
    fsize = limits.file_size_mb * 2**20
    for which, value in (
        (resource.RLIMIT_AS, mem),
        (resource.RLIMIT_NPROC, limits.processes),
        (resource.RLIMIT_FSIZE, fsize),
        (resource.RLIMIT_NOFILE, limits.open_files),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_CPU, cpu_seconds),
    ):
        resource.setrlimit(which, (value, value))
