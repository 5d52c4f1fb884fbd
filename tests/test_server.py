"""The embedded server leaves nothing behind: not after Ctrl-C, not after kill -9."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
import redis

from pykue import EmbeddedRedis, ServerError
from tests.conftest import PY, ROOT, py_env
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


def test_a_taken_port_is_an_error_not_the_other_server(server: EmbeddedRedis) -> None:
    """The readiness check must hear *our* process: here the port belongs to another server."""
    srv = EmbeddedRedis(port=server.port)
    with pytest.raises(ServerError, match=f"could not listen on {server.url}"):
        srv.start()
    assert srv.proc is None
    srv.close()
    assert not os.path.exists(srv.dir)


@pytest.mark.parametrize(
    ("kw", "message"),
    [({"port": 70000}, "port must be between 1 and 65535"), ({"dbfilename": "../x.rdb"}, "plain file name"),
     ({"data_dir": "/nonexistent/dir"}, "does not exist")],
)  # fmt: skip
def test_bad_arguments_are_named_errors(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ServerError, match=message):
        EmbeddedRedis(**kw)


def test_data_dir_loads_the_data_set_and_saves_it_back_only_when_asked(tmp_path: Path) -> None:
    shutil.copy(ROOT / "dump.rdb", tmp_path / "seed.rdb")
    before = (tmp_path / "seed.rdb").read_bytes()
    srv = EmbeddedRedis(data_dir=tmp_path, dbfilename="seed.rdb").start()
    client = redis.Redis.from_url(srv.url, decode_responses=True)
    assert client.get("Holberton") == "School"
    client.set("extra", "1")
    client.close()
    srv.close()  # not asked to save
    assert (tmp_path / "seed.rdb").read_bytes() == before and os.listdir(tmp_path) == ["seed.rdb"]
    with EmbeddedRedis(data_dir=tmp_path, dbfilename="seed.rdb", persist=True) as srv:
        redis.Redis.from_url(srv.url).set("extra", "2")
        srv.stop(save=True)
    with EmbeddedRedis(data_dir=tmp_path, dbfilename="seed.rdb") as srv:
        assert redis.Redis.from_url(srv.url, decode_responses=True).mget("Holberton", "extra") == ["School", "2"]
