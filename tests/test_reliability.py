"""What Kue lost or duplicated: worker crashes, Redis restarts, bad jobs, two processes."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis

import pykue
from pykue import _scripts as sc
from pykue._keys import zid
from tests.conftest import FAST, PY, py_env
from tests.helpers import wait_for

WORKER = str(Path(__file__).with_name("worker_proc.py"))


def start_worker(url: str, prefix: str, job_type: str, mode: str, n: int = 1) -> subprocess.Popen[str]:
    proc = subprocess.Popen([PY, WORKER, url, prefix, job_type, mode, str(n)], stdout=subprocess.PIPE,
                            text=True, env=py_env())  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def stop(proc: subprocess.Popen[str], sig: int | None = None) -> None:
    if sig is not None:
        proc.send_signal(sig)
    proc.wait(15)
    if proc.stdout:
        proc.stdout.close()


def test_kill_9_mid_job_loses_nothing_and_completes_each_once(url: str, prefix: str, r: redis.Redis) -> None:
    q = pykue.create_queue(url, prefix=prefix, settings=FAST)
    completes: Counter[int] = Counter()
    q.on("job complete", lambda job_id: completes.update([job_id]))
    q.save_many(q.create("crash", {"i": i}) for i in range(10))
    first = start_worker(url, prefix, "crash", "slow", 2)
    wait_for(lambda: r.llen(f"{prefix}:ran") >= 3, what="first worker to start jobs")
    os.kill(first.pid, signal.SIGKILL)
    stop(first)
    assert r.zcard(f"{prefix}:jobs:active") > 0  # it died holding jobs
    second = start_worker(url, prefix, "crash", "slow", 2)
    try:
        wait_for(lambda: q.complete_count() == 10, timeout=30, what="all jobs complete")
        wait_for(lambda: len(completes) == 10, what="complete events")
    finally:
        stop(second, signal.SIGTERM)
    assert set(completes) == set(range(1, 11)) and set(completes.values()) == {1}
    for job in q.jobs("complete"):
        assert job.attempts_made == 1  # a crash is not the handler's failure
    assert r.zcard(f"{prefix}:jobs:active") == 0 and r.zcard(f"{prefix}:jobs:inactive") == 0
    q.shutdown()


def test_job_that_keeps_killing_workers_is_failed_after_max_stalled(url: str, prefix: str, r: redis.Redis) -> None:
    q = pykue.create_queue(url, prefix=prefix, settings=pykue.Settings(lease_ms=200, max_stalled=1, reap_interval=0.05))
    job = q.create("poison", {}).save()
    q.process("other", lambda j: None)  # a worker process runs the reaper
    # Two claims that never finish, as if two workers died holding the job.
    for _ in range(2):
        wait_for(lambda: r.hget(f"{prefix}:job:{job.id}", "state") == "inactive")
        q.scripts.run(sc.claim(q.keys, now=pykue._codec.now_ms(), job_type="poison", count=1, lease_ms=200,
                               token_base="dead", worker_id="w", tokens_taken=0))  # fmt: skip
        wait_for(lambda: r.hget(f"{prefix}:job:{job.id}", "state") != "active", what="reaper")
    got = q.get_job(job.id or 0)
    assert got.state == "failed" and got.error == "job stalled more than allowable limit"
    assert got.attempts_made == 0
    q.shutdown()


def test_worker_survives_redis_restart(prefix: str) -> None:
    with pykue.EmbeddedRedis(persist=True) as srv:
        q = pykue.create_queue(srv.url, prefix=prefix, settings=FAST)
        done: list[int] = []
        q.process("r", lambda j: done.append(j.id))
        q.create("r", {}).save()
        wait_for(lambda: done == [1], what="first job")
        srv.restart()
        producer = pykue.create_queue(srv.url, prefix=prefix)
        producer.save_many(producer.create("r", {}) for _ in range(3))
        wait_for(lambda: sorted(done) == [1, 2, 3, 4], timeout=20, what="jobs after restart")
        # a handler returns before its completion is written (in the next batch): wait for it
        wait_for(lambda: producer.complete_count() == 4, what="the completions after restart")
        assert sorted(done) == [1, 2, 3, 4]
        producer.shutdown()
        q.shutdown(1)


def test_events_reach_a_producer_in_another_process(url: str, prefix: str) -> None:
    q = pykue.create_queue(url, prefix=prefix, settings=FAST)
    seen: list[tuple[Any, ...]] = []
    finished = threading.Event()
    ok = q.create("ev", {})
    ok.on("progress", lambda pct: seen.append(("progress", ok.id, pct)))
    ok.on("complete", lambda res: (seen.append(("complete", ok.id, res)), finished.set()))
    ok.save()
    bad = q.create("ev", {"fail": True}).attempts(2)
    bad.on("failed attempt", lambda msg, n: seen.append(("failed attempt", bad.id, msg, n)))
    bad.on("failed", lambda msg: seen.append(("failed", bad.id, msg)))
    bad.save()
    proc = start_worker(url, prefix, "ev", "report")
    try:
        wait_for(lambda: len(seen) >= 4, what="events from the worker process")
    finally:
        stop(proc, signal.SIGTERM)
    assert finished.is_set()
    assert seen.index(("progress", 1, 50)) < seen.index(("complete", 1, "ok"))
    assert ("failed attempt", 2, "job 2 asked to fail", 1) in seen
    assert seen.index(("failed attempt", 2, "job 2 asked to fail", 1)) < seen.index(
        ("failed", 2, "job 2 asked to fail")
    )
    q.shutdown()


def test_corrupt_jobs_are_set_aside_and_the_worker_goes_on(queue: pykue.Queue, r: redis.Redis, prefix: str) -> None:
    # Another program wrote a job with broken JSON data and one with no type.
    for job_id, fields in ((1, {"type": "w", "data": "{not json", "priority": "0", "state": "inactive"}),
                           (2, {"data": "{}", "priority": "0", "state": "inactive"})):  # fmt: skip
        r.hset(f"{prefix}:job:{job_id}", mapping=fields)
        r.zadd(f"{prefix}:jobs:inactive", {zid(job_id): 0})
        r.zadd(f"{prefix}:jobs:w:inactive", {zid(job_id): 0})
        r.zadd(f"{prefix}:jobs", {zid(job_id): 0})
    r.set(f"{prefix}:ids", 2)
    good = queue.create("w", {"fine": True}).save()
    ran: list[Any] = []
    queue.process("w", lambda j: ran.append(j.data))
    wait_for(lambda: queue.complete_count() == 1 and queue.failed_count() == 2)
    assert ran == [{"fine": True}] and good.id == 3
    assert "not valid JSON" in (queue.get_job(1).error or "")
    assert r.hget(f"{prefix}:job:2", "error") == "pykue: job hash has no type field; set aside"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda q: q.create("t", {"x": {1, 2}}).save(), "job data is not JSON-serialisable"),
        (lambda q: q.create("t", {"x": float("nan")}).save(), "which JSON cannot carry"),
        (lambda q: q.create("", {}), "job type must be a non-empty string"),
        (lambda q: q.create("t", {}).priority("urgent"), "priority must be an integer or one of"),
        (lambda q: q.create("t", {}).attempts(0), "attempts must be an integer >= 1"),
        (lambda q: q.create("t", {}).delay(-5), "delay must be an integer >= 0"),
        (lambda q: q.create("t", {}).backoff({"type": "linear"}), "backoff type must be"),
        (lambda q: q.create("t", {}).backoff("function(){}"), "backoff must be True, a dict or a callable"),
        (lambda q: q.create("t", {}, colour="red"), "unknown job option 'colour'"),
        (lambda q: q.create("t", {}).ttl(0), "ttl must be an integer >= 1"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(queue: pykue.Queue, r: redis.Redis, prefix: str,
                                                         call: Any, message: str) -> None:  # fmt: skip
    with pytest.raises(pykue.InvalidJobError, match=message):
        call(queue)
    assert r.get(f"{prefix}:ids") is None and r.zcard(f"{prefix}:jobs") == 0


def test_bulk_save_validates_all_before_writing(queue: pykue.Queue, r: redis.Redis, prefix: str) -> None:
    jobs = [queue.create("b", {"i": i}) for i in range(5)] + [queue.create("b", {"bad": object()})]
    with pytest.raises(pykue.InvalidJobError):
        queue.save_many(jobs)
    assert r.zcard(f"{prefix}:jobs") == 0


def test_custom_python_backoff_runs_in_worker_and_is_never_stored_as_code(queue: pykue.Queue, r: redis.Redis,
                                                                          prefix: str) -> None:  # fmt: skip
    def backoff(attempts: int, delay: int) -> int:
        return 120 * attempts

    job = queue.create("cb", {}).attempts(2).backoff(backoff).save()
    stored = r.hget(f"{prefix}:job:{job.id}", "backoff")
    assert stored.startswith('{"type":"fixed","delay":0,"pykue":"tests.test_reliability:test_custom_python')
    calls: list[int] = []

    def handler(j: pykue.Job) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("again")

    queue.process("cb", handler)
    wait_for(lambda: queue.complete_count() == 1)
    assert r.hget(f"{prefix}:job:{job.id}", "delay") == "120"


def test_javascript_backoff_source_is_not_evaluated(queue: pykue.Queue, r: redis.Redis, prefix: str,
                                                    caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    job = queue.create("js", {}).attempts(2).save()
    r.hset(f"{prefix}:job:{job.id}", "backoff", "function (attempts, delay) { return 50; }")
    calls: list[int] = []

    def handler(j: pykue.Job) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("retry me")

    with caplog.at_level("WARNING", logger="pykue.worker"):
        queue.process("js", handler)
        wait_for(lambda: queue.complete_count() == 1)
    assert any("JavaScript source, which pykue never evaluates" in m for m in caplog.messages)


def test_token_drift_is_repaired(queue: pykue.Queue, r: redis.Redis, prefix: str) -> None:
    release = threading.Event()
    queue.save_many(queue.create("tok", {}) for _ in range(3))
    queue.process("tok", 1, lambda j: release.wait(10))
    wait_for(lambda: queue.active_count() == 1)
    r.delete(f"{prefix}:tok:jobs")  # tokens lost, as in Kue's #130: Node workers would sleep
    wait_for(lambda: r.llen(f"{prefix}:tok:jobs") == 2, what="token repair")
    release.set()
    wait_for(lambda: queue.complete_count() == 3)
    assert r.llen(f"{prefix}:tok:jobs") == 0
