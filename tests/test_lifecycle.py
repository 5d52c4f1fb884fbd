"""Job lifecycle, one body per scenario run against both twins (the `twin` fixture):
events, progress, logs, results, failures, retries, priorities, delays, state changes."""

from __future__ import annotations

import threading
import time
from typing import Any

import redis

import pykue
from tests.helpers import wait_for
from tests.twins import Twin


def test_complete_with_progress_log_and_events(tq: Any, r: redis.Redis, prefix: str) -> None:
    queue = tq
    seen: list[Any] = []
    done = threading.Event()
    leased: list[Any] = []
    job = queue.create("email", {"to": "a@b"})
    job.on("start", lambda t: seen.append(("start", t)))
    job.on("progress", lambda pct, data: seen.append(("progress", pct, data)))
    job.on("complete", lambda result: (seen.append(("complete", result)), done.set()))
    job.save()

    def handler(j: pykue.Job) -> dict[str, Any]:
        leased.append(r.hget(f"{prefix}:pykue:owners", str(j.id)))
        leased.append([k for k in r.scan_iter(match=f"{prefix}:pykue:held:*") if r.sismember(k, str(j.id))])
        j.progress(1, 3, {"step": 1})
        j.log("working on %s", j.data["to"])
        return {"ok": True, "id": j.id}

    queue.process("email", handler)
    assert done.wait(10)
    assert seen == [("start", "email"), ("progress", 33, {"step": 1}), ("complete", {"ok": True, "id": 1})]
    h = r.hgetall(f"{prefix}:job:1")
    assert h["state"] == "complete" and h["progress"] == "100" and h["attempts"] == "1"
    assert h["result"] == '{"ok":true,"id":1}' and h["progress_data"] == '{"step":1}'
    assert h["workerId"].startswith("kue:") and h["workerId"].endswith(":email:1")
    assert int(r.get(f"{prefix}:stats:work-time")) == int(h["duration"])
    assert queue.job_logs(1) == ["working on a@b"]
    # the lease existed while the job ran (under these very names), and is gone after
    assert leased[0] and len(leased[1]) == 1
    assert r.hlen(f"{prefix}:pykue:owners") == 0 and not list(r.scan_iter(match=f"{prefix}:pykue:held:*"))


def test_lifecycle_priority_result_and_logs(tq: Any) -> None:
    q = tq
    finished = threading.Event()
    seen: list[Any] = []
    job = q.create("video", {"n": 2}, priority="critical", attempts=2)
    job.on("progress", lambda pct: seen.append(pct))
    job.on("complete", lambda result: (seen.append(result), finished.set()))
    job.save()

    def handler(j: pykue.Job) -> int:
        j.progress(50, 100)
        j.log("half")
        return int(j.data["n"]) * 21

    q.process("video", 3, handler)
    assert finished.wait(10)
    assert seen == [50, 42]
    got = q.get_job(job.id or 0)
    assert got.state == "complete" and got.result == 42 and got.opts.priority == -15
    assert got.logs() == ["half"]
    assert q.stats()["completeCount"] == 1


def test_kue_style_done_called_twice_completes_once(tq: Any, r: redis.Redis, prefix: str) -> None:
    queue = tq
    completes: list[Any] = []
    queue.on("job complete", lambda job_id, result: completes.append((job_id, result)))
    job = queue.create("t", {}).save()

    def handler(j: pykue.Job, done: Any) -> None:
        done(None, "first")
        done(None, "second")
        done(Exception("late"))

    queue.process("t", handler)
    wait_for(lambda: completes, what="complete event")
    wait_for(lambda: queue.complete_count() == 1)
    h = r.hgetall(f"{prefix}:job:{job.id}")
    assert h["attempts"] == "1" and h["result"] == '"first"' and "error" not in h
    assert completes == [(1, "first")]


def test_failed_attempts_with_exponential_backoff(tq: Any, r: redis.Redis, prefix: str) -> None:
    queue = tq
    events: list[Any] = []
    final = threading.Event()
    job = queue.create("t", {}).attempts(3).backoff({"type": "exponential", "delay": 100})
    job.on("failed attempt", lambda msg, n: events.append(("failed attempt", msg, n)))
    job.on("failed", lambda msg: (events.append(("failed", msg)), final.set()))
    job.save()
    delays: list[str] = []

    def handler(j: pykue.Job) -> None:
        delays.append(r.hget(f"{prefix}:job:{j.id}", "delay") or "")
        raise ValueError(f"boom {j.id}")

    queue.process("t", handler)
    assert final.wait(10)
    assert events == [("failed attempt", "boom 1", 1), ("failed attempt", "boom 1", 2), ("failed", "boom 1")]
    assert delays == ["", "50", "150"]  # Kue: round(d/2 * (2^n - 1))
    h = r.hgetall(f"{prefix}:job:{job.id}")
    assert h["state"] == "failed" and h["attempts"] == "3" and h["error"].startswith("ValueError: boom 1\n")
    assert queue.job_logs(job.id or 0) == ["ValueError: boom 1"] * 3


def test_retry_without_backoff_goes_straight_back(tq: Any) -> None:
    queue = tq
    calls: list[int] = []

    def handler(j: pykue.Job, done: Any) -> None:
        calls.append(1)
        done("nope" if len(calls) < 2 else None)

    job = queue.create("t", {}, attempts=2).save()
    queue.process("t", handler)
    wait_for(lambda: queue.complete_count() == 1)
    got = queue.get_job(job.id or 0)
    assert got.attempts_made == 2 and got.error == "nope" and len(calls) == 2


def test_priorities_are_honoured(tq: Any) -> None:
    queue = tq
    order: list[str] = []
    for name in ("low", "normal", "critical", "medium", "high", "normal"):
        queue.create("p", {"name": name}).priority(name).save()
    queue.process("p", 1, lambda j: order.append(j.data["name"]))
    wait_for(lambda: queue.complete_count() == 6)
    assert order == ["critical", "high", "medium", "normal", "normal", "low"]


def test_delayed_job_promoted_then_processed(tq: Any) -> None:
    queue = tq
    started: list[float] = []
    t0 = time.time()
    job = queue.create("d", {}).delay(300).save()
    assert queue.get_job(job.id or 0).state == "delayed"
    queue.process("d", lambda j: started.append(time.time()))
    wait_for(lambda: started, what="delayed job to run")
    assert started[0] - t0 >= 0.29
    assert started[0] - t0 < 1.5


def test_concurrency_limit_is_honoured(tq: Any) -> None:
    queue = tq
    lock = threading.Lock()
    running, peak = [0], [0]

    def handler(j: pykue.Job) -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1

    queue.save_many(queue.create("c", {"i": i}) for i in range(8))
    queue.process("c", 2, handler)
    wait_for(lambda: queue.complete_count() == 8)
    assert peak[0] == 2


def test_ttl_exceeded_fails_the_job(tq: Any) -> None:
    queue = tq
    release = threading.Event()
    failed = threading.Event()
    messages: list[str] = []
    job = queue.create("slow", {}).ttl(200)
    job.on("failed", lambda msg: (messages.append(msg), failed.set()))
    job.save()
    queue.process("slow", lambda j: release.wait(5))
    assert failed.wait(10)
    release.set()
    assert messages == ["TTL exceeded"]
    assert queue.get_job(job.id or 0).state == "failed"


def test_shutdown_fails_running_jobs_with_shutdown(twin: Twin, prefix: str) -> None:
    q = twin.queue(prefix)
    started = threading.Event()
    block = threading.Event()
    job = q.create("s", {}).save()
    q.process("s", lambda j: (started.set(), block.wait(5)))
    assert started.wait(5)
    q.shutdown(0.2)
    block.set()
    check = twin.queue(prefix, settings=None)
    got = check.get_job(job.id or 0)
    assert got.state == "failed" and got.error == "Shutdown"


def test_remove_state_and_priority_changes(tq: Any, r: redis.Redis, prefix: str) -> None:
    queue = tq
    job = queue.create("m", {"a": 1}).save()
    job.set_priority("high")
    assert r.zscore(f"{prefix}:jobs:inactive", "01|1") == -10
    job.complete()
    assert queue.get_job(1).state == "complete" and queue.complete_count("m") == 1
    job.inactive()
    assert queue.inactive_count("m") == 1 and r.llen(f"{prefix}:m:jobs") == 2
    assert job.remove() is True
    assert not r.exists(f"{prefix}:job:1") and r.zcard(f"{prefix}:jobs") == 0
    assert queue.card("inactive") == 0
    assert job.remove() is False


def test_remove_on_complete(tq: Any, r: redis.Redis, prefix: str) -> None:
    queue = tq
    queue.create("roc", {}).remove_on_complete().save()
    removed = threading.Event()
    queue.on("job remove", lambda job_id, t: removed.set())
    queue.process("roc", lambda j: time.sleep(0.02))
    assert removed.wait(5)
    assert not r.exists(f"{prefix}:job:1") and r.zcard(f"{prefix}:jobs") == 0
    assert int(r.get(f"{prefix}:stats:work-time") or 0) >= 20  # the removed job's run still counts


def test_ranges_and_counts(tq: Any) -> None:
    queue = tq
    queue.save_many(queue.create("a" if i % 2 else "b", {"i": i}) for i in range(12))
    assert queue.card() == 12 and queue.inactive_count("a") == 6
    assert queue.job_ids("inactive", "a", 0, 2) == [2, 4, 6]
    assert queue.job_ids("inactive", None, 0, 3, "desc") == [4, 3, 2, 1]
    assert [j.data["i"] for j in queue.jobs("inactive", "b", 0, 1)] == [0, 2]
    assert queue.types() == ["a", "b"]
    assert queue.stats()["inactiveCount"] == 12
