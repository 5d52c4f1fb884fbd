"""Mixed fleets: what a dead or stopped Node Kue process leaves behind, and pykue as its watchdog.

Every Node worker here is the real kue@0.11.6, killed with SIGKILL where it dies."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from typing import Any

import pytest
import redis

import pykue
from pykue import EmbeddedRedis, Settings
from pykue import _scripts as sc
from pykue._keys import Keys
from pykue._scripts import Scripts
from tests.conftest import FAST, PY, py_env
from tests.helpers import wait_for
from tests.interop.conftest import Kue, stop
from tests.interop.test_kue_interop import views_agree

# FAST plus the watchdog; stuck_after well above the time a Node worker takes from pop to active.
WATCH = Settings(lease_ms=1000, promote_interval=0.05, ttl_interval=0.1, reap_interval=0.1, repair_interval=0.5,
                 block_timeout=0.2, shutdown_timeout=2.0, stuck_after_ms=500, orphan_after_ms=500,
                 watchdog_interval=0.1)  # fmt: skip

# A pykue worker process whose handler prints the job id and never returns: kill -9 it to make a dead worker.
HANG = """
import sys, threading, pykue
q = pykue.create_queue(sys.argv[1], settings=pykue.Settings(lease_ms=500, block_timeout=0.2))
q.process(sys.argv[2], lambda job: (print(job.id, flush=True), threading.Event().wait()))
print("ready", flush=True)
threading.Event().wait()
"""


def read_json(proc: subprocess.Popen[str]) -> Any:
    assert proc.stdout is not None
    return json.loads(proc.stdout.readline())


def kill9(proc: subprocess.Popen[Any]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()


def in_type_set(r: redis.Redis, job_type: str, state: str, job_id: int) -> bool:
    return r.zscore(f"q:jobs:{job_type}:{state}", f"{len(str(job_id)):02d}|{job_id}") is not None


def test_dead_node_workers_jobs_and_kues_orphans_come_back(kue: Kue, kue_redis: EmbeddedRedis) -> None:
    """Item 7: Node worker killed -9 mid-batch (3 jobs active) and one killed between Kue's pop
    and job.active() (the job's hash says inactive, in no inactive set of its type)."""
    r = redis.Redis.from_url(kue_redis.url, decode_responses=True)
    producer = pykue.create_queue(kue_redis.url)
    ids = [producer.create("fleet", {"n": n}).save().id or 0 for n in range(7)]

    popper = kue.spawn("work", "fleet", "popped", "1")
    orphan = read_json(popper)["popped"]
    wait_for(lambda: r.hget(f"q:job:{orphan}", "workerId"), what="Kue's writes before job.active()")
    kill9(popper)
    node = kue.spawn("work", "fleet", "hang", "3")
    stuck = [read_json(node)["worked"] for _ in range(3)]
    kill9(node)

    assert r.hget(f"q:job:{orphan}", "state") == "inactive" and not in_type_set(r, "fleet", "inactive", orphan)
    assert all(r.hget(f"q:job:{i}", "state") == "active" and not r.hexists("q:pykue:owners", i) for i in stuck)
    assert producer.inactive_count("fleet") == 3  # what any worker can still see

    q = pykue.create_queue(kue_redis.url, settings=WATCH)
    ran: Counter[int] = Counter()
    q.process("fleet", 3, lambda job: ran.update([job.id]))
    wait_for(lambda: q.complete_count("fleet") == 7, timeout=20, what="all 7 jobs to complete")
    q.shutdown(1)
    producer.shutdown()
    assert ran == Counter(dict.fromkeys(ids, 1))
    assert any("indexed again" in line for line in r.lrange(f"q:job:{orphan}:log", 0, -1))
    for i in stuck:
        assert any("back to inactive" in line for line in r.lrange(f"q:job:{i}:log", 0, -1))
    assert views_agree(kue, kue_redis.url, "fleet") == {
        "inactive": 0, "active": 0, "complete": 7, "failed": 0, "delayed": 0}  # fmt: skip
    r.close()


def test_node_ttl_job_whose_worker_died_is_failed_and_retried(kue: Kue, kue_redis: EmbeddedRedis) -> None:
    """Item 8: only pykue is left to check TTLs; nobody acks "ttl exceeded", so pykue fails the
    attempt as Kue's checker would, and the retry (per its backoff) runs on a pykue worker."""
    opts = '{"ttl":2000,"attempts":2,"backoff":{"type":"fixed","delay":100}}'
    [created] = kue.run("create", "ttlnode", "{}", opts)
    node = kue.spawn("work", "ttlnode", "hang", "1")  # killed long before its own checker sees the TTL
    assert read_json(node)["worked"] == created["id"]
    kill9(node)

    settings = Settings(lease_ms=1000, promote_interval=0.05, ttl_interval=0.1, reap_interval=0.1,
                        block_timeout=0.2, ttl_grace_ms=300)  # fmt: skip
    q = pykue.create_queue(kue_redis.url, settings=settings)
    heard: list[tuple[str, Any]] = []
    q.on("job failed attempt", lambda job_id, msg, n: heard.append((msg, n)))
    ran: list[int] = []
    q.process("ttlnode", lambda job: ran.append(job.id or 0) or "ok")
    wait_for(lambda: q.complete_count("ttlnode") == 1, timeout=20, what="the retry to complete")
    q.shutdown(1)
    job = pykue.create_queue(kue_redis.url).get_job(created["id"])
    assert ran == [created["id"]] and heard == [("TTL exceeded", 1)]
    assert job.attempts_made == 2 and job.error == "TTL exceeded"
    [seen] = kue.run("get", str(created["id"]))
    assert seen["json"]["attempts"] == {"made": 2, "remaining": 0, "max": 2}


def test_a_stall_count_belongs_to_one_run(kue: Kue, kue_redis: EmbeddedRedis) -> None:
    """Item 9: pykue recovers a job from a killed pykue worker (one stall), a Node worker
    completes it, it is re-queued the Kue way; its next single stall must not fail it."""
    r = redis.Redis.from_url(kue_redis.url, decode_responses=True)
    reaper = pykue.create_queue(kue_redis.url, settings=FAST)
    reaper.process("unrelated", lambda job: None)  # runs the reaper
    job_id = reaper.create("relay", {}).save().id or 0

    def die_holding_it() -> None:
        proc = subprocess.Popen([PY, "-c", HANG, kue_redis.url, "relay"], env=py_env(), stdout=subprocess.PIPE,
                                text=True)  # fmt: skip
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        assert int(proc.stdout.readline()) == job_id
        kill9(proc)
        wait_for(lambda: r.hget(f"q:job:{job_id}", "state") != "active", what="the reaper")

    die_holding_it()
    assert r.hget(f"q:job:{job_id}", "state") == "inactive"
    node = kue.spawn("work", "relay", "ok")
    wait_for(lambda: r.hget(f"q:job:{job_id}", "state") == "complete", what="Node to complete it")
    stop(node)
    assert kue.run("state", str(job_id), "inactive") == [{"state": "inactive", "error": None}]

    die_holding_it()
    reaper.shutdown(1)
    got = pykue.create_queue(kue_redis.url).get_job(job_id)
    assert got.state == "inactive" and got.error is None  # main: failed, "stalled more than allowable limit"
    r.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_kue_app_state_change_drops_pykue_lease(kue: Kue, kue_redis: EmbeddedRedis,
                                                caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    """Item 10 (part): kue.app moves a job a pykue worker holds; the lease entry is dropped,
    the worker is told, and its late result is refused."""
    caplog.set_level("WARNING", logger="pykue.worker")
    r = redis.Redis.from_url(kue_redis.url, decode_responses=True)
    q = pykue.create_queue(kue_redis.url, settings=FAST)
    completed: list[int] = []
    q.on("job complete", lambda job_id: completed.append(job_id))
    release, started = threading.Event(), threading.Event()

    def work(job: pykue.Job) -> str:
        if job.data.get("hold"):
            started.set()
            release.wait(20)
        return "late"

    held = q.create("held", {"hold": True}).save().id or 0
    q.process("held", 1, work)
    assert started.wait(10)
    assert r.hexists("q:pykue:owners", held)
    port = free_port()
    app = kue.spawn("app", str(port))
    try:
        req = urllib.request.Request(f"http://127.0.0.1:{port}/job/{held}/state/complete", method="PUT")
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert json.loads(resp.read()) == {"message": "updated state"}
    finally:
        stop(app)
    wait_for(lambda: not r.hexists("q:pykue:owners", held), what="the lease entry to go")
    wait_for(lambda: any("taken back" in m for m in caplog.messages), what="the worker to be told")
    assert not any(r.sismember(key, held) for key in r.scan_iter("q:pykue:held:*"))
    release.set()
    after = q.create("held", {}).save().id or 0  # concurrency 1: runs once the held job's slot is free
    wait_for(lambda: after in completed, what="the next job")
    q.shutdown(1)
    assert completed == [after]
    assert r.hget(f"q:job:{held}", "state") == "complete" and not r.hexists(f"q:job:{held}", "result")
    assert r.hget(f"q:job:{held}", "attempts") is None
    r.close()


def test_busy_node_workers_keep_their_jobs_under_an_eager_watchdog(kue: Kue, kue_redis: EmbeddedRedis) -> None:
    """Watchdog passes back to back while real Node workers pop and activate 300 jobs older
    than stuck_after: a job seen between Kue's pop and job.active() is not indexed again
    (that would let a second worker run it), and no live worker's job is taken."""
    producer = pykue.create_queue(kue_redis.url)
    ids = [job.id for job in producer.save_many(producer.create("busy", {"n": n}) for n in range(300))]
    producer.shutdown()
    r = redis.Redis.from_url(kue_redis.url, decode_responses=True)
    scripts, done = Scripts(r), threading.Event()
    found = [0, 0, 0, 0]  # passes, requeued, indexed again, stale active entries dropped

    def watch() -> None:
        while not done.is_set():
            call = sc.watchdog(Keys("q"), now=int(time.time() * 1000), stuck_after_ms=150, max_stalled=1, batch=100,
                               orphan_after_ms=150)  # fmt: skip
            out = scripts.run(call)
            for i, n in enumerate((1, int(out[2]), int(out[4]), int(out[5]))):
                found[i] += n

    watcher = threading.Thread(target=watch)
    watcher.start()
    node = kue.spawn("work", "busy", "ok", "8")
    try:
        worked = [read_json(node)["worked"] for _ in range(300)]
        wait_for(lambda: r.zcard("q:jobs:busy:complete") == 300, what="Node to complete all 300")
    finally:
        done.set()
        watcher.join()
        stop(node)
    assert Counter(worked) == Counter(dict.fromkeys(ids, 1))
    assert found[0] > 50 and found[1:] == [0, 0, 0]
    r.close()


@pytest.mark.parametrize("listening", [True, False], ids=["with-listener", "no-listener"])
def test_a_live_node_worker_answers_pykues_ttl_checker(
    kue: Kue, kue_redis: EmbeddedRedis, caplog: pytest.LogCaptureFixture, listening: bool
) -> None:
    """Item 8, the other side: only pykue checks TTLs (the Node process's own checker is
    parked); the live Node worker hears pykue's "ttl exceeded", fails its job and acks, and
    pykue does not fail it a second time. Without a listener the pykue process subscribes to
    the events only to announce and hear the ack (issue 13)."""
    caplog.set_level("WARNING", logger="pykue.watchdog")
    q = pykue.create_queue(kue_redis.url, settings=Settings(lease_ms=1000, ttl_interval=0.05, block_timeout=0.2,
                                                            ttl_grace_ms=300))  # fmt: skip
    q.process("unrelated", lambda job: None)  # runs pykue's TTL checker
    acks: list[int] = []
    if listening:
        q.on("job ttl exceeded ack", lambda job_id: acks.append(job_id))
    parked = Kue(kue.node, kue_redis.url, "q")
    parked.env["KUE_CHECK_INTERVAL"] = "3600000"
    node = parked.spawn("work", "ttllive", "hang", "1")
    try:
        [created] = kue.run("create", "ttllive", "{}", '{"ttl":300}')
        assert read_json(node)["worked"] == created["id"]
        wait_for(lambda: q.get_job(created["id"]).state == "failed", timeout=15, what="the TTL failure")
        if listening:
            wait_for(lambda: acks == [created["id"]], what="the Node worker's ack")
    finally:
        stop(node)
    job = q.get_job(created["id"])
    q.shutdown(1)
    assert job.attempts_made == 1 and job.error == "TTL exceeded"
    assert not any("no Kue worker acked" in m for m in caplog.messages)
