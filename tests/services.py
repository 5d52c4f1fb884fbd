"""Run a pykue HTTP service as a real process on a free port."""

from __future__ import annotations

import subprocess
import threading

import httpx

from pykue.server import free_port
from tests.conftest import PY, py_env
from tests.helpers import wait_for


class Service:
    def __init__(self, name: str, redis_url: str, *extra: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        args = [PY, "-m", "pykue.cli", name, "--port", str(self.port), "--redis", redis_url, *extra]
        self.proc = subprocess.Popen(args, env=py_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()
        wait_for(self._up, timeout=20, what=f"{name} service to listen")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def _up(self) -> bool:
        assert self.proc.poll() is None, "\n".join(self.lines)
        try:
            httpx.get(self.base + "/", timeout=1)
        except httpx.TransportError:
            return False
        return True

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.base + path, timeout=10)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(15)
        self._t.join(5)
        if self.proc.stdout:
            self.proc.stdout.close()
