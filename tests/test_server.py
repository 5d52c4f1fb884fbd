"""The embedded server leaves nothing behind: not after Ctrl-C, not after kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PY, py_env
from tests.helpers import wait_for

CHILD = """
import pykue, time
srv = pykue.EmbeddedRedis().start()
print(srv.proc.pid, srv.dir, flush=True)
time.sleep(60)
"""


def dead(pid: int) -> bool:
    """Gone, or a zombie waiting for init to reap it: either way no longer running."""
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, IndexError):
        return True


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_no_orphan_server(sig: int) -> None:
    parent = subprocess.Popen([PY, "-c", CHILD], stdout=subprocess.PIPE, text=True, env=py_env())
    assert parent.stdout is not None
    pid_s, tmpdir = parent.stdout.readline().split()
    pid = int(pid_s)
    assert not dead(pid)
    os.kill(parent.pid, sig)
    parent.wait(15)
    parent.stdout.close()
    wait_for(lambda: dead(pid), what=f"redis-server to die after the parent got {sig!r}")
    if sig == signal.SIGINT:  # a clean exit also removes the private directory
        assert not os.path.exists(tmpdir)
