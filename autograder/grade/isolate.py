"""Per-run isolation, applied inside the worker's bubblewrap sandbox.

The worker is a clean template: it has imported torch and never sees a job. For every run it
clones a child straight into fresh user, PID, mount, network, IPC and UTS namespaces (clone(2)
with CLONE_NEW* flags, so the child is PID 1 of a PID namespace its own user namespace owns).
The worker maps the child's one uid: a host uid no other run or batch uses when the worker is
root, the worker's own uid otherwise (then the fresh user namespace keeps keyrings and process
counts apart). The child mounts a private scratch tmpfs, /dev/shm and /proc, sets resource
limits, drops every capability, loads a seccomp filter, and only then runs student code.
When it exits or is killed, the kernel kills everything the run started.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import resource
import secrets
from dataclasses import dataclass

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
SIGCHLD = 17
RUN_NAMESPACES = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x2, 0x4, 0x8
MS_REC, MS_PRIVATE = 0x4000, 0x40000
PR_SET_NO_NEW_PRIVS = 38
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
LAST_CAP = 63
INSIDE_UID = 1000          # the run's uid inside its user namespace
UID_SPAN = (1 << 20, 1 << 30)   # host uids for runs when the worker is root: a fresh one per run

_SYSCALLS = {"x86_64": {"clone": 56, "capset": 126}, "aarch64": {"clone": 220, "capset": 91}}

SCRATCH = "/tmp/work"

_libc = ctypes.CDLL(None, use_errno=True)
_libc_keep_gil = ctypes.PyDLL(None, use_errno=True)   # the cloned child goes on as Python at once
_pyapi = ctypes.pythonapi


class IsolationError(OSError):
    pass


@dataclass(frozen=True)
class Limits:
    """Resource limits for one submission; defaults sized for this lab."""

    question_timeout: float = 10.0  # wall seconds for one question's cells
    timeout: float = 60.0           # wall seconds for the whole submission (all runs)
    memory_mb: int = 1024           # address space on top of the warm interpreter
    processes: int = 64             # processes and threads of the submission
    file_size_mb: int = 64          # largest file, and the scratch tmpfs size
    output_mb: int = 16             # observation records a run may send
    open_files: int = 256

    def to_plain(self) -> dict:
        return dict(self.__dict__)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise IsolationError(err, f"{what}: {os.strerror(err)}")


def _syscall_number(name: str) -> int:
    try:
        return _SYSCALLS[platform.machine()][name]
    except KeyError:
        raise IsolationError(errno.ENOSYS, f"no {name} syscall number for {platform.machine()}") from None


def clone_into_namespaces(flags: int = RUN_NAMESPACES) -> int:
    """fork(2) with the child in new namespaces: 0 in the child, its pid in the parent.

    The same steps os.fork() takes around fork(2), around a raw clone(2) instead (the caller
    must be single-threaded, as for any fork of a process that imported torch)."""
    number = _syscall_number("clone")
    _pyapi.PyOS_BeforeFork()
    pid = _libc_keep_gil.syscall(ctypes.c_long(number), ctypes.c_ulong(flags | SIGCHLD),
                                 ctypes.c_void_p(0), ctypes.c_void_p(0), ctypes.c_void_p(0),
                                 ctypes.c_void_p(0))
    if pid == 0:
        _pyapi.PyOS_AfterFork_Child()
        return 0
    err = ctypes.get_errno()
    _pyapi.PyOS_AfterFork_Parent()
    if pid < 0:
        raise IsolationError(err, f"clone: {os.strerror(err)}")
    return pid


def fresh_host_uid() -> int:
    return UID_SPAN[0] + secrets.randbelow(UID_SPAN[1] - UID_SPAN[0])


def map_ids(pid: int, host_uid: int, host_gid: int) -> None:
    """From the parent: the child's user namespace maps INSIDE_UID to one host uid and gid."""
    with open(f"/proc/{pid}/uid_map", "w") as f:
        f.write(f"{INSIDE_UID} {host_uid} 1\n")
    with open(f"/proc/{pid}/setgroups", "w") as f:
        f.write("deny")
    with open(f"/proc/{pid}/gid_map", "w") as f:
        f.write(f"{INSIDE_UID} {host_gid} 1\n")


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(_libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None,
                       ctypes.c_ulong(flags), data.encode() if data else None), f"mount {target}")


def _vm_size_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def drop_capabilities() -> None:
    """No capability left in the ambient, effective, permitted and inheritable sets."""
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = _CapHeader(0x20080522, 0)   # _LINUX_CAPABILITY_VERSION_3
    data = (_CapData * 2)()
    _check(_libc.syscall(ctypes.c_long(_syscall_number("capset")), ctypes.byref(header), data), "capset")


def prepare_run(limits: Limits, cpu_seconds: int, syscall_filter) -> None:
    """In the child, PID 1 of its namespaces, before any student code: scratch space, its uid,
    limits, no capabilities, no new privileges, the seccomp filter."""
    _mount("none", "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={limits.file_size_mb}m,mode=1777")
    if os.path.isdir("/dev/shm"):
        _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=1777")
    # /proc stays the worker's (the kernel refuses a new proc mount in a user namespace while
    # bubblewrap's proc has read-only overmounts): it shows this run's processes and the
    # worker, whose files are closed to the run (the worker is not dumpable).
    with open("/proc/self/oom_score_adj", "w") as f:
        f.write("1000")   # if a limit is hit, the kernel kills the submission, not the worker
    for cap in range(LAST_CAP + 1):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() == errno.EINVAL:
            break   # past the kernel's last capability
    os.setresgid(INSIDE_UID, INSIDE_UID, INSIDE_UID)
    os.setresuid(INSIDE_UID, INSIDE_UID, INSIDE_UID)
    drop_capabilities()
    os.mkdir(SCRATCH, 0o700)
    os.chdir(SCRATCH)
    apply_limits(limits, cpu_seconds)
    _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    syscall_filter.load()


def prepare_template() -> None:
    """In the worker, once: runs see it in /proc, so its memory, fds and environment are closed
    to them (not dumpable), and a root worker hands them no supplementary groups."""
    _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    if os.geteuid() == 0:
        os.setgroups([])


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


# ------------------------------------------------------------------------------ seccomp

# What a lab never needs: kernel keyrings (shared per uid), tracing and reading other
# processes, new namespaces and mounts, kernel modules and images, eBPF, perf, userfaultfd,
# io_uring (it bypasses this filter), personality and old x86 modes.
DENIED_SYSCALLS = (
    "add_key", "keyctl", "request_key",
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "perf_event_open", "bpf", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsmount",
    "fspick", "mount_setattr", "unshare", "setns",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot",
    "swapon", "swapoff", "syslog", "acct", "quotactl", "lookup_dcookie", "open_by_handle_at",
    "name_to_handle_at", "fanotify_init", "personality", "modify_ldt", "iopl", "ioperm",
    "vm86", "vm86old", "uselib", "nfsservctl",
)
_NAMESPACE_FLAGS = (CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER,
                    CLONE_NEWPID, CLONE_NEWNET)


def syscall_filter():
    """The run's seccomp filter (libseccomp through pyseccomp), built once, loaded per run."""
    import pyseccomp as seccomp

    f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for name in DENIED_SYSCALLS:
        try:
            f.add_rule(seccomp.ERRNO(errno.EPERM), name)
        except (RuntimeError, OSError, ValueError):
            continue   # not a syscall on this architecture
    # clone3 passes its flags in memory a filter cannot read: refuse it, so libc falls back to
    # clone, whose namespace flags are refused one by one.
    f.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    for flag in _NAMESPACE_FLAGS:
        f.add_rule(seccomp.ERRNO(errno.EPERM), "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    return f
