"""Long-running CLI processes in tests: their lines as they come, their private redis-server."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

from tests.conftest import ROOT, py_env
from tests.helpers import wait_for


class Proc:
    """A running command whose stdout and stderr lines are collected by two threads."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(args, env=env or py_env(), cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)  # fmt: skip
        self.out: list[str] = []
        self.err: list[str] = []
        self._threads = [self._pump(self.proc.stdout, self.out), self._pump(self.proc.stderr, self.err)]

    @staticmethod
    def _pump(stream: object, sink: list[str]) -> threading.Thread:
        def read() -> None:
            for line in stream:  # type: ignore[attr-defined]
                sink.append(line.rstrip("\n"))

        t = threading.Thread(target=read, daemon=True)
        t.start()
        return t

    def line(self, needle: str, timeout: float = 20) -> str:
        """The first stdout/stderr line containing needle, once it has been printed."""

        def found() -> str | None:
            hit = next((ln for ln in self.out + self.err if needle in ln), None)
            assert hit or self.proc.poll() is None, f"exited {self.proc.returncode}: {self.out} {self.err}"
            return hit

        return str(wait_for(found, timeout=timeout, what=f"a line with {needle!r}"))

    def finish(self, timeout: float = 20) -> int:
        code = self.proc.wait(timeout)
        for t in self._threads:
            t.join(5)
        if not any(t.is_alive() for t in self._threads):  # else an orphan still holds the pipes
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.finish()


def redis_child(parent_pid: int) -> tuple[int, str] | None:
    """(pid, directory) of the redis-server a process started, or None yet. redis-server
    rewrites its command line but runs in its --dir, so the directory is its cwd."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if ppid != parent_pid or (stat.parent / "comm").read_text().strip() != "redis-server":
                continue
            return int(stat.parent.name), os.readlink(stat.parent / "cwd")
        except (OSError, IndexError, ValueError):
            continue
    return None


def running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, IndexError):
        return False


def children(parent_pid: int) -> list[int]:
    """Pids of a process's live children."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == parent_pid:
                found.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return [pid for pid in found if running(pid)]
