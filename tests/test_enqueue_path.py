"""The producer's path (issue 13): enqueue.lua writes Kue's index keys once per key for a
whole batch, and save() sends its EVALSHA straight on a pooled connection. The layout each
job ends in, the events Node listens to, and the client's own recoveries (a flushed script
cache, a killed connection) must be what they were."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest
import redis

import pykue
from pykue import _scripts as sc
from pykue._codec import now_ms
from tests.helpers import wait_for
from tests.twins import Twin


def zid(job_id: int) -> str:
    return f"{len(str(job_id)):02d}|{job_id}"


def test_a_mixed_batch_leaves_every_job_in_kues_layout(tq: Any, r: redis.Redis, prefix: str) -> None:
    events = r.pubsub()
    events.subscribe(f"{prefix}:events")
    wait_for(lambda: events.get_message(timeout=0.1), what="the subscription")
    specs = [("a", 0, 0), ("b", -10, 0), ("a", 5, 60_000), ("b", 0, 0), ("a", -15, 0), ("b", 10, 90_000)]
    jobs = tq.save_many(tq.create(t, {"i": i}, priority=p, delay=d) for i, (t, p, d) in enumerate(specs))
    assert [j.id for j in jobs] == [1, 2, 3, 4, 5, 6] and r.get(f"{prefix}:ids") == "6"
    assert r.smembers(f"{prefix}:job:types") == {"a", "b"}
    for job, (jtype, pri, delay) in zip(jobs, specs, strict=True):
        state = "delayed" if delay else "inactive"
        h = r.hgetall(f"{prefix}:job:{job.id}")
        assert h["type"] == jtype and h["state"] == state and h["priority"] == str(pri)
        assert json.loads(h["data"]) == {"i": job.id - 1} and job.fields == h
        assert r.zscore(f"{prefix}:jobs", zid(job.id)) == pri
        assert r.zscore(f"{prefix}:jobs:{jtype}:{state}", zid(job.id)) == pri
        score = int(h["promote_at"]) if delay else pri
        assert r.zscore(f"{prefix}:jobs:{state}", zid(job.id)) == score
        other = "inactive" if delay else "delayed"
        assert r.zscore(f"{prefix}:jobs:{other}", zid(job.id)) is None
    assert r.lrange(f"{prefix}:a:jobs", 0, -1) == r.lrange(f"{prefix}:b:jobs", 0, -1) == ["1", "1"]
    heard = [json.loads(m["data"]) for m in iter(lambda: events.get_message(timeout=0.5), None)]
    events.close()
    assert heard == [{"id": i, "event": "enqueue", "args": ["enqueue", t]} for i, t in ((1, "a"), (2, "b"), (4, "b"),
                                                                                      (5, "a"))]  # fmt: skip


def test_a_batch_larger_than_one_variadic_call_indexes_every_job(queue: pykue.Queue, r: redis.Redis,
                                                                 prefix: str) -> None:  # fmt: skip
    """4,500 jobs in one script call: more index entries than Lua's unpack takes at once."""
    fields = ["type", "w", "data", "{}", "priority", "0", "state", "inactive", "max_attempts", "1"]
    n = 4500
    ids = queue.scripts.run(sc.enqueue(queue.keys, now=now_ms(), jobs=[("w", "inactive", 0, 0, fields)] * n))
    assert [int(i) for i in ids] == list(range(1, n + 1))
    assert r.zcard(f"{prefix}:jobs") == r.zcard(f"{prefix}:jobs:inactive") == r.zcard(f"{prefix}:jobs:w:inactive") == n
    assert r.llen(f"{prefix}:w:jobs") == n and r.get(f"{prefix}:ids") == str(n)


def test_a_dependent_and_a_plain_job_in_one_batch(queue: pykue.Queue, r: redis.Redis, prefix: str) -> None:
    parent = queue.create("p", {}).save()
    child, plain = queue.save_many([queue.create("c", {}).after(parent), queue.create("c", {})])
    assert (child.id, plain.id) == (2, 3) and child.state == "delayed" and plain.state == "inactive"
    assert r.zscore(f"{prefix}:jobs:delayed", zid(2)) == float("inf")
    assert r.zscore(f"{prefix}:jobs:c:delayed", zid(2)) == 0 and r.zscore(f"{prefix}:jobs:c:inactive", zid(3)) == 0
    assert r.zscore(f"{prefix}:jobs:inactive", zid(2)) is None and r.zscore(f"{prefix}:jobs:inactive", zid(3)) == 0
    assert r.llen(f"{prefix}:c:jobs") == 1  # only the runnable one wakes a worker
    assert r.smembers(f"{prefix}:pykue:deps:2") == {"1"} and r.smembers(f"{prefix}:pykue:dependents:1") == {"2"}


def test_a_stale_hash_at_a_new_id_is_written_over_not_refused(queue: pykue.Queue, r: redis.Redis,
                                                             prefix: str) -> None:  # fmt: skip
    """New ids' keys are checked with one EXISTS; one that exists is then checked by type."""
    r.hset(f"{prefix}:job:2", "stale", "x")
    jobs = queue.save_many([queue.create("w", {}) for _ in range(3)])
    assert [j.id for j in jobs] == [1, 2, 3] and r.hget(f"{prefix}:job:2", "type") == "w"


def test_save_loads_the_script_again_after_a_script_flush(tq: Any, r: redis.Redis) -> None:
    tq.create("w", {}).save()
    r.script_flush()
    assert tq.create("w", {}).save().id == 2
    assert tq.save_many([tq.create("w", {}) for _ in range(2)])[1].id == 4


def test_save_after_its_connection_was_killed(twin: Twin, tq: Any, r: redis.Redis, prefix: str) -> None:
    """The kept connection is checked as the pool checks one it hands out: a connection the
    server closed is replaced before the save is sent on it. (The asyncio loop may not have
    read the close yet when the save starts: then that save fails, and the next one works.)"""
    tq.create("w", {}).save()
    assert r.client_kill_filter(_type="normal", skipme=True) >= 1  # the producer's kept connection
    if twin.is_async:
        with contextlib.suppress(redis.ConnectionError):
            tq.create("w", {}).save()
    else:
        assert tq.create("w", {}).save().id == 2
    job = tq.create("w", {"last": True}).save()
    assert r.zcard(f"{prefix}:jobs") == job.id
    assert json.loads(r.hget(f"{prefix}:job:{job.id}", "data")) == {"last": True}


def test_concurrent_asyncio_saves_each_get_their_own_reply(url: str, prefix: str) -> None:
    """One save at a time uses the kept connection; the others take pooled ones."""

    async def main() -> list[Any]:
        q = pykue.create_async_queue(url, prefix=prefix)
        try:
            await q.create("w", {"n": -1}).save()  # the lane now keeps a connection
            jobs = await asyncio.gather(*(q.create("w", {"n": n}).save() for n in range(60)))
            return [(job.id, (await q.get_job(job.id or 0)).data["n"], n) for n, job in enumerate(jobs)]
        finally:
            await q.shutdown()

    saved = asyncio.run(main())
    assert sorted(i for i, _, _ in saved) == list(range(2, 62))
    assert all(stored == n for _, stored, n in saved)


def test_a_save_cancelled_while_waiting_leaves_no_reply_for_the_next(url: str, prefix: str, r: redis.Redis) -> None:
    async def main() -> tuple[int, Any]:
        q = pykue.create_async_queue(url, prefix=prefix)
        try:
            await q.create("w", {"n": "first"}).save()
            r.client_pause(400)  # the next save is sent, and its reply held back
            pending = asyncio.ensure_future(q.create("w", {"n": "cancelled"}).save())
            for _ in range(1000):  # the lane is taken once the command is written
                if q._lane.busy:
                    break
                await asyncio.sleep(0.001)
            assert q._lane.busy
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pending
            job = await q.create("w", {"n": "next"}).save()
            return job.id or 0, (await q.get_job(job.id or 0)).data["n"]
        finally:
            await q.shutdown()

    job_id, stored = asyncio.run(main())
    assert stored == "next" and job_id >= 2


def test_an_asyncio_save_replaces_a_kept_connection_the_server_closed(url: str, prefix: str, r: redis.Redis) -> None:
    async def main() -> int:
        q = pykue.create_async_queue(url, prefix=prefix)
        try:
            await q.create("w", {}).save()
            assert r.client_kill_filter(_type="normal", skipme=True) >= 1
            ((_, kept),) = q._lane._held.values()  # the one connection the queue's saves keep
            for _ in range(1000):  # until the loop has read the server's close on the kept connection
                if await kept.can_read():
                    break
                await asyncio.sleep(0.001)
            return (await q.create("w", {}).save()).id or 0
        finally:
            await q.shutdown()

    assert asyncio.run(main()) == 2


def test_a_corrupt_id_counter_refuses_the_save_and_writes_nothing(queue: pykue.Queue, r: redis.Redis,
                                                                 prefix: str) -> None:  # fmt: skip
    r.hset(f"{prefix}:ids", "x", "1")
    with pytest.raises(redis.ResponseError, match=f"{prefix}:ids is a hash, not a string; nothing was written"):
        queue.create("w", {}).save()
    r.delete(f"{prefix}:ids")
    r.set(f"{prefix}:ids", "12abc")
    with pytest.raises(redis.ResponseError, match=f"{prefix}:ids is not an integer"):
        queue.create("w", {}).save()
    assert r.zcard(f"{prefix}:jobs") == 0 and r.exists(f"{prefix}:job:1", f"{prefix}:job:13") == 0
    r.set(f"{prefix}:ids", "12")
    assert queue.create("w", {}).save().id == 13
