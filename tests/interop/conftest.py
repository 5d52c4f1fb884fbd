"""Node Kue 0.11.6 (pinned in node/package-lock.json) beside pykue on one private Redis."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pykue import EmbeddedRedis
from tests.conftest import PY, py_env

NODE_DIR = Path(__file__).with_name("node")
TOOL = str(NODE_DIR / "kue-tool.js")


@pytest.fixture(scope="session")
def node() -> str:
    exe = shutil.which("node")
    assert exe, "Node.js is required for the interop tests (install.sh expects it on PATH)"
    if not (NODE_DIR / "node_modules" / "kue").is_dir():  # install.sh does this; plain pytest too
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_DIR, check=True)
    return exe


@pytest.fixture
def kue_redis() -> Iterator[EmbeddedRedis]:
    """Kue's unprefixed locks are shared by every prefix: each interop test gets its own server."""
    with EmbeddedRedis() as srv:
        yield srv


class Kue:
    """Runs kue-tool.js commands against one Redis and prefix."""

    def __init__(self, node: str, url: str, prefix: str) -> None:
        self.node, self.env = node, {**os.environ, "REDIS_URL": url, "KUE_PREFIX": prefix}

    def run(self, *args: str, timeout: float = 30) -> list[Any]:
        out = subprocess.run([self.node, TOOL, *args], env=self.env, capture_output=True, text=True,
                             timeout=timeout, check=True)  # fmt: skip
        return [json.loads(line) for line in out.stdout.splitlines() if line.startswith(("{", "[", '"'))]

    def run_text(self, *args: str, timeout: float = 30) -> list[str]:
        out = subprocess.run([self.node, TOOL, *args], env=self.env, capture_output=True, text=True,
                             timeout=timeout, check=True)  # fmt: skip
        return out.stdout.splitlines()

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen([self.node, TOOL, *args], env=self.env, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        assert first in ('"ready"', "ready"), first
        return proc


def stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    out, _ = proc.communicate(timeout=15)
    return out


def pykue_process(url: str, prefix: str, role: str) -> subprocess.Popen[str]:
    return subprocess.Popen([PY, "-m", "pykue.apps.notifications", role, "--redis", url, "--prefix", prefix],
                            env=py_env(), stdout=subprocess.PIPE, text=True)  # fmt: skip


@pytest.fixture
def kue(node: str, kue_redis: EmbeddedRedis) -> Kue:
    return Kue(node, kue_redis.url, "q")
