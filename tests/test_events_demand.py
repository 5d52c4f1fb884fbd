"""The events subscription on demand (issue 13): a worker reads `P:events` only while it must.

Every job publishes its events to the whole fleet; a worker subscribes only while user code
listens, while it runs a job with a TTL (Kue's TTL checker may announce it), and while its
own TTL checker waits for Kue workers' acks. Node's checker is simulated here by publishing
its message; tests/interop runs the same against the real kue@0.11.6."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

import pykue
import pykue._worker
from pykue import Settings
from tests.helpers import wait_for
from tests.test_watchdog import Fleet


def numsub(r: redis.Redis, channel: str) -> int:
    return int(r.pubsub_numsub(channel)[0][1])


def subscribes(r: redis.Redis) -> int:
    return int(r.info("commandstats").get("cmdstat_subscribe", {}).get("calls", 0))


@pytest.fixture
def short_linger(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(pykue._worker, "EVENTS_LINGER_S", 0.05)
    yield


def test_a_draining_worker_without_ttl_jobs_or_listeners_never_subscribes(
    queue: pykue.Queue, r: redis.Redis, prefix: str
) -> None:
    channel = f"{prefix}:events"
    queue.save_many([queue.create("plain", {"n": i}) for i in range(300)])
    seen: list[int] = []
    queue.process("plain", 10, lambda job: seen.append(numsub(r, channel)))
    wait_for(lambda: queue.complete_count("plain") == 300, what="the drain")
    assert len(seen) == 300 and set(seen) == {0}
    assert numsub(r, channel) == 0


def test_a_ttl_jobs_handler_starts_subscribed_and_the_subscription_lapses_after_it(
    queue: pykue.Queue, r: redis.Redis, prefix: str, short_linger: None
) -> None:
    channel = f"{prefix}:events"
    seen: dict[str, int] = {}
    queue.process("w", lambda job: seen.setdefault(job.data["name"], numsub(r, channel)))
    queue.create("w", {"name": "plain"}).save()
    wait_for(lambda: "plain" in seen, what="the plain job")
    queue.create("w", {"name": "ttl"}).ttl(60_000).save()
    wait_for(lambda: "ttl" in seen, what="the TTL job")
    wait_for(lambda: numsub(r, channel) == 0, what="the subscription to lapse after the TTL job")
    queue.create("w", {"name": "plain again"}).save()
    wait_for(lambda: "plain again" in seen, what="the next plain job")
    assert seen == {"plain": 0, "ttl": 1, "plain again": 0}


def test_a_stream_of_ttl_jobs_subscribes_once(queue: pykue.Queue, r: redis.Redis, prefix: str) -> None:
    """The subscription lingers after a TTL job, so the next one does not subscribe again."""
    before = subscribes(r)
    queue.save_many([queue.create("ttl", {}).ttl(60_000) for _ in range(30)])
    queue.process("ttl", lambda job: None)
    wait_for(lambda: queue.complete_count("ttl") == 30, what="the TTL jobs")
    assert subscribes(r) - before == 1


def test_kues_ttl_checker_is_answered_by_a_worker_that_was_not_subscribed(
    queue: pykue.Queue, r: redis.Redis, prefix: str
) -> None:
    channel = f"{prefix}:events"
    started, release = threading.Event(), threading.Event()
    queue.process("w", lambda job: job.data.get("ttl") and (started.set(), release.wait(10)))
    queue.create("w", {}).save()
    wait_for(lambda: queue.complete_count("w") == 1, what="a plain job")
    assert numsub(r, channel) == 0
    job = queue.create("w", {"ttl": True}).ttl(60_000).save()
    assert started.wait(10)
    observer = r.pubsub(ignore_subscribe_messages=True)
    observer.subscribe(channel)
    r.publish(channel, json.dumps({"id": job.id, "event": "ttl exceeded", "args": ["ttl exceeded"]}))  # Kue's checker
    heard: list[str] = []
    wait_for(lambda: _heard(observer, heard, job.id, "ttl exceeded ack"), what="the owner's ack")
    release.set()
    wait_for(lambda: r.hget(f"{prefix}:job:{job.id}", "state") == "failed", what="the job failed by its owner")
    assert r.hget(f"{prefix}:job:{job.id}", "error") == "TTL exceeded"
    observer.close()


def _heard(observer: Any, heard: list[str], job_id: Any, event: str) -> bool:
    while (msg := observer.get_message(timeout=0.01)) is not None:
        body = json.loads(msg["data"])
        if body["id"] == job_id:
            heard.append(body["event"])
    return event in heard


def test_user_listeners_hear_every_event_whatever_ttl_jobs_come_and_go(
    queue: pykue.Queue, prefix: str, short_linger: None
) -> None:
    completed: list[int] = []
    queue.on("job complete", lambda job_id, *rest: completed.append(job_id))
    first = queue.save_many([queue.create("w", {}).ttl(60_000) if i % 2 else queue.create("w", {}) for i in range(40)])
    queue.process("w", 4, lambda job: None)
    wait_for(lambda: len(completed) == 40, what="the first completions")
    second = queue.save_many([queue.create("w", {}) for _ in range(40)])  # after the TTL jobs' holds ended
    wait_for(lambda: len(completed) == 80, what="the later completions")
    assert sorted(completed) == sorted(job.id for job in [*first, *second])


def test_pykues_ttl_checker_hears_a_kue_workers_ack_without_a_listener(
    url: str, r: redis.Redis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A Kue worker that acks fails its job itself, in its own time; pykue's checker, which
    announced it, must hear that ack (subscribing for it) and leave the job alone."""
    caplog.set_level(logging.WARNING, logger="pykue.watchdog")
    fleet = Fleet(r, prefix)
    started = int(time.time() * 1000) - 10_000
    fleet.job(1, "active", ttl=100, started_at=started, updated_at=started)  # a Node worker's
    channel = f"{prefix}:events"
    node = r.pubsub(ignore_subscribe_messages=True)
    node.subscribe(channel)
    state_when_node_fails: list[str | None] = []

    def node_worker() -> None:
        heard: list[str] = []
        wait_for(lambda: _heard(node, heard, 1, "ttl exceeded"), what="pykue's announcement")
        r.publish(channel, json.dumps({"id": 1, "event": "ttl exceeded ack", "args": ["ttl exceeded ack"]}))
        time.sleep(1.5)  # the scenario, not a wait: Node takes its time failing the job it acked
        state_when_node_fails.append(fleet.state(1))
        r.hset(fleet.keys.job(1), mapping={"state": "failed", "error": "failed by Node"})

    settings = Settings(lease_ms=1000, ttl_interval=0.05, block_timeout=0.2, ttl_grace_ms=300)
    q = pykue.create_queue(url, prefix=prefix, settings=settings)
    thread = threading.Thread(target=node_worker)
    thread.start()
    try:
        q.process("unrelated", lambda job: None)  # runs pykue's TTL checker
        thread.join(20)
    finally:
        q.shutdown(1)
        node.close()
    assert state_when_node_fails == ["active"]
    assert r.hget(fleet.keys.job(1), "attempts") is None
    assert not any("no Kue worker acked" in m for m in caplog.messages)


def test_the_subscription_comes_back_after_its_connection_is_killed_and_ends_with_shutdown(
    url: str, r: redis.Redis, prefix: str
) -> None:
    """One blocking reader per subscription: it must notice a dropped connection, and a
    shutdown must end it (no subscriber left behind)."""
    channel = f"{prefix}:events"
    q = pykue.create_queue(url, prefix=prefix)
    heard: list[int] = []
    q.on("job progress", lambda job_id, *rest: heard.append(job_id))
    assert numsub(r, channel) == 1
    assert r.client_kill_filter(_type="pubsub") >= 1
    message = json.dumps({"id": 7, "event": "progress", "args": ["progress", 1]})
    wait_for(lambda: r.publish(channel, message) and heard, what="an event after the reconnect")
    q.shutdown(1)
    wait_for(lambda: numsub(r, channel) == 0, what="no subscriber after shutdown")
