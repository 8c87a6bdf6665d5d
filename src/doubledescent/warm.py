"""Warm starts: a local run's steps forked from one process that has imported their libraries.

Every step is `python -m doubledescent <step>`, and a fresh interpreter spends ~2.5 s
importing torch and pandas (matplotlib and seaborn: ~2 s more) before its first line of
work: in the default run ~5% of the time, in a tiny test pipeline most of it. On a local run
(`warm_start: true`, the default) the Snakefile starts a server that imports them once. Each
step's own process, the client, hands the server its command line, working folder,
environment and standard streams; the server forks a child that runs the step with them.
The client waits for the child, passes on the signals it gets (a Ctrl-C, Snakemake's
SIGTERM), and ends as the child ended, so Snakemake sees the step as if it ran in the
client. If the client dies (SIGKILL), its child gets SIGTERM.

Without a server (a step run by hand, a cluster job: only local runs start one; before the
server has finished importing; a system without fork) the step runs in the client, as it
always did. The forked child shows in `ps` under the server's command line; its client,
the job's own process, under the step's.
Torch-free at import: the client is every step's first tenth of a second.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import traceback

ENV = "DOUBLEDESCENT_WARM"  # the server's socket, in the environment of a local run's jobs
# What the steps import (doubledescent.cli imports each step's modules when it runs).
PRELOAD = ("doubledescent.train", "doubledescent.plots", "doubledescent.status", "pyarrow.parquet")
HEADER = struct.Struct("!I")  # a request's length, then the request as JSON
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
# The longest path a Unix socket takes: sockaddr_un holds 108 bytes on Linux, 104 on macOS
# and the BSDs, with a closing NUL.
MAX_SOCKET_PATH = 103
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)

_server: subprocess.Popen | None = None  # the server this process started


# The client.


def forward(argv: list[str]) -> int | None:
    """Run `python -m doubledescent` with `argv` (sys.argv) in a child of the server that
    ENV names, and give its exit code; None where no server takes it (the caller then runs
    the step itself)."""
    path = os.environ.get(ENV)
    if not path or argv[1:2] == ["serve"]:
        return None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
    except OSError:  # no server (yet, or any more): the step runs here
        conn.close()
        return None
    request = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
    socket.send_fds(conn, [HEADER.pack(len(request)), request], _standard_streams())
    replies = conn.makefile("r")
    pid = _reply(replies, "pid")
    if pid is None:  # the server ended before it forked: nothing ran
        return None
    for sig in FORWARDED:
        signal.signal(sig, lambda s, _frame: os.kill(pid, s))
    status = _reply(replies, "exit")
    if status is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        print("doubledescent: the warm-start server ended before the step did", file=sys.stderr)
        return 1
    return _end_as(status)


def _standard_streams() -> list[int]:
    """Descriptors 0-2 for the child; /dev/null in place of a closed one."""
    fds = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            fds.append(fd)
        except OSError:
            fds.append(os.open(os.devnull, os.O_RDWR))
    return fds


def _reply(replies, key: str) -> int | None:
    """The number in the server's next line `<key> <n>`; None at the end of the stream."""
    line = replies.readline().split()
    if len(line) != 2 or line[0] != key:
        return None
    return int(line[1])


def _end_as(status: int) -> int:
    """The child's exit code; a child killed by a signal kills the client with it too."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    return os.waitstatus_to_exitcode(status)


# Starting and stopping the server (the Snakefile's onstart, onsuccess and onerror).


def start(enabled: bool) -> None:
    """Start a server and name its socket in this process's environment, which the jobs
    inherit. Snakemake calls this only where it runs jobs (not on a dry run)."""
    global _server
    if not (enabled and hasattr(os, "fork")) or _server is not None or ENV in os.environ:
        return
    path = _socket_path()
    if path is None:
        return
    # One OpenMP thread, as Snakemake gives a one-thread job: torch's import starts a pool
    # of all cores otherwise, which a fork does not carry over (training sets its threads).
    env = {**os.environ, **dict.fromkeys(THREAD_VARIABLES, "1")}
    _server = subprocess.Popen(
        [sys.executable, "-m", "doubledescent", "serve", "--socket", path],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C reaches the clients, which pass it on
    )
    os.environ[ENV] = path


def _socket_path() -> str | None:
    """A socket's path in a new private folder: in the temp folder, or in /tmp where that
    one's path is too long for a socket (a bind would fail); None where neither fits."""
    for parent in (None, "/tmp"):
        with contextlib.suppress(OSError):  # no /tmp
            folder = tempfile.mkdtemp(prefix="doubledescent-", dir=parent)
            path = os.path.join(folder, "warm.sock")
            if len(os.fsencode(path)) <= MAX_SOCKET_PATH:
                return path
            os.rmdir(folder)
    return None


def stop() -> None:
    """Ask the server to end: it takes no new steps, removes its folder and exits once its
    children have. Not waited for: a step left running must not hold up Snakemake's exit."""
    global _server
    if _server is not None:
        _server.terminate()
        _server = None
        # Also here: a server stopped as it starts may not have got to its own cleanup.
        shutil.rmtree(os.path.dirname(os.environ.pop(ENV)), ignore_errors=True)


# The server.


def serve(path: str) -> None:
    """Import PRELOAD, then fork a child for each client that connects to `path`, until
    asked to stop (SIGTERM) or until the process that started it is gone; then wait for the
    children that still run. Clients that connect before the imports finish find no
    socket: the socket appears (renamed into place) once they are done."""
    signal.signal(signal.SIGTERM, _quit)  # while importing: nothing runs yet
    children: dict[int, socket.socket] = {}  # pid -> its client's connection
    try:
        for name in PRELOAD:
            importlib.import_module(name)
        if sys.modules["torch"].cuda.is_initialized():  # a fork does not carry CUDA over
            raise RuntimeError(
                "importing the steps' modules started CUDA; warm starts need it not to"
            )
        stopping: list[bool] = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        wake_r, wake_w = _wake_on_signals()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            try:
                listener.bind(path + ".new")
            except FileNotFoundError:  # stop() removed the folder: the run has ended
                return
            listener.listen(64)
            os.rename(path + ".new", path)
            parent, own = os.getppid(), [listener.fileno(), wake_r, wake_w]
            while not stopping and os.getppid() == parent:
                ready, _, _ = select.select([listener, wake_r], [], [], 1.0)
                if listener in ready:
                    _accept(listener, children, own)
                _drain(wake_r, ready)
                _reap(children)
    finally:
        shutil.rmtree(os.path.dirname(path), ignore_errors=True)
    while children:
        _drain(wake_r, select.select([wake_r], [], [], 1.0)[0])
        _reap(children)
    # Without the interpreter's teardown of torch and matplotlib (~1 s that the end of a
    # run would wait for): nothing of the server's needs finalizing.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _quit(*_) -> None:
    raise SystemExit(0)


def _wake_on_signals() -> tuple[int, int]:
    """A pipe that each signal (a child's SIGCHLD, SIGTERM) writes to: its read end wakes
    a select on it."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # delivered, so that it is written
    return wake_r, wake_w


def _drain(fd: int, ready: list) -> None:
    if fd in ready:
        os.read(fd, 4096)


def _accept(listener: socket.socket, children: dict, own_fds: list[int]) -> None:
    """Take one client's request and fork its child; a client that went away is dropped."""
    conn, _ = listener.accept()
    try:
        conn.settimeout(30)
        request, fds = _request(conn)
        # Blocking again before the fork: the child's watch on it must never time out.
        conn.settimeout(None)
    except (OSError, ValueError):
        conn.close()
        return
    others = [c.fileno() for c in children.values()]
    try:
        pid = _fork(conn, request, fds, own_fds + others)
    finally:
        for fd in fds:  # the child's now
            os.close(fd)
    children[pid] = conn
    with contextlib.suppress(OSError):  # a client that went away: its child stops itself
        conn.sendall(f"pid {pid}\n".encode())


def _request(conn: socket.socket) -> tuple[dict, list[int]]:
    """A client's request and its three standard streams."""
    data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
    try:
        if len(fds) != 3:
            raise ValueError("a request without its three standard streams")
        while len(data) < HEADER.size or len(data) < HEADER.size + HEADER.unpack_from(data)[0]:
            more = conn.recv(1 << 16)
            if not more:
                raise ValueError("the client closed its request half-way")
            data += more
        return json.loads(data[HEADER.size :]), fds
    except (OSError, ValueError):
        for fd in fds:
            os.close(fd)
        raise


def _reap(children: dict) -> None:
    """Tell each ended child's client how it ended."""
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = children.pop(pid, None)
        if conn is not None:
            with contextlib.suppress(OSError):  # the client is gone
                conn.sendall(f"exit {status}\n".encode())
            conn.close()


def _fork(conn: socket.socket, request: dict, fds: list[int], close: list[int]) -> int:
    """Fork the child that runs the request as the client would have; its pid."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        _become_client(request, fds, close)
        _stop_with_client(conn)
        code = _run(request["argv"][1:])
    except BaseException:  # noqa: BLE001 (a child must never return into the server's loop)
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _become_client(request: dict, fds: list[int], close: list[int]) -> None:
    """The client's signals, streams, folder, environment and command line."""
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGTERM, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for fd in close:
        os.close(fd)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 (the process's own streams)
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = request["argv"]


def _stop_with_client(conn: socket.socket) -> None:
    """SIGTERM this child when its client's end of `conn` closes (the client was killed)."""

    def watch():
        with contextlib.suppress(OSError):
            conn.recv(1)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True).start()


def _run(args: list[str]) -> int:
    """`python -m doubledescent` with `args`: its exit code, as the interpreter would end."""
    from doubledescent import cli

    try:
        return cli.main(args)
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            return e.code or 0
        print(e.code, file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # as Python ends on one: the traceback, then killed by SIGINT
        traceback.print_exc()
        sys.stderr.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        return 1
