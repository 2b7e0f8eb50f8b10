"""No run of student code can see another submission's data: persistence across runs.

The requirement: no process that runs student code ever holds another submission's data; each
run gets its own user namespace (or a uid no other run uses) and a seccomp filter. This file
checks it from the student's side, with three notebooks made at test time from the blank
template (hostile code appended to answer cells; the source screen flags them, but they still
run in the sandbox, which is what is tested):

- ``a_writer.ipynb`` holds a random secret (made by the test, ``XRUNLEAK`` + 32 hex digits)
  and leaves it behind through every channel we could think of:

  * files: ``/tmp``, ``/var/tmp``, ``/dev/shm``, ``$HOME``, the cwd, ``/``, ``/dev``,
    ``/dev/pts``, ``/run``, every ``sys.path`` entry, every mount that is not read-only (named
    after the secret and holding it), a nested folder, a FIFO, a file-bound unix socket, POSIX
    shared memory and a POSIX semaphore named after the secret;
  * IPC: SysV shared memory (a known key and IPC_PRIVATE, left attached), a SysV message queue
    holding the secret, a SysV semaphore set, a POSIX message queue holding the secret and a
    fixed-name POSIX semaphore;
  * kernel keyrings (ctypes ``add_key``/``keyctl`` syscalls into the thread, process, session,
    user, user-session, a named session and the persistent keyring; the writer records whether
    any of them worked, they are expected to be refused by the seccomp filter);
  * leftover processes: a double-forked, setsid daemon (renamed ``xrunleakd``) that listens on
    an abstract unix socket with a fixed name (it answers with the secret) and on one named
    after the secret, holds a pty whose input queue holds the secret, and sleeps; and an
    exec'd ``sleep`` whose argv[0] and environment are the secret; also ``sethostname``;
  * its own memory: module attributes (``builtins``, ``torch``, a fake ``sys.modules`` entry),
    ``os.environ``, a 20 000-string hoard, large bytes/bytearray/ctypes/mmap/tensor buffers,
    1-, 2- and 4-byte-per-character strings, a freed 8 MB string and a thread holding it.

- ``b_reader.ipynb`` knows only the marker (written split, so its own code never holds it
  whole) and the fixed names, and searches every channel: the files above (walking every
  writable mount, reading file contents), ``shmget``/``msgget``/``semget`` on the keys and every
  segment and queue listed in ``/proc/sysvipc``, ``mq_open``/``sem_open``, keyring
  search/read/``request_key``/joining the named keyring/the persistent keyring and
  ``/proc/keys``; connecting to the abstract socket, ``/proc/net/unix``, every process in
  ``/proc`` (cmdline, comm, environ, status, threads, and its ``/proc/PID/root/tmp``,
  ``root/dev/shm`` and ``cwd``: another run's mount namespace), ``/dev/pts``, the hostname;
  and, first of all (before the other probes copy anything into it), its own
  process: the ``sys._getframe()`` chain (a run is forked from the worker's job loop, so the
  child's stack is the worker's), every module's namespace, ``gc.get_objects()`` and
  ``sys._current_frames()`` (refused in graded runs, tried anyway), the environment, every open
  fd, and every readable private mapping of its memory (``/proc/self/mem``, or, as that is
  closed, copied through a pipe with ``write(2)``, which fails with EFAULT instead of crashing).
  It looks for the marker followed by 32 hex digits stored with 1, 2 or 4 bytes a character.

- ``c_self.ipynb`` (the control) plants its own secret with the writer's code and then runs
  the reader's search in the same run, where everything it planted is legitimately visible.
  Without it a reader that finds nothing would prove nothing.

The only output of a run is its score, so each notebook answers its questions correctly or
leaves them blank to say one bit each (a question at full marks means "yes", at 0 "no"):

    question  reader / control                  writer
    q1        found the secret anywhere         planted somewhere
    q2        the search ran to its end         planting ran to its end
    q3        found it in files                 planted in the required files
    q4        found it in IPC objects           planted every IPC object
    q5        found it in a keyring             some keyring took it
    q6        found a process/socket/pty/host   daemons and sockets are up
    q7        found it in its own memory        planted in memory
    q8        own user ns, seccomp, no caps     own user ns, seccomp, no caps

Batch one grades the writer then the reader in one worker (containers=1, runs in file-name
order); batch two, in a fresh output folder, grades a reader then the control. The points read
are those the questions were graded with (``.question(q).points``): the screen flags all three
files, so their totals count 0. A thread watching the host's /proc during the batches notes the
host uid and user namespace of every run (a fresh uid for every run), and last the host itself
is searched for the planted secrets.

The hostile code only ever runs inside the grader's sandbox: this file builds it as strings
and writes notebooks to tmp_path; it never executes it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
import time
from pathlib import Path

import pytest

from conftest import AUTOGRADER_ZIP, TEMPLATE

from autograder.grade import Limits, grade_batch

MARKER = "XRUNLEAK"
QUESTIONS = [f"q{n}" for n in range(1, 9)]
LIMITS = Limits(question_timeout=10, timeout=40)
GROUPS = {"q3": "files", "q4": "ipc", "q5": "keyring", "q6": "kernel", "q7": "memory"}
MEANING = {"q1": "found anywhere", "q2": "ran to its end", "q3": "files", "q4": "IPC objects",
           "q5": "keyrings", "q6": "processes/sockets/ptys/hostname", "q7": "own memory",
           "q8": "isolated (own user ns, seccomp, no caps)"}

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not AUTOGRADER_ZIP.exists(),
                                reason="the sandbox needs root and the built autograder zip")

# ----------------------------------------------------------------------------- notebook code
# Shared by every notebook. Nothing here holds the marker whole ("XRUN" + "LEAK").

HELPERS = r'''
import builtins, ctypes, errno, fcntl, gc, mmap, os, platform, socket, stat, sys, threading, time, types
_xl = ctypes.CDLL(None, use_errno=True)
_XM = "XRUN" + "LEAK"
_XHEX = frozenset("0123456789abcdef")
_XSHM_KEY, _XMSG_KEY, _XSEM_KEY = 0x58524E31, 0x58524E32, 0x58524E33
_XKEYS = (_XSHM_KEY, _XMSG_KEY, _XSEM_KEY)
_XMQ, _XPSEM = b"/xrun-leak-mq", b"/xrun-leak-sem"
_XSOCK = b"\0xrun-leak-sock"
_XKEYDESC, _XRINGNAME = b"xrun-leak-key", b"xrun-leak-ring"
_XRINGS = (-1, -2, -3, -4, -5)   # thread, process, session, user, user-session keyrings
_XNR = {"x86_64": (248, 249, 250), "aarch64": (217, 218, 219)}.get(platform.machine(), (248, 249, 250))
_XNR_ADD_KEY, _XNR_REQUEST_KEY, _XNR_KEYCTL = _XNR
_XC = ctypes.c_long
_xl.syscall.restype = ctypes.c_long
_xl.shmat.restype = ctypes.c_void_p
_xl.shmat.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_int)
_xl.shmdt.argtypes = (ctypes.c_void_p,)
_xl.sem_open.restype = ctypes.c_void_p
_xl.msgrcv.restype = ctypes.c_ssize_t
_xl.mq_receive.restype = ctypes.c_ssize_t
_xl.write.restype = ctypes.c_ssize_t
_xl.write.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t)
_XBAD_PTR = ctypes.c_void_p(-1).value


def _xfind(data):
    """True when data holds the marker and then 32 lowercase hex digits, as 1-, 2- or 4-byte
    characters (how CPython stores str, and ASCII bytes)."""
    if isinstance(data, str):
        if _XM not in data:
            return False
        data = data.encode("utf-8", "replace")
    elif isinstance(data, memoryview):
        data = data.tobytes()
    for enc, width in (("ascii", 1), ("utf-16-le", 2), ("utf-32-le", 4)):
        m = _XM.encode(enc)
        i = data.find(m)
        while i >= 0:
            start = i + len(m)
            try:
                t = bytes(data[start:start + 32 * width]).decode(enc)
            except UnicodeDecodeError:
                t = ""
            if len(t) == 32 and set(t) <= _XHEX:
                return True
            i = data.find(m, i + 1)
    return False


def _xread(path, limit=1 << 20):
    with open(path, "rb") as f:
        return f.read(limit)


def _xrw_mounts():
    """Mount points that are not read-only (where anything could persist), /proc and /sys aside."""
    out = set()
    try:
        for line in open("/proc/self/mountinfo"):
            f = line.split()
            if "rw" in f[5].split(",") and not f[4].startswith(("/proc", "/sys")) and os.path.isdir(f[4]):
                out.add(f[4])
    except (OSError, IndexError):
        pass
    return out


def _xplaces():
    """Folders a run could write to or read from (whether or not it may)."""
    out = {"/tmp", "/var/tmp", "/dev/shm", "/dev", "/dev/pts", "/dev/mqueue", "/", "/run",
           "/run/lock", "/var/lock", "/var/run", os.path.expanduser("~"), os.getcwd(),
           os.path.dirname(os.__file__), sys.prefix}
    out.update(p for p in sys.path if p)
    return out


def _xkeyctl(*args):
    return _xl.syscall(_XC(_XNR_KEYCTL), *args)


def _xisolated():
    """Own user namespace with one uid mapped, seccomp filter on, no new privileges, no
    capabilities, and the filter refuses keyctl."""
    st = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
    uid_map = open("/proc/self/uid_map").read().split()
    ctypes.set_errno(0)
    keyctl = _xkeyctl(_XC(0), _XC(-4), _XC(0))   # KEYCTL_GET_KEYRING_ID(user keyring)
    keyctl_refused = keyctl < 0 and ctypes.get_errno() == errno.EPERM
    return (st.get("Seccomp", "").strip() == "2" and st.get("NoNewPrivs", "").strip() == "1"
            and int(st.get("CapEff", "1").strip(), 16) == 0
            and len(uid_map) == 3 and uid_map[2] == "1" and keyctl_refused)
'''

PLANT = r'''
_XREQUIRED = {
    "files": ["/tmp", "/dev/shm", "cwd", "home", "nested", "fifo", "posix_shm", "posix_sem_named"],
    "ipc": ["sysv_shm", "sysv_msg", "sysv_sem", "posix_mq", "posix_sem"],
    "kernel": ["daemon", "exec_daemon"],
    "memory": ["memory"],
}


def _xhold(secret, seconds):
    held = [secret] * 10   # a live frame holding the secret in another thread
    time.sleep(seconds)
    return held


def _xclose_fds(keep=()):
    for fd in [int(n) for n in os.listdir("/proc/self/fd") if n.isdigit()]:
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _xdaemon(secret):
    """A double-forked, setsid daemon holding abstract sockets and a pty; True once it is up."""
    sb = secret.encode()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            if os.fork():
                os._exit(0)
            _xclose_fds(keep=(w,))
            _xl.prctl(15, b"xrunleakd", 0, 0, 0)   # PR_SET_NAME
            fixed = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            fixed.bind(_XSOCK)
            fixed.listen(8)
            named = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            named.bind(b"\0" + sb)
            named.listen(1)
            bound = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            bound.bind("/tmp/" + secret + ".sock")
            bound.listen(1)
            master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY)
            _xl.grantpt(master)
            _xl.unlockpt(master)
            os.write(master, sb + b"\n")
            os.write(w, b"1")
            os.close(w)
            fixed.settimeout(0.5)
            end = time.time() + 100
            while time.time() < end:
                try:
                    conn, _ = fixed.accept()
                except OSError:
                    continue
                try:
                    conn.sendall(sb)
                finally:
                    conn.close()
        finally:
            os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    try:
        return os.read(r, 1) == b"1"
    finally:
        os.close(r)


def _xexec_daemon(secret):
    """A setsid `sleep` whose argv[0] and environment are the secret; True once /proc shows it."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            if os.fork():
                os._exit(0)
            _xclose_fds()
            os.execve("/bin/sleep", [secret, "100"], {"XRUN_SECRET": secret})
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    end = time.time() + 3
    while time.time() < end:
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    if _xread("/proc/%s/cmdline" % p).startswith(secret.encode()):
                        return True
                except OSError:
                    pass
        time.sleep(0.05)
    return False


def _xplant(secret):
    """Leave the secret everywhere; {group: [what worked]}."""
    sb = secret.encode()
    done = {"files": [], "ipc": [], "keyring": [], "kernel": [], "memory": []}

    def attempt(group, what, fn):
        try:
            if fn() is not False:
                done[group].append(what)
        except Exception:
            pass

    # ---- files, wherever a later run might look
    def write_in(folder):
        wrote = False
        for name in (secret + ".txt", ".xrun-leak"):
            try:
                with open(os.path.join(folder, name), "w") as f:
                    f.write(secret)
                wrote = True
            except OSError:
                pass
        return wrote

    home, cwd = os.path.expanduser("~"), os.getcwd()
    for folder in sorted(_xplaces() | _xrw_mounts()):
        attempt("files", folder, lambda folder=folder: write_in(folder))
    attempt("files", "home", lambda: write_in(home))
    attempt("files", "cwd", lambda: write_in(cwd))

    def nested():
        folder = "/tmp/xrun-leak-dir/a/b"
        os.makedirs(folder)
        with open(folder + "/data.bin", "wb") as f:
            f.write(b"\0" * 100 + sb)

    attempt("files", "nested", nested)
    attempt("files", "fifo", lambda: os.mkfifo("/tmp/" + secret + ".fifo"))

    def posix_shm():
        fd = _xl.shm_open(b"/" + sb + b".pshm", os.O_CREAT | os.O_RDWR, 0o666)
        if fd < 0:
            return False
        os.write(fd, sb)
        return True

    attempt("files", "posix_shm", posix_shm)
    attempt("files", "posix_sem_named", lambda: bool(_xl.sem_open(b"/" + sb, os.O_CREAT, 0o666, 1)))

    # ---- SysV and POSIX IPC
    def sysv_shm():
        ok = False
        for key in (_XSHM_KEY, 0):   # a known key and IPC_PRIVATE; left attached, never removed
            shmid = _xl.shmget(key, ctypes.c_size_t(4096), 0o1000 | 0o666)
            if shmid < 0:
                continue
            addr = _xl.shmat(shmid, None, 0)
            if addr in (None, _XBAD_PTR):
                continue
            ctypes.memmove(addr, sb, len(sb))
            ok = True
        return ok

    class _Msg(ctypes.Structure):
        _fields_ = [("mtype", ctypes.c_long), ("mtext", ctypes.c_char * 256)]

    def sysv_msg():
        q = _xl.msgget(_XMSG_KEY, 0o1000 | 0o666)
        return q >= 0 and _xl.msgsnd(q, ctypes.byref(_Msg(1, sb)), ctypes.c_size_t(len(sb)), 0o4000) == 0

    def posix_mq():
        q = _xl.mq_open(_XMQ, os.O_CREAT | os.O_RDWR, 0o666, None)
        return q >= 0 and _xl.mq_send(q, sb, ctypes.c_size_t(len(sb)), 0) == 0

    attempt("ipc", "sysv_shm", sysv_shm)
    attempt("ipc", "sysv_msg", sysv_msg)
    attempt("ipc", "sysv_sem", lambda: _xl.semget(_XSEM_KEY, 1, 0o1000 | 0o666) >= 0)
    attempt("ipc", "posix_mq", posix_mq)
    attempt("ipc", "posix_sem", lambda: bool(_xl.sem_open(_XPSEM, os.O_CREAT, 0o666, 1)))

    # ---- kernel keyrings (shared per uid unless the user namespace is new)
    def add_key(desc, ring):
        return _xl.syscall(_XC(_XNR_ADD_KEY), b"user", desc, sb, ctypes.c_size_t(len(sb)), _XC(ring)) >= 0

    for ring in _XRINGS:
        attempt("keyring", "ring %d" % ring, lambda ring=ring: add_key(_XKEYDESC, ring) | add_key(sb, ring))

    def named_ring():
        ring = _xkeyctl(_XC(1), _XRINGNAME)   # KEYCTL_JOIN_SESSION_KEYRING
        return ring >= 0 and add_key(_XKEYDESC, ring)

    def persistent_ring():
        ring = _xkeyctl(_XC(22), _XC(-1), _XC(-4))   # KEYCTL_GET_PERSISTENT
        return ring >= 0 and add_key(_XKEYDESC, ring)

    attempt("keyring", "named", named_ring)
    attempt("keyring", "persistent", persistent_ring)

    # ---- processes, sockets, ptys, the hostname
    attempt("kernel", "daemon", lambda: _xdaemon(secret))
    attempt("kernel", "exec_daemon", lambda: _xexec_daemon(secret))
    attempt("kernel", "hostname", lambda: _xl.sethostname(sb, ctypes.c_size_t(len(sb))) == 0)

    # ---- this process's memory
    def memory():
        import torch
        g = globals()
        builtins._xrun_secret = secret
        torch._xrun_secret = secret
        module = types.ModuleType("xrun_leak")
        module.secret = secret
        sys.modules["xrun_leak"] = module
        os.environ["XRUN_SECRET"] = secret
        g["_XHOARD"] = [secret + "/" + str(i) for i in range(20000)]
        g["_XBYTES"] = sb * 4096
        g["_XBA"] = bytearray(sb * 4096)
        g["_XCBUF"] = ctypes.create_string_buffer(sb * 1024)
        g["_XWIDE"] = [("\u20ac" + secret) * 50, ("\U0001F600" + secret) * 50]
        mm = mmap.mmap(-1, 1 << 20)
        mm.write(sb * 1000)
        g["_XMMAP"] = mm
        g["_XTENSOR"] = torch.tensor(list(sb) * 100, dtype=torch.uint8)
        junk = secret * 200000   # ~8 MB, freed at once: its bytes stay behind in freed memory
        del junk
        threading.Thread(target=_xhold, args=(secret, 60), daemon=True).start()

    attempt("memory", "memory", memory)
    return done
'''

DETECT = r'''
def _xwalk(roots, limit=400000):
    """Search Python objects reachable from roots (dicts, sequences, modules, instance dicts)."""
    stack = [(r, 0) for r in roots]
    seen = set()
    n = 0
    while stack and n < limit:
        o, depth = stack.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        n += 1
        t = type(o)
        if t in (str, bytes, bytearray):
            if _xfind(o):
                return True
            continue
        if depth >= 5:
            continue
        try:
            if t is dict:
                items = list(o.items())
                stack.extend((k, depth + 1) for k, _ in items if type(k) in (str, bytes))
                stack.extend((v, depth + 1) for _, v in items)
            elif t in (list, tuple, set, frozenset):
                stack.extend((v, depth + 1) for v in list(o))
            elif isinstance(o, types.ModuleType):
                stack.append((vars(o), depth))
            elif isinstance(o, types.FrameType):
                stack.append((o.f_locals, depth + 1))
                stack.append((o.f_back, depth))
            else:
                d = getattr(o, "__dict__", None)
                if type(d) is dict:
                    stack.append((d, depth + 1))
        except Exception:
            continue
    return False


def _xscan_memory():
    """Every readable private mapping of this process: via /proc/self/mem if it opens, else
    copied out through a pipe with write(2) (EFAULT, never a crash, on an unmapped page)."""
    regions = []
    for line in open("/proc/self/maps").read().splitlines():
        parts = line.split(None, 5)
        lo, hi = (int(v, 16) for v in parts[0].split("-"))
        perms, path = parts[1], (parts[5].strip() if len(parts) > 5 else "")
        if perms[0] != "r" or perms[3] != "p" or path.startswith(("[vvar", "[vdso", "[vsyscall")):
            continue
        if path and not path.startswith("[") and perms[1] != "w":
            continue   # read-only file mappings (code, constants) hold nothing written at run time
        regions.append((lo, hi))
    chunk, overlap = 1 << 20, 256
    try:
        fd = os.open("/proc/self/mem", os.O_RDONLY)
        read = lambda addr, size: os.pread(fd, size, addr)
        close = lambda: os.close(fd)
    except OSError:
        r, w = os.pipe()
        try:
            fcntl.fcntl(w, 1031, chunk)   # F_SETPIPE_SZ
        except OSError:
            pass
        chunk = fcntl.fcntl(w, 1032)      # F_GETPIPE_SZ
        os.set_blocking(w, False)

        def read(addr, size):
            got = _xl.write(w, ctypes.c_void_p(addr), size)
            if got <= 0:
                raise OSError(ctypes.get_errno(), "unreadable")
            return os.read(r, got)

        def close():
            os.close(r)
            os.close(w)
    try:
        for lo, hi in regions:
            addr = lo
            while addr < hi:
                size = min(chunk, hi - addr)
                try:
                    data = read(addr, size)
                except OSError:
                    addr += 4096
                    continue
                if _xfind(data):
                    return True
                addr += max(len(data) - overlap, 1) if len(data) == size and addr + size < hi else len(data)
    finally:
        close()
    return False


def _xscan_files():
    """Names and contents of files in every writable mount (walked) and the other places (listed)."""
    found = []
    budget = [60000]

    def walk(folder, dev, deep):
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return
        for e in entries:
            budget[0] -= 1
            if budget[0] < 0:
                return
            if _xfind(e.name) or "xrun-leak" in e.name:
                found.append(e.path)
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                try:
                    if _xfind(_xread(e.path)):
                        found.append(e.path)
                except OSError:
                    pass
            elif stat.S_ISDIR(st.st_mode) and deep and st.st_dev == dev and e.path not in ("/proc", "/sys"):
                walk(e.path, dev, deep)

    for root in sorted(_xrw_mounts()):
        walk(root, os.stat(root).st_dev, True)
    # other processes' mount namespaces (a surviving process of another run would be one)
    me = str(os.getpid())
    for p in [p for p in os.listdir("/proc") if p.isdigit() and p != me]:
        for root in ("/proc/%s/root/tmp" % p, "/proc/%s/root/dev/shm" % p, "/proc/%s/cwd" % p):
            try:
                # only a writable filesystem can hold what a run left: walk those, list the rest
                deep = not os.statvfs(root).f_flag & os.ST_RDONLY
                walk(root, os.stat(root).st_dev, deep)
            except OSError:
                pass
    for root in sorted(_xplaces()):
        try:
            walk(root, os.stat(root).st_dev, False)
        except OSError:
            pass
    return found


def _xdetect():
    """Search every channel; {group: [what found the secret]}."""
    hits = {"files": [], "ipc": [], "keyring": [], "kernel": [], "memory": []}

    def probe(group, what, fn):
        try:
            if fn():
                hits[group].append(what)
        except Exception:
            pass

    # ---- this process first (before the other probes copy anything into it): frames,
    # modules, the gc, threads, environment, fds, raw memory
    probe("memory", "frames", lambda: _xwalk([sys._getframe()]))
    probe("memory", "modules", lambda: _xwalk([builtins] + list(sys.modules.values())))

    def gc_objects():
        # str and bytes are not tracked by the gc: search the containers it does track
        for o in gc.get_objects():
            t = type(o)
            if t is dict:
                values = list(o.keys()) + list(o.values())
            elif t in (list, tuple, set, frozenset):
                values = list(o)
            else:
                continue
            if any(type(v) in (str, bytes, bytearray) and _xfind(v) for v in values):
                return True
        return False

    probe("memory", "gc", gc_objects)
    probe("memory", "threads", lambda: _xwalk(list(sys._current_frames().values())))
    probe("memory", "environ", lambda: _xwalk([dict(os.environ)]) or _xfind(_xread("/proc/self/environ")))
    probe("memory", "cmdline", lambda: _xfind(_xread("/proc/self/cmdline")))

    def fds():
        listing = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
        try:
            numbers = [int(n) for n in os.listdir(listing) if n.isdigit()]
        finally:
            os.close(listing)
        for fd in numbers:
            try:
                st = os.fstat(fd)
                if stat.S_ISREG(st.st_mode):
                    if _xfind(os.pread(fd, 1 << 20, 0)):
                        return True
                elif stat.S_ISSOCK(st.st_mode):
                    s = socket.socket(fileno=os.dup(fd))
                    try:
                        if _xfind(s.recv(1 << 16, socket.MSG_DONTWAIT | socket.MSG_PEEK)):
                            return True
                    finally:
                        s.close()
            except OSError:
                continue
        return False

    probe("memory", "fds", fds)
    probe("memory", "raw memory", _xscan_memory)

    probe("files", "files", _xscan_files)

    # ---- SysV and POSIX IPC
    def sysvipc_listed(kind):
        rows = []
        for line in open("/proc/sysvipc/" + kind).read().splitlines()[1:]:
            f = line.split()
            if len(f) > 1:
                rows.append((int(f[0]), int(f[1])))
        return rows

    def sysv_shm():
        found = False
        ids = set()
        shmid = _xl.shmget(_XSHM_KEY, ctypes.c_size_t(0), 0)
        if shmid >= 0:
            found = True
            ids.add(shmid)
        for key, shmid in sysvipc_listed("shm"):
            found |= key in _XKEYS
            ids.add(shmid)
        for shmid in ids:
            addr = _xl.shmat(shmid, None, 0o10000)   # SHM_RDONLY
            if addr not in (None, _XBAD_PTR):
                found |= _xfind(ctypes.string_at(addr, 4096))
                _xl.shmdt(addr)
        return found

    class _Msg(ctypes.Structure):
        _fields_ = [("mtype", ctypes.c_long), ("mtext", ctypes.c_char * 8192)]

    def sysv_msg():
        found = False
        ids = set()
        q = _xl.msgget(_XMSG_KEY, 0)
        if q >= 0:
            found = True
            ids.add(q)
        for key, q in sysvipc_listed("msg"):
            found |= key in _XKEYS
            ids.add(q)
        for q in ids:
            m = _Msg()
            while _xl.msgrcv(q, ctypes.byref(m), ctypes.c_size_t(8192), _XC(0), 0o4000 | 0o10000) >= 0:
                found |= _xfind(bytes(m.mtext))
        return found

    def sysv_sem():
        return _xl.semget(_XSEM_KEY, 0, 0) >= 0 or any(k in _XKEYS for k, _ in sysvipc_listed("sem"))

    def posix_mq():
        q = _xl.mq_open(_XMQ, os.O_RDONLY | os.O_NONBLOCK)
        if q < 0:
            return False
        buf = ctypes.create_string_buffer(1 << 16)
        _xl.mq_receive(q, buf, ctypes.c_size_t(1 << 16), None)
        return True

    probe("ipc", "sysv_shm", sysv_shm)
    probe("ipc", "sysv_msg", sysv_msg)
    probe("ipc", "sysv_sem", sysv_sem)
    probe("ipc", "posix_mq", posix_mq)
    probe("ipc", "posix_sem", lambda: bool(_xl.sem_open(_XPSEM, 0)))

    # ---- keyrings
    def read_key(key):
        buf = ctypes.create_string_buffer(4096)
        got = _xkeyctl(_XC(11), _XC(key), buf, _XC(4096))   # KEYCTL_READ
        return got >= 0

    def search(ring):
        key = _xkeyctl(_XC(10), _XC(ring), b"user", _XKEYDESC, _XC(0))   # KEYCTL_SEARCH
        return key >= 0 and (read_key(key) or True)

    for ring in _XRINGS:
        probe("keyring", "search %d" % ring, lambda ring=ring: search(ring))
    probe("keyring", "request_key",
          lambda: _xl.syscall(_XC(_XNR_REQUEST_KEY), b"user", _XKEYDESC, None, _XC(0)) >= 0)
    probe("keyring", "named", lambda: _xkeyctl(_XC(1), _XRINGNAME) >= 0 and search(-3))
    probe("keyring", "persistent",
          lambda: (lambda ring: ring >= 0 and search(ring))(_xkeyctl(_XC(22), _XC(-1), _XC(0))))
    probe("keyring", "/proc/keys",
          lambda: (lambda text: _xfind(text) or b"xrun-leak" in text)(_xread("/proc/keys")))

    # ---- processes, sockets, ptys, hostname
    def abstract_socket():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(2.0)
        try:
            s.connect(_XSOCK)
            s.recv(256)
            return True
        finally:
            s.close()

    def processes():
        me = str(os.getpid())
        for p in os.listdir("/proc"):
            if not p.isdigit() or p == me:
                continue
            names = ["/proc/%s/%s" % (p, n) for n in ("cmdline", "comm", "environ", "status")]
            try:
                names += ["/proc/%s/task/%s/comm" % (p, t) for t in os.listdir("/proc/%s/task" % p)]
            except OSError:
                pass
            for name in names:
                try:
                    data = _xread(name)
                except OSError:
                    continue
                if _xfind(data) or b"xrunleakd" in data:
                    return True
        return False

    probe("kernel", "abstract_socket", abstract_socket)
    probe("kernel", "/proc/net/unix",
          lambda: (lambda text: _xfind(text) or b"xrun-leak" in text)(_xread("/proc/net/unix")))
    probe("kernel", "processes", processes)
    probe("kernel", "ptys", lambda: [n for n in os.listdir("/dev/pts") if n != "ptmx"])
    probe("kernel", "hostname", lambda: _xfind(" ".join(os.uname()))
          or _xfind(_xread("/proc/sys/kernel/hostname") + _xread("/proc/sys/kernel/domainname")))

    return hits
'''

ANSWERS = {
    "q1": "x = torch.tensor(2.0, requires_grad=True)\ny = x ** 2\ny.backward()",
    "q2": "x = torch.tensor(2.0, requires_grad=True)\ny = x ** 2 + 2 * x + 1\ny.backward()",
    "q3": "x = torch.tensor(1.0, requires_grad=True)\ny = 2 * x ** 3 + x\ny.backward()",
    "q4": ("class SQ(torch.autograd.Function):\n"
           "    @staticmethod\n"
           "    def forward(ctx, i):\n"
           "        ctx.save_for_backward(i)\n"
           "        return i ** 2\n\n"
           "    @staticmethod\n"
           "    def backward(ctx, grad_output):\n"
           "        (i,) = ctx.saved_tensors\n"
           "        return grad_output * 2 * i"),
    "q5": ("u = torch.tensor(1.0, requires_grad=True)\nv = torch.tensor(2.0, requires_grad=True)\n"
           "f = u * v + u ** 2\nf.backward()"),
    "q6": "x = torch.linspace(-10, 10, 10, requires_grad=True)\nY = x ** 2\ny = torch.sum(Y)\ny.backward()",
    "q7": "x = torch.linspace(-10, 10, 1000, requires_grad=True)\nY = torch.relu(x)\ny = torch.sum(Y)\ny.backward()",
    "q8": ("u = torch.tensor(2.0, requires_grad=True)\nv = torch.tensor(1.0, requires_grad=True)\n"
           "f = u * v + (u * v) ** 2\nf.backward()"),
}

WRITER_BODY = '''
_XBITS = {{}}
_XISOLATED = _xisolated()
_XDONE = _xplant({secret!r})
_XBITS = {{
    "q1": any(_XDONE.values()),
    "q3": set(_XREQUIRED["files"]) <= set(_XDONE["files"]),
    "q4": set(_XREQUIRED["ipc"]) <= set(_XDONE["ipc"]),
    "q5": bool(_XDONE["keyring"]),
    "q6": set(_XREQUIRED["kernel"]) <= set(_XDONE["kernel"]),
    "q7": set(_XREQUIRED["memory"]) <= set(_XDONE["memory"]),
    "q8": _XISOLATED,
}}
_XBITS["q2"] = True
'''

READER_BODY = '''
_XBITS = {}
_XISOLATED = _xisolated()
_XHITS = _xdetect()
_XBITS = {
    "q1": any(_XHITS.values()),
    "q3": bool(_XHITS["files"]),
    "q4": bool(_XHITS["ipc"]),
    "q5": bool(_XHITS["keyring"]),
    "q6": bool(_XHITS["kernel"]),
    "q7": bool(_XHITS["memory"]),
    "q8": _XISOLATED,
}
_XBITS["q2"] = True
'''

CONTROL_BODY = '''
_XBITS = {{}}
_XISOLATED = _xisolated()
_XDONE = _xplant({secret!r})
_XHITS = _xdetect()
_XBITS = {{
    "q1": any(_XHITS.values()),
    "q3": bool(_XHITS["files"]),
    "q4": bool(_XHITS["ipc"]),
    "q5": bool(_XHITS["keyring"]),
    "q6": bool(_XHITS["kernel"]),
    "q7": bool(_XHITS["memory"]),
    "q8": _XISOLATED,
}}
_XBITS["q2"] = True
'''


def _answer_if(question: str) -> str:
    """The question's correct answer, run only when the notebook's bit for it is set."""
    body = "\n".join("    " + line if line else "" for line in ANSWERS[question].splitlines())
    return f'\nif globals().get("_XBITS", {{}}).get("{question}"):\n{body}\n'


def _answer_cells(nb: dict) -> dict[str, int]:
    """question -> index of its answer cell: the code cell before its grader.check cell."""
    cells, found = nb["cells"], {}
    for i, cell in enumerate(cells):
        m = re.search(r'grader\.check\("(q\d)"\)', "".join(cell["source"]))
        if cell["cell_type"] == "code" and m:
            j = max(k for k in range(i) if cells[k]["cell_type"] == "code")
            found[m.group(1)] = j
    assert sorted(found) == QUESTIONS, found
    return found


def make_notebook(path: Path, code: str) -> Path:
    """The blank template with `code` appended to q1's answer cell and, in every answer cell,
    the correct answer guarded by that question's bit."""
    nb = json.loads(TEMPLATE.read_text(encoding="utf-8"))
    answers = _answer_cells(nb)
    assert "x = ..." in "".join(nb["cells"][answers["q1"]]["source"])
    for q, index in answers.items():
        cell = nb["cells"][index]
        source = "".join(cell["source"])
        if q == "q1":
            source += "\n" + code
        source += _answer_if(q)
        cell["source"] = source.splitlines(keepends=True)
        cell["outputs"], cell["execution_count"] = [], None
    path.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return path


def _secret() -> str:
    return MARKER + secrets.token_hex(16)


def bits(result) -> dict[str, bool]:
    """question -> the bit the notebook said (full marks: True, 0: False); partial is an error."""
    out = {}
    for q in QUESTIONS:
        qr = result.question(q)
        assert qr is not None, f"{result.file}: no result for {q}"
        assert qr.points in (0.0, qr.max_points), (
            f"{result.file}: {q} got {qr.points}/{qr.max_points} ({qr.status_text}); "
            "a bit must be 0 or full marks")
        out[q] = qr.points == qr.max_points and qr.max_points > 0
    return out


def _describe(result) -> str:
    b = bits(result)
    return f"{result.file}: " + ", ".join(f"{q} {MEANING[q]}={'yes' if b[q] else 'no'}" for q in QUESTIONS)


class RunWatcher(threading.Thread):
    """Watches the host's /proc while a batch runs and notes every run: a process cloned by a
    grading worker (a child of the worker running the worker's own executable, so not, say,
    the fc-list matplotlib starts while warming up; a worker is the python child of a bwrap
    this process started, running autograder.grade.worker). For each run: the host uid it ended up running as (the
    last one seen: a run starts with the worker's uid and switches before student code runs)
    and its user namespace."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.halt = threading.Event()
        self.me = str(os.getpid())
        self.workers: dict[str, str] = {}   # pid -> executable
        self.runs: dict[tuple[str, str], tuple[int, str]] = {}   # (pid, start time) -> (uid, userns)

    def run(self) -> None:
        while not self.halt.is_set():
            self.scan()
            time.sleep(0.005)

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=10)

    @staticmethod
    def _stat(pid: str) -> tuple[str, str, str] | None:
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        comm, rest = text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()
        return comm, rest[1], rest[19]   # comm, ppid, start time

    def _ours(self, pid: str) -> bool:
        """pid is a bwrap started by this process (directly, or bwrap's own child as the
        sandbox's init): other suites' workers on the same host are not counted."""
        for _ in range(2):
            stat = self._stat(pid)
            if stat is None or stat[0] != "bwrap":
                return False
            if stat[1] == self.me:
                return True
            pid = stat[1]
        return False

    def scan(self) -> None:
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or pid in self.workers:
                continue
            stat = self._stat(pid)
            if stat is None:
                continue
            comm, ppid, started = stat
            try:
                if ppid in self.workers:
                    if os.readlink(f"/proc/{pid}/exe") != self.workers[ppid]:
                        continue
                    uid = int(Path(f"/proc/{pid}/status").read_text().split("Uid:")[1].split()[0])
                    self.runs[(pid, started)] = (uid, os.readlink(f"/proc/{pid}/ns/user"))
                elif comm.startswith("python") and self._ours(ppid) \
                        and b"autograder.grade.worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    self.workers[pid] = os.readlink(f"/proc/{pid}/exe")
            except (OSError, IndexError, ValueError):
                continue


class Batch:
    def __init__(self, folder: Path, out: Path, secrets_: dict[str, str]) -> None:
        started = time.monotonic()
        self.inputs = sorted(p.name for p in folder.glob("*.ipynb"))
        watcher = RunWatcher()
        watcher.start()
        try:
            self.summary = grade_batch(AUTOGRADER_ZIP, [folder], out, containers=1, limits=LIMITS,
                                       progress=False)
        finally:
            watcher.stop()
        self.runs = dict(watcher.runs)
        self.seconds = time.monotonic() - started
        self.results = {r.file: r for r in self.summary.results}
        self.secrets = secrets_
        self.out = out


@pytest.fixture(scope="module")
def writer_secret() -> str:
    return _secret()


@pytest.fixture(scope="module")
def batch_one(tmp_path_factory, writer_secret) -> Batch:
    """The writer, then the reader, in one batch on one worker."""
    base = tmp_path_factory.mktemp("cross_run_one")
    folder = base / "submissions"
    folder.mkdir()
    make_notebook(folder / "a_writer.ipynb", HELPERS + PLANT + WRITER_BODY.format(secret=writer_secret))
    make_notebook(folder / "b_reader.ipynb", HELPERS + DETECT + READER_BODY)
    return Batch(folder, base / "out", {"a_writer.ipynb": writer_secret})


@pytest.fixture(scope="module")
def batch_two(tmp_path_factory, batch_one) -> Batch:
    """After batch one: a reader, then the control, in a second batch (its own output folder)."""
    base = tmp_path_factory.mktemp("cross_run_two")
    folder = base / "submissions"
    folder.mkdir()
    control_secret = _secret()
    make_notebook(folder / "b_reader.ipynb", HELPERS + DETECT + READER_BODY)
    make_notebook(folder / "c_self.ipynb",
                  HELPERS + PLANT + DETECT + CONTROL_BODY.format(secret=control_secret))
    return Batch(folder, base / "out", {"c_self.ipynb": control_secret})


# ----------------------------------------------------------------------------------- tests


def test_notebooks_hold_the_secret_only_in_the_writer(tmp_path, writer_secret):
    """The reader's notebook never holds a secret or the whole marker: whatever it finds came
    from somewhere else."""
    reader = make_notebook(tmp_path / "b_reader.ipynb", HELPERS + DETECT + READER_BODY).read_text()
    writer = make_notebook(tmp_path / "a_writer.ipynb",
                           HELPERS + PLANT + WRITER_BODY.format(secret=writer_secret)).read_text()
    assert MARKER not in reader
    assert writer_secret in writer and writer.count(MARKER) == 1


def test_every_file_has_a_row_and_the_writer_planted(batch_one, batch_two):
    """Both batches finish with one result per file; the writer ran its planting to the end,
    in an isolated run, and every channel but the keyring (refused by the seccomp filter) took
    the secret, so the readers' searches below have something to find."""
    for batch in (batch_one, batch_two):
        assert sorted(batch.results) == batch.inputs, (batch.inputs, sorted(batch.results))
        assert len(batch.summary.results) == len(batch.inputs)
    writer = batch_one.results["a_writer.ipynb"]
    b = bits(writer)
    print(_describe(writer), f"(batch one {batch_one.seconds:.1f}s, batch two {batch_two.seconds:.1f}s)")
    assert b["q2"], f"the writer's planting did not run to its end: {_describe(writer)}"
    assert b["q8"], f"the writer's run was not isolated: {_describe(writer)}"
    missing = [MEANING[q] for q in ("q1", "q3", "q4", "q6", "q7") if not b[q]]
    assert not missing, f"the writer could not plant in: {missing} ({_describe(writer)})"
    # the keyring syscalls are refused (q8 includes that), so no keyring took the secret
    assert not b["q5"], f"a keyring took the writer's secret: {_describe(writer)}"


def test_control_finds_its_own_secret(batch_two):
    """The control plants its own secret and runs the reader's search in the same run: every
    channel's search finds what is there (keyrings: nothing is there, add_key is refused)."""
    control = batch_two.results["c_self.ipynb"]
    b = bits(control)
    print(_describe(control))
    assert b["q2"], f"the control's search did not run to its end: {_describe(control)}"
    assert b["q1"], f"the search found nothing the control planted: {_describe(control)}"
    missed = [MEANING[q] for q in ("q3", "q4", "q6", "q7") if not b[q]]
    assert not missed, f"the search missed what the control planted in: {missed}"
    assert b["q8"]


def _assert_reader_found_nothing(batch: Batch, where: str) -> None:
    reader = batch.results["b_reader.ipynb"]
    b = bits(reader)
    print(where, _describe(reader))
    q1 = reader.question("q1")
    assert b["q2"], f"the reader's search did not run to its end ({where}): {_describe(reader)}"
    assert b["q8"], f"the reader's run was not isolated ({where}): {_describe(reader)}"
    leaked = [MEANING[q] for q in GROUPS if b[q]]
    assert q1.points == 0 and not leaked, (
        f"LEAK {where}: the reader found the writer's secret (q1={q1.points}) via {leaked}")


def test_reader_after_writer_in_the_same_batch(batch_one):
    """Writer then reader on one worker (containers=1): the reader finds nothing."""
    _assert_reader_found_nothing(batch_one, "in the same batch")


def test_reader_in_a_later_batch(batch_one, batch_two):
    """Writer in batch one, reader in batch two: the reader finds nothing."""
    _assert_reader_found_nothing(batch_two, "in a later batch")


def test_no_trace_on_the_host(batch_one, batch_two):
    """Nothing the writer or the control planted reached the host: no process, file in the
    shared temp folders, SysV object, unix socket, key or hostname holds a secret or the fixed
    names."""
    planted = [*batch_one.secrets.values(), *batch_two.secrets.values()]
    secret_bytes = [p.encode() for p in planted]
    needles = secret_bytes + [b"xrunleakd", b"xrun-leak"]
    traces = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        for name in ("cmdline", "environ", "comm"):
            try:
                data = Path(f"/proc/{pid}/{name}").read_bytes()
            except OSError:
                continue
            if any(n in data for n in needles):
                traces.append(f"process {pid} {name}")
    for folder in ("/tmp", "/var/tmp", "/dev/shm", "/run", "/run/lock", os.path.expanduser("~")):
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for e in entries:
            if MARKER in e.name or "xrun-leak" in e.name:
                traces.append(e.path)
            try:
                if e.is_file(follow_symlinks=False) and e.stat().st_size < (1 << 20) \
                        and any(n in Path(e.path).read_bytes() for n in secret_bytes):
                    traces.append(e.path)
            except OSError:
                pass
    for kind in ("shm", "msg", "sem"):
        for line in Path(f"/proc/sysvipc/{kind}").read_text().splitlines()[1:]:
            if line.split() and int(line.split()[0]) in (0x58524E31, 0x58524E32, 0x58524E33):
                traces.append(f"sysv {kind}: {line}")
    for name in ("/proc/net/unix", "/proc/keys", "/proc/sys/kernel/hostname"):
        data = Path(name).read_bytes()
        if MARKER.encode() in data or any(n in data for n in needles):
            traces.append(name)
    assert not traces, traces


def test_every_run_has_its_own_uid_and_user_namespace(batch_one, batch_two):
    """Seen from the host while the batches ran: every run (the reader notebook's two runs in
    two batches too) ran as a host uid no other run used, never the worker's or root, in a
    user namespace other than the host's (and the worker's, which is the host's). (User
    namespace inode numbers are reused once a namespace is gone, so they cannot tell runs
    that follow each other apart; the uids can.)"""
    runs = {**batch_one.runs, **batch_two.runs}
    print(f"{len(runs)} runs seen (host uid, user namespace):", sorted(runs.values()))
    # each file is at least one run, and the watcher must not have missed any
    assert len(batch_one.runs) >= len(batch_one.inputs), batch_one.runs
    assert len(batch_two.runs) >= len(batch_two.inputs), batch_two.runs
    uids = [uid for uid, _ in runs.values()]
    assert 0 not in uids and os.getuid() not in uids, f"a run kept the worker's uid: {uids}"
    assert len(set(uids)) == len(uids), f"two runs shared a host uid: {sorted(uids)}"
    host_userns = os.readlink("/proc/self/ns/user")
    assert all(ns != host_userns for _, ns in runs.values()), f"a run in the host's user namespace: {runs}"
