"""The warm worker: a clean template process that imports torch once and clones one isolated
child per submission run. It never reads a job.

Started by the supervisor inside a bubblewrap sandbox (read-only system, no network, no view
of the hidden tests, the output folder or other submissions). It talks to the supervisor over
one SOCK_SEQPACKET socket (--control-fd):

    supervisor -> worker   b"run HOST_UID" + [job pipe, record pipe, ...]   start a run
                           b"kill"                                       kill the running one
    worker -> supervisor   b"ready"   b"exit STATUS"

The run reads its job straight from the supervisor on the job pipe and writes its records
straight to the supervisor on the record pipe; the worker only forwards the two pipe ends to
the child it clones and closes its copies. So no process that runs student code holds another
submission's data: each run starts from the template, which has seen no job at all.

    python -m autograder.grade.worker --checks-dir DIR --control-fd N [--no-sandbox]
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import socket
import sys
import tempfile

JOB_FD, RECORD_FD = 3, 4          # in the child, after the worker's own fds are gone
EXIT_SETUP_FAILED = 111           # the child could not isolate itself: no student code ran


def _warm_up(checks_dir: str) -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.path.insert(0, checks_dir)
    import torch
    torch.set_num_threads(1)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pylab  # noqa: F401  (the lab imports it; pay the cost once)
    import matplotlib.pyplot  # noqa: F401
    import numpy  # noqa: F401
    import autograd_checks
    from . import harness  # IPython's transformer
    harness.ipython_shell()   # the path for unusual magics: built once, cloned into each run
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


def _close_all_but(keep: set[int]) -> None:
    for fd in sorted(int(n) for n in os.listdir("/proc/self/fd") if n.isdigit()):
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _setup_failed(record_fd: int, exc: BaseException) -> None:
    where = exc.__traceback__
    while where is not None and where.tb_next is not None:
        where = where.tb_next
    step = f"{where.tb_frame.f_code.co_name}:{where.tb_lineno}" if where is not None else "?"
    reason = json.dumps({"t": "setup", "e": f"{type(exc).__name__} at {step}: {exc}"[:300]}) + "\n"
    try:
        os.write(record_fd, reason.encode())
    except OSError:
        pass
    os._exit(EXIT_SETUP_FAILED)


def _child(fds: list[int], sandboxed: bool, syscall_filter) -> None:
    """The run: isolate, read the job from the supervisor, run it, report, exit."""
    from . import harness, isolate
    from .protocol import Job

    job_fd, record_fd, sync_fd = fds
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.dup2(job_fd, JOB_FD)
        os.dup2(record_fd, RECORD_FD)
        if sync_fd >= 0:
            os.read(sync_fd, 1)   # the worker has written this namespace's uid and gid maps
        _close_all_but({0, 1, 2, JOB_FD, RECORD_FD})
        chunks = []
        while True:
            chunk = os.read(JOB_FD, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(JOB_FD)
        request = json.loads(b"".join(chunks))
        job, skip, nonce = Job.from_json(json.dumps(request["job"]).encode()), request["skip"], request["nonce"]
        limits = job.limits
        cpu = int(limits.timeout) + 5
        if sandboxed:
            isolate.prepare_run(limits, cpu, syscall_filter)
        else:
            os.setsid()
            isolate.apply_limits(limits, cpu)
            os.chdir(tempfile.mkdtemp(prefix="autograder-run-"))
    except BaseException as exc:   # say why on the record pipe (no student code has run yet)
        _setup_failed(RECORD_FD, exc)
    try:
        harness.run_cells(job, set(skip), harness.Recorder(RECORD_FD, nonce))
    except BaseException:
        pass
    os._exit(0)


def _start(fds: list[int], host_uid: int, sandboxed: bool, syscall_filter) -> int:
    from . import isolate

    sync_r, sync_w = os.pipe() if sandboxed else (-1, -1)
    pid = isolate.clone_into_namespaces() if sandboxed else os.fork()
    if pid == 0:
        if sync_w >= 0:
            os.close(sync_w)
        _child([*fds, sync_r], sandboxed, syscall_filter)
    for fd in fds:
        os.close(fd)
    if sandboxed:
        os.close(sync_r)
        try:
            isolate.map_ids(pid, host_uid or os.getuid(), host_uid or os.getgid())
        except OSError:
            pass   # the child then cannot set itself up and reports why
        os.close(sync_w)
    return pid


def _kill(pid: int, sandboxed: bool) -> None:
    try:
        if sandboxed:
            os.kill(pid, signal.SIGKILL)    # PID 1 of the namespace: takes everything with it
        else:
            os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def serve(control: socket.socket, sandboxed: bool, syscall_filter) -> None:
    control.send(b"ready")
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(control, 64, 4)
        except OSError:
            return
        if not message:
            return
        words = message.split()
        if words[:1] != [b"run"] or len(fds) != 2:
            for fd in fds:
                os.close(fd)
            continue
        pid = _start(fds, int(words[1]), sandboxed, syscall_filter)
        pidfd = os.pidfd_open(pid)
        quit_after = False
        while True:
            ready, _, _ = select.select([control, pidfd], [], [])
            if pidfd in ready:
                break
            command = control.recv(64)
            if command == b"kill" or not command:
                _kill(pid, sandboxed)
                quit_after = quit_after or not command
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
        if quit_after:
            return
        control.send(b"exit %d" % code)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checks-dir", required=True)
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--no-sandbox", action="store_true")
    args = parser.parse_args(argv)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    control = socket.socket(fileno=args.control_fd)
    _warm_up(args.checks_dir)
    sandboxed = not args.no_sandbox
    from . import isolate
    syscall_filter = isolate.syscall_filter() if sandboxed else None
    if sandboxed:   # runs see the worker in /proc: its memory, fds and environment stay closed
        isolate.prepare_template()
    serve(control, sandboxed, syscall_filter)


if __name__ == "__main__":
    main()
