"""Each seed program (tasks 0-10) run as a process against a private real Redis,
its console lines compared with the seed's transcripts."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from pykue import EmbeddedRedis
from pykue.apps.notifications import BLACKLISTED, JOBS
from pykue.server import free_port
from tests.conftest import PY, ROOT, py_env
from tests.helpers import wait_for

EX = ROOT / "examples"


@pytest.fixture
def fresh() -> Iterator[EmbeddedRedis]:
    """Seed programs use Kue's default prefix `q`, so each gets a server of its own."""
    with EmbeddedRedis() as srv:
        yield srv


def env_for(url: str) -> dict[str, str]:
    return {**py_env(), "REDIS_URL": url}


def run(script: str, url: str, timeout: float = 30) -> list[str]:
    out = subprocess.run([PY, str(EX / script)], env=env_for(url), capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


class Lines:
    """A running program whose stdout lines are collected as they come."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_line(self, pred: object, timeout: float = 15) -> None:
        match = pred if callable(pred) else (lambda ls: pred in ls)
        with self.cond:
            ok = self.cond.wait_for(lambda: match(self.lines) or self.proc.poll() is not None, timeout)
        assert ok and match(self.lines), f"waited for {pred!r}; got {self.lines}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(15)
        self.t.join(5)
        for f in (self.proc.stdout, self.proc.stderr):
            if f:
                f.close()


def test_task0_dump_rdb_loads_with_holberton_school() -> None:
    srv = EmbeddedRedis()
    shutil.copy(ROOT / "dump.rdb", Path(srv.dir) / "dump.rdb")
    with srv.start():
        assert redis.Redis.from_url(srv.url, decode_responses=True).get("Holberton") == "School"
    srv.close()


def test_task0_dump_can_be_regenerated(tmp_path: Path) -> None:
    subprocess.run([PY, str(EX / "make_dump.py"), str(tmp_path / "d.rdb")], env=py_env(), check=True,
                   capture_output=True, timeout=30)  # fmt: skip
    assert (tmp_path / "d.rdb").read_bytes()[:5] == b"REDIS"


def test_task1_reports_each_failed_attempt_then_connects() -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    prog = Lines([PY, str(EX / "redis_client.py")], env_for(url))
    try:
        refused = f"Redis client not connected to the server: Error: Redis connection to 127.0.0.1:{port} failed - connect ECONNREFUSED 127.0.0.1:{port}"  # noqa: E501
        prog.wait_line(lambda ls: ls.count(refused) >= 2)
        with EmbeddedRedis(port=port):
            prog.wait_line("Redis client connected to the server")
    finally:
        prog.stop()
    assert set(prog.lines[:-1]) == {refused}


def test_task2_and_task3_set_and_display(fresh: EmbeddedRedis) -> None:
    redis.Redis.from_url(fresh.url).set("Holberton", "School")
    expected = ["Redis client connected to the server", "School", "Reply: OK", "100"]
    assert run("redis_op.py", fresh.url) == expected
    redis.Redis.from_url(fresh.url).delete("HolbertonSanFrancisco")
    assert run("redis_op_async.py", fresh.url) == expected


def test_task4_hash(fresh: EmbeddedRedis) -> None:
    assert run("redis_advanced_op.py", fresh.url) == [
        "Redis client connected to the server",
        *["Reply: 1"] * 6,
        "{'Portland': '50', 'Seattle': '80', 'New York': '20', 'Bogota': '20', 'Cali': '40', 'Paris': '2'}",
    ]


def test_task5_publisher_and_subscriber(fresh: EmbeddedRedis) -> None:
    sub = Lines([PY, str(EX / "subscriber.py")], env_for(fresh.url))
    try:
        sub.wait_line("Redis client connected to the server")
        # the subscriber is listening once it shows up in PUBSUB NUMSUB
        with redis.Redis.from_url(fresh.url, decode_responses=True) as client:
            wait_for(lambda: client.pubsub_numsub("holberton school channel")[0][1] == 1, what="the subscriber")
        pub = run("publisher.py", fresh.url)
        assert sub.proc.wait(10) == 0
    finally:
        sub.stop()
    assert pub == ["Redis client connected to the server"] + [
        f"About to send {m}" for m in ("Holberton Student #1 starts course", "Holberton Student #2 starts course",
                                       "KILL_SERVER", "Holberton Student #3 starts course")]  # fmt: skip
    assert sub.lines == ["Redis client connected to the server", "Holberton Student #1 starts course",
                         "Holberton Student #2 starts course", "KILL_SERVER"]  # fmt: skip


def test_task6_7_creator_and_processor(fresh: EmbeddedRedis) -> None:
    proc = Lines([PY, str(EX / "job_processor.py")], env_for(fresh.url))
    try:
        assert run("job_creator.py", fresh.url) == ["Notification job created: 1", "Notification job completed"]
        proc.wait_line("Sending notification to 4153518780, with message: This is the code to verify your account")
        assert run("job_creator.py", fresh.url)[0] == "Notification job created: 2"
    finally:
        proc.stop()
    h = redis.Redis.from_url(fresh.url, decode_responses=True).hgetall("q:job:1")
    assert h["type"] == "push_notification_code" and h["state"] == "complete"


def check_task8_transcript(lines: list[str], first_id: int = 1) -> None:
    """The seed's order constraints for the 11-job creator's output: ids in creation order,
    each job created before its progress, 0% before 50% before completed, and a
    blacklisted job's failure after its 0%."""
    ids = list(range(first_id, first_id + 11))
    assert [ln for ln in lines if ln.startswith("Notification job created: ")] == [
        f"Notification job created: {i}" for i in ids
    ]
    for i, data in zip(ids, JOBS, strict=True):
        created = lines.index(f"Notification job created: {i}")
        mine = [ln for ln in lines if re.match(rf"Notification job #{i} ", ln)]
        assert all(lines.index(ln) > created for ln in mine)
        if data["phoneNumber"] in BLACKLISTED:
            msg = f"Phone number {data['phoneNumber']} is blacklisted"
            assert mine == [f"Notification job #{i} 0% complete", f"Notification job #{i} failed: {msg}"]
        else:
            assert mine == [f"Notification job #{i} {p}" for p in ("0% complete", "50% complete", "completed")]
    assert len(lines) == 11 + 2 * 2 + 9 * 3


def test_task8_9_eleven_jobs_two_at_a_time(fresh: EmbeddedRedis) -> None:
    proc = Lines([PY, str(EX / "job_processor_2.py")], env_for(fresh.url))
    try:
        creator = run("job_creator_2.py", fresh.url)
        proc.wait_line(lambda ls: len(ls) == 9)
    finally:
        proc.stop()
    check_task8_transcript(creator)
    sent = [f"Sending notification to {j['phoneNumber']}, with message: {j['message']}" for j in JOBS[2:]]
    assert sorted(proc.lines) == sorted(sent)
    r = redis.Redis.from_url(fresh.url, decode_responses=True)
    assert r.zcard("q:jobs:push_notification_code_2:failed") == 2
    assert r.zcard("q:jobs:push_notification_code_2:complete") == 9


def test_task10_main(fresh: EmbeddedRedis) -> None:
    assert run("push_jobs_main.py", fresh.url) == ["Notification job created: 1"]
    r = redis.Redis.from_url(fresh.url, decode_responses=True)
    assert r.hget("q:job:1", "type") == "push_notification_code_3"


def test_pykue_demo_end_to_end() -> None:
    out = subprocess.run([PY, "-m", "pykue.cli", "demo"], env=py_env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("pykue demo: Redis at redis://127.0.0.1:") and lines[-1] == "pykue demo: done"
    body = lines[1:-1]
    creator = [ln for ln in body if ln.startswith("Notification job")]
    check_task8_transcript(creator)
    assert sum(ln.startswith("Sending notification to ") for ln in body) == 9
