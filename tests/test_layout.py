"""The Redis layout of a saved job is Kue 0.11's, key by key and field by field."""

from __future__ import annotations

import json
import threading

import redis

import pykue
from pykue import EmbeddedRedis
from pykue._codec import js_dumps
from pykue._keys import PROMOTION_LOCK, TTL_LOCK, Keys, zid
from tests.conftest import FAST
from tests.helpers import wait_for


def test_key_builder_strings() -> None:
    k = Keys("q")
    assert (k.ids, k.jobs, k.types, k.events, k.work_time) == (
        "q:ids", "q:jobs", "q:job:types", "q:events", "q:stats:work-time")  # fmt: skip
    assert (k.job(7), k.log(7), k.state("inactive"), k.state("failed", "email"), k.tokens("email")) == (
        "q:job:7", "q:job:7:log", "q:jobs:inactive", "q:jobs:email:failed", "q:email:jobs")  # fmt: skip
    assert [zid(1), zid(42), zid(1234567)] == ["01|1", "02|42", "07|1234567"]
    assert Keys("{q}").job(3) == "{q}:job:3"


def test_saved_job_hash_and_indexes(queue: pykue.Queue, r: redis.Redis, prefix: str) -> None:
    job = queue.create("email", {"title": "hello", "to": "a@b"}).priority("high").attempts(3)
    job.backoff({"type": "exponential", "delay": 100}).ttl(700).save()
    assert job.id == 1 and r.get(f"{prefix}:ids") == "1"
    h = r.hgetall(f"{prefix}:job:1")
    assert set(h) == {"max_attempts", "type", "created_at", "promote_at", "updated_at", "priority",
                      "data", "backoff", "ttl", "state"}  # fmt: skip
    assert h["type"] == "email" and h["priority"] == "-10" and h["max_attempts"] == "3"
    assert h["data"] == '{"title":"hello","to":"a@b"}'
    assert h["backoff"] == '{"type":"exponential","delay":100}' and h["ttl"] == "700"
    assert h["state"] == "inactive" and h["promote_at"] == h["created_at"]
    assert r.smembers(f"{prefix}:job:types") == {"email"}
    assert r.zrange(f"{prefix}:jobs", 0, -1, withscores=True) == [("01|1", -10.0)]
    assert r.zrange(f"{prefix}:jobs:inactive", 0, -1, withscores=True) == [("01|1", -10.0)]
    assert r.zrange(f"{prefix}:jobs:email:inactive", 0, -1, withscores=True) == [("01|1", -10.0)]
    assert r.lrange(f"{prefix}:email:jobs", 0, -1) == ["1"]


def test_delayed_job_layout(queue: pykue.Queue, r: redis.Redis, prefix: str) -> None:
    job = queue.create("email", {"title": "delayed"}).delay(500).remove_on_complete().save()
    h = r.hgetall(f"{prefix}:job:{job.id}")
    assert h["state"] == "delayed" and h["delay"] == "500" and h["removeOnComplete"] == "true"
    assert int(h["promote_at"]) == int(h["created_at"]) + 500
    assert r.zscore(f"{prefix}:jobs:delayed", zid(job.id)) == int(h["promote_at"])
    assert r.zscore(f"{prefix}:jobs:email:delayed", zid(job.id)) == 0
    assert r.llen(f"{prefix}:email:jobs") == 0


def test_json_as_javascript_writes_it() -> None:
    assert js_dumps({"a": 1.0, "b": [2.5, "é", "\u2028"], "c": None}) == '{"a":1,"b":[2.5,"é","\u2028"],"c":null}'
    assert js_dumps('\x01\n"') == '"\\u0001\\n\\""'
    assert json.loads(js_dumps({"k": 10**20 * 1.0})) == {"k": 10**20}


def test_events_message_shape(queue: pykue.Queue, r: redis.Redis, prefix: str) -> None:
    ps = r.pubsub()
    ps.subscribe(f"{prefix}:events")
    assert ps.get_message(timeout=2)["type"] == "subscribe"
    queue.create("email", {"x": 1}).save()
    msg = ps.get_message(timeout=2)
    assert msg["data"] == '{"id":1,"event":"enqueue","args":["enqueue","email"]}'
    ps.close()


def test_hash_tagged_prefix_keeps_every_key_in_one_slot(prefix: str) -> None:
    """A lifecycle on a private server; every key of the whole database is checked while a
    job runs (leases exist) and at the end: a key written outside the prefix fails."""
    tagged = "{" + prefix + "}x"
    running, release = threading.Event(), threading.Event()
    with EmbeddedRedis() as srv, redis.Redis.from_url(srv.url, decode_responses=True) as client:
        q = pykue.create_queue(srv.url, prefix=tagged, settings=FAST)
        try:
            q.create("t", {}).save()
            q.create("t", {}).delay(50).save()
            q.create("u", {"fail": 1}).attempts(2).backoff(True).save()
            q.process("t", lambda job: job.log("x") and running.set() and release.wait(10))
            q.process("u", lambda job: 1 / 0)
            assert running.wait(10)
            during = set(client.scan_iter(count=1000))
            release.set()
            wait_for(lambda: q.complete_count() == 2 and q.failed_count() == 1, what="jobs to finish")
        finally:
            release.set()
            q.shutdown(1)
        after = set(client.scan_iter(count=1000))
    for keys in (during, after):
        outside = {k for k in keys if not k.startswith(tagged + ":")}
        assert len(keys - outside) >= 8  # the job hashes, logs, state sets, ids, types, ...
        assert outside <= {PROMOTION_LOCK, TTL_LOCK}, outside  # only Kue's own unprefixed locks (shared with Node)
    assert any(":pykue:" in k for k in during)  # leases were there to be checked
