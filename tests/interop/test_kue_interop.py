"""pykue and the real Node Kue 0.11.6 on one Redis, in both directions."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from typing import Any

import pytest
import redis

import pykue
from pykue import EmbeddedRedis
from tests.conftest import FAST
from tests.helpers import wait_for
from tests.interop.conftest import Kue, pykue_process, stop
from tests.test_seed_programs import check_task8_transcript


def views_agree(kue: Kue, url: str, job_type: str) -> dict[str, int]:
    """Kue's own counts (Node's queue.cardByType) and pykue's, state by state."""
    [node_counts] = kue.run("counts", job_type)
    q = pykue.create_queue(url)
    mine = {s: q.card(s, job_type) for s in pykue.STATES}
    q.shutdown()
    assert node_counts == mine
    return mine


def test_node_creator_pykue_processor_then_the_other_way(kue: Kue, kue_redis: EmbeddedRedis) -> None:
    worker = pykue_process(kue_redis.url, "q", "processor")
    try:
        node_lines = [ln for ln in kue.run_text("creator", timeout=60)]
    finally:
        sent = stop(worker).splitlines()
    check_task8_transcript(node_lines)
    assert len([ln for ln in sent if ln.startswith("Sending notification to ")]) == 9
    assert views_agree(kue, kue_redis.url, "push_notification_code_2")["complete"] == 9

    node_worker = kue.spawn("processor")
    try:
        creator = pykue_process(kue_redis.url, "q", "creator")
        out, _ = creator.communicate(timeout=60)
    finally:
        node_sent = stop(node_worker).splitlines()
    check_task8_transcript(out.splitlines(), first_id=12)
    assert len([ln for ln in node_sent if ln.startswith("Sending notification to ")]) == 9
    assert views_agree(kue, kue_redis.url, "push_notification_code_2") == {
        "inactive": 0, "active": 0, "complete": 18, "failed": 4, "delayed": 0}  # fmt: skip


def test_job_get_agrees_both_ways(kue: Kue, kue_redis: EmbeddedRedis) -> None:
    q = pykue.create_queue(kue_redis.url)
    job = q.create("mail", {"to": "é@x", "n": [1, 2.5]}, priority="high", attempts=3, ttl=900,
                   backoff={"type": "exponential", "delay": 100}).save()  # fmt: skip
    [seen] = kue.run("get", str(job.id))
    mine = q.get_job(job.id or 0).to_json()
    node_json = seen["json"]
    for key in ("type", "data", "priority", "state", "created_at", "promote_at", "updated_at", "ttl"):
        assert str(node_json[key]) == str(mine[key]), key
    assert node_json["attempts"] == {"made": 0, "remaining": 3, "max": 3} == mine["attempts"]
    assert seen["backoff"] == {"type": "exponential", "delay": 100}

    [created] = kue.run("create", "mail", '{"from":"node"}', '{"priority":"low","attempts":2,"delay":5000}')
    theirs = q.get_job(created["id"])
    [seen] = kue.run("get", str(created["id"]))
    assert theirs.data == {"from": "node"} and theirs.opts.priority == 10 and theirs.opts.attempts == 2
    assert theirs.state == "delayed" and theirs.opts.delay == 5000
    assert theirs.fields == seen["raw"]
    assert q.stats()["delayedCount"] == 1 and kue.run("counts", "mail")[0]["delayed"] == 1
    q.shutdown()


def test_attempts_and_backoff_across_languages(kue: Kue, kue_redis: EmbeddedRedis) -> None:
    q = pykue.create_queue(kue_redis.url, settings=FAST)
    delays: list[str | None] = []

    def refuse(job: pykue.Job) -> None:
        delays.append(q.client.hget(q.keys.job(job.id or 0), "delay"))
        raise RuntimeError("pykue says no")

    q.process("retry", refuse)
    events = kue.run("create", "retry", "{}", '{"attempts":3,"backoff":{"type":"exponential","delay":100}}',
                     "watch", timeout=30)  # fmt: skip
    q.shutdown(1)
    job_id = events[0]["id"]
    seen = [(e["event"], e["args"]) for e in events[1:] if e["event"] in ("failed attempt", "failed")]
    assert seen == [
        ("failed attempt", ["pykue says no", 1]),
        ("failed attempt", ["pykue says no", 2]),
        ("failed", ["pykue says no", None]),
    ]  # fmt: skip; Kue publishes the trailing null
    assert delays == [None, "50", "150"]
    [got] = kue.run("get", str(job_id))
    assert got["json"]["attempts"] == {"made": 3, "remaining": 0, "max": 3} and got["json"]["state"] == "failed"
    assert views_agree(kue, kue_redis.url, "retry")["failed"] == 1

    # and pykue's producer hears a Node worker's failures
    q2 = pykue.create_queue(kue_redis.url, settings=FAST)
    heard: list[tuple[str, Any]] = []
    done = threading.Event()
    job = q2.create("nodefail", {}, attempts=2, backoff={"type": "fixed", "delay": 100})
    job.on("failed attempt", lambda msg, n: heard.append(("failed attempt", (msg, n))))
    job.on("failed", lambda msg: (heard.append(("failed", msg)), done.set()))
    job.save()
    worker = kue.spawn("work", "nodefail", "fail")
    try:
        assert done.wait(20)
    finally:
        stop(worker)
    assert heard == [("failed attempt", (f"node says no {job.id}", 1)), ("failed", f"node says no {job.id}")]
    assert q2.get_job(job.id or 0).attempts_made == 2
    q2.shutdown()
    assert views_agree(kue, kue_redis.url, "nodefail")["failed"] == 1


def test_delayed_jobs_promoted_once_with_both_promoters_running(kue: Kue, kue_redis: EmbeddedRedis) -> None:
    r = redis.Redis.from_url(kue_redis.url, decode_responses=True)
    ps = r.pubsub()
    ps.subscribe("q:events")
    q = pykue.create_queue(kue_redis.url, settings=FAST)
    ran: list[int] = []
    q.process("later", lambda j: ran.append(j.id))
    node_worker = kue.spawn("work", "elsewhere", "ok")  # a Node process runs Kue's promoter too
    try:
        created = [kue.run("create", "later", "{}", '{"delay":300}')[0]["id"] for _ in range(3)]
        created += [q.create("later", {}).delay(300).save().id for _ in range(3)]
        wait_for(lambda: sorted(ran) == sorted(created), timeout=20, what="delayed jobs to run")
    finally:
        stop(node_worker)
        q.shutdown(1)
    promotions: Counter[int] = Counter()
    while (msg := ps.get_message(timeout=0.5)) is not None:
        if msg["type"] == "message" and '"event":"promotion"' in msg["data"]:
            promotions[int(msg["data"].split('"id":')[1].split(",")[0])] += 1
    assert promotions == dict.fromkeys(created, 1)
    assert Counter(ran) == dict.fromkeys(created, 1)
    ps.close()
    assert views_agree(kue, kue_redis.url, "later")["complete"] == 6


def test_priorities_logs_remove_on_complete_and_ttl(kue: Kue, kue_redis: EmbeddedRedis) -> None:
    q = pykue.create_queue(kue_redis.url, settings=FAST)
    for name in ("low", "normal", "critical", "high"):
        kue.run("create", "prio", f'{{"name":"{name}"}}', f'{{"priority":"{name}"}}')
    order: list[str] = []

    def work(job: pykue.Job) -> None:
        order.append(job.data["name"])
        job.log("pykue saw %s", job.data["name"])

    q.process("prio", 1, work)
    wait_for(lambda: len(order) == 4)
    assert order == ["critical", "high", "normal", "low"]
    wait_for(lambda: q.complete_count("prio") == 4)
    assert kue.run("logs", "3") == [["pykue saw critical"]]
    kue.run("log", "3", "node wrote this")
    assert q.job_logs(3) == ["pykue saw critical", "node wrote this"]
    assert views_agree(kue, kue_redis.url, "prio")["complete"] == 4

    [roc] = kue.run("create", "roc", "{}", '{"removeOnComplete":true}')
    q.process("roc", lambda j: "x")
    wait_for(lambda: not q.client.exists(q.keys.job(roc["id"])), what="removeOnComplete")

    release = threading.Event()
    q.process("ttl", lambda j: release.wait(10))
    events = kue.run("create", "ttl", "{}", '{"ttl":300}', "watch", timeout=30)
    release.set()
    assert [e["args"] for e in events if e.get("event") == "failed"] == [["TTL exceeded", None]]
    q.shutdown(1)


def test_node_function_backoff_is_never_evaluated(kue: Kue, kue_redis: EmbeddedRedis,
                                                  caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    [created] = kue.run("create", "fn", "{}", '{"attempts":2,"backoff":"function"}')
    q = pykue.create_queue(kue_redis.url, settings=FAST)
    assert q.client.hget(q.keys.job(created["id"]), "backoff").startswith("function")
    calls: list[float] = []

    def flaky(job: pykue.Job) -> str:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RuntimeError("first try fails")
        return "ok"

    with caplog.at_level("WARNING", logger="pykue.worker"):
        q.process("fn", flaky)
        wait_for(lambda: q.complete_count("fn") == 1)
    q.shutdown(1)
    assert len(calls) == 2
    assert any("JavaScript source, which pykue never evaluates" in m for m in caplog.messages)


def test_node_ttl_checker_and_a_pykue_worker_agree(kue: Kue, kue_redis: EmbeddedRedis) -> None:
    """Kue's checker announces "ttl exceeded" and fails the job itself unless the owner acks;
    a pykue worker fails its own job atomically and acks, so the job ends once, failed."""
    only_node_checks = pykue.Settings(lease_ms=1000, ttl_interval=3600, promote_interval=0.05)
    q = pykue.create_queue(kue_redis.url, settings=only_node_checks)
    finals: list[tuple[str, Any]] = []
    q.on("job failed", lambda job_id, msg: finals.append(("failed", msg)))
    q.on("job complete", lambda job_id: finals.append(("complete", job_id)))
    acks: list[int] = []
    q.on("job ttl exceeded ack", lambda job_id: acks.append(job_id))
    late = threading.Event()
    q.process("slowpoke", lambda j: late.wait(10) and "too late")
    node_checker = kue.spawn("work", "unrelated", "ok")  # its queue runs Kue's TTL checker
    try:
        job = q.create("slowpoke", {}).ttl(300).save()
        wait_for(lambda: finals, timeout=15, what="the TTL failure")
        assert acks == [job.id]
    finally:
        late.set()  # the handler returns now: its completion must change nothing
        stop(node_checker)
    q.shutdown(1)
    got = pykue.create_queue(kue_redis.url).get_job(job.id or 0)
    assert got.state == "failed" and got.error == "TTL exceeded" and got.attempts_made == 1
    assert finals == [("failed", "TTL exceeded")]


def test_node_ttl_checker_is_answered_by_a_pykue_worker_that_was_not_subscribed(
    kue: Kue, kue_redis: EmbeddedRedis
) -> None:
    """No listener and no TTL job before: the worker is not subscribed to the events (issue 13);
    the TTL job's handler starts only once it is, so Kue's announcement is still answered."""
    only_node_checks = pykue.Settings(lease_ms=1000, ttl_interval=3600, promote_interval=0.05)
    q = pykue.create_queue(kue_redis.url, settings=only_node_checks)
    late = threading.Event()
    q.process("slowpoke", lambda j: j.data.get("slow") and late.wait(10) and "too late")
    q.create("slowpoke", {}).save()
    wait_for(lambda: q.complete_count("slowpoke") == 1, what="a job without a TTL")
    r = redis.Redis.from_url(kue_redis.url, decode_responses=True)
    assert r.pubsub_numsub("q:events") == [("q:events", 0)]
    observer = r.pubsub(ignore_subscribe_messages=True)
    observer.subscribe("q:events")
    node_checker = kue.spawn("work", "unrelated", "ok")  # its queue runs Kue's TTL checker
    heard: list[tuple[int, str]] = []

    def hear() -> list[tuple[int, str]]:
        while (msg := observer.get_message(timeout=0.01)) is not None:
            body = json.loads(msg["data"])
            heard.append((body["id"], body["event"]))
        return heard

    try:
        job = q.create("slowpoke", {"slow": True}).ttl(300).save()
        wait_for(lambda: (job.id, "failed") in hear(), timeout=15, what="the TTL failure")
    finally:
        late.set()
        stop(node_checker)
    q.shutdown(1)
    assert (job.id, "ttl exceeded ack") in heard and [e for i, e in heard if i == job.id].count("failed") == 1
    got = pykue.create_queue(kue_redis.url).get_job(job.id or 0)
    assert got.state == "failed" and got.error == "TTL exceeded" and got.attempts_made == 1
    observer.close()
    r.close()
