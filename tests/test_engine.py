"""The worker engine's cheap paths (issue 13) keep what the general ones did: a handler sees its
job's options and data as stored, corrupt data never reaches it, and a revocation is seen by a
sync handler waiting on it."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import threading
from typing import Any

import pytest
import redis

import pykue
from pykue import _codec as codec
from pykue._worker import Revocation
from tests.conftest import FAST
from tests.helpers import wait_for


def test_a_revocation_wakes_a_waiter_and_a_late_waiter_returns_at_once() -> None:
    revoked = Revocation()
    assert not revoked.is_set() and revoked.wait(0.01) is False
    woken: list[bool] = []
    waiter = threading.Thread(target=lambda: woken.append(revoked.wait(10)))
    waiter.start()
    wait_for(lambda: revoked._event is not None, what="the waiter to wait")
    revoked.set()
    waiter.join(10)
    assert woken == [True] and revoked.is_set()
    assert Revocation().wait(0) is False
    late = Revocation()
    late.set()
    assert late.wait(0) is True  # set before anyone waited: no Event existed to set


def test_a_coroutine_handler_sees_the_stored_options_and_data(url: str, prefix: str) -> None:
    """The handler's job reads its options from the claimed hash only when asked."""

    async def main() -> dict[str, Any]:
        q = pykue.create_async_queue(url, prefix=prefix, settings=FAST)
        job = q.create("opts", {"n": [1, "two"]}, priority="high", attempts=3, ttl=60_000,
                       backoff={"type": "fixed", "delay": 7})  # fmt: skip
        await job.remove_on_complete(5).save()
        seen: dict[str, Any] = {}
        got = asyncio.Event()

        async def handler(j: pykue.AsyncJob) -> None:
            seen.update(data=j.data, opts=j.opts, state=j.state, token=j.token is not None)
            got.set()

        await q.process("opts", handler)
        await asyncio.wait_for(got.wait(), 10)
        await q.shutdown()
        return seen

    seen = asyncio.run(asyncio.wait_for(main(), 60))
    opts = seen["opts"]
    assert seen["data"] == {"n": [1, "two"]} and seen["state"] == "active" and seen["token"]
    assert (opts.priority, opts.attempts, opts.ttl, opts.delay) == (-10, 3, 60_000, 0)
    assert opts.backoff == '{"type":"fixed","delay":7}' and opts.keep == {"complete": ",5"}


def test_corrupt_data_fails_the_job_before_a_coroutine_handler_runs(url: str, prefix: str, r: redis.Redis) -> None:
    r.hset(f"{prefix}:job:1", mapping={"type": "w", "data": "{not json", "priority": "0", "state": "inactive"})
    for key in (f"{prefix}:jobs:inactive", f"{prefix}:jobs:w:inactive", f"{prefix}:jobs"):
        r.zadd(key, {"01|1": 0})
    r.set(f"{prefix}:ids", 1)
    ran: list[Any] = []
    q = pykue.create_queue(url, prefix=prefix, settings=FAST)

    async def handler(j: pykue.Job) -> None:  # a coroutine handler: the engine's one-coroutine path
        ran.append(j.id)

    q.process("w", handler)
    q.create("w", {"fine": True}).save()
    wait_for(lambda: q.failed_count() == 1 and q.complete_count() == 1, what="one failure, one completion")
    q.shutdown(1)
    assert ran == [2]
    assert "not valid JSON" in (r.hget(f"{prefix}:job:1", "error") or "")


def test_a_claimed_record_reads_as_text_or_names_its_first_bad_byte() -> None:
    assert codec.claimed_record([b"type", b"w", b"data", "{}"]) == ({"type": "w", "data": "{}"}, None)
    assert codec.claimed_record([b"type", "w"]) == ({"type": "w"}, None)
    fields, problem = codec.claimed_record([b"type", b"w", b"data", b'{"a":"\xff"}'])
    assert fields == {} and problem is not None and "field 'data' is not UTF-8 at byte 6" in problem


def test_claims_sent_ahead_never_hold_more_jobs_than_the_concurrency(url: str, prefix: str, r: redis.Redis) -> None:
    """The next claim goes out while a batch runs; it may only take slots that are free, so
    no more than `concurrency` jobs are ever claimed and not yet returned by their handler.
    (The active set may hold more for a moment: jobs whose handler returned and whose batched
    completion is on its way.)"""
    q = pykue.create_queue(url, prefix=prefix, settings=FAST)
    q.save_many(q.create("w", {"i": i}) for i in range(60))
    running, returned, seen = [0], [0], {"running": 0, "held": 0}

    async def handler(job: pykue.Job) -> None:
        running[0] += 1
        seen["running"] = max(seen["running"], running[0])
        with r.pipeline(transaction=True) as p:  # one snapshot; the loop is blocked meanwhile
            active, complete = p.zcard(f"{prefix}:jobs:w:active").zcard(f"{prefix}:jobs:w:complete").execute()
        seen["held"] = max(seen["held"], active + complete - returned[0])  # claimed, handler not returned
        await asyncio.sleep(0.002)  # work: the other slots fill meanwhile
        running[0] -= 1
        returned[0] += 1

    q.process("w", 4, handler)
    wait_for(lambda: q.complete_count() == 60, what="60 completions")
    q.shutdown(1)
    assert seen["running"] == 4 and 2 <= seen["held"] <= 4, seen


JSON_TEXTS = ['{"i":1}', ' {"a": [1, 2.5, null, true]} ', '"\\u00e9\\ud83d\\ude00"', "12345678901234567890", "NaN",
              "-Infinity", '{"a":1}x', "{bad", "", " ", "[1,", "\ufeff{}", '{"a":1} {"b":2}', "1e400"]  # fmt: skip


@pytest.mark.parametrize("text", JSON_TEXTS)
def test_the_fast_json_read_is_json_loads(text: str) -> None:
    """Same value (NaN included, hence repr), or the same error message."""
    try:
        expected = repr(json.loads(text))
    except ValueError as exc:
        expected = f"error {exc}"
    try:
        got = repr(codec.js_loads(text))
    except ValueError as exc:
        got = f"error {exc}"
    assert got == expected


def test_a_worker_raises_pythons_young_gc_threshold_but_keeps_an_applications(url: str, prefix: str) -> None:
    saved = gc.get_threshold()
    try:
        for before, settings, after in (
            ((700, 10, 10), FAST, (10_000, 10, 10)),  # Python's default: raised
            ((5_000, 20, 10), FAST, (5_000, 20, 10)),  # the application's own: kept
            ((700, 10, 10), dataclasses.replace(FAST, young_gc_threshold=0), (700, 10, 10)),  # opted out
        ):
            gc.set_threshold(*before)
            q = pykue.create_queue(url, prefix=prefix, settings=settings)
            q.process("gc", lambda job: None)
            q.create("gc", {}).save()
            wait_for(lambda q=q: q.complete_count() == 1, what="the job")  # the worker is running
            assert gc.get_threshold() == after
            q.shutdown(1)
            q.client.delete(*q.client.keys(f"{prefix}:*"))
    finally:
        gc.set_threshold(*saved)


def test_an_idle_worker_keeps_no_connection_on_its_lanes(url: str, prefix: str) -> None:
    async def main() -> list[int]:
        q = pykue.create_async_queue(url, prefix=prefix, settings=FAST)
        await q.save_many([q.create("idle", {}) for _ in range(30)])
        await q.process("idle", 10, lambda job: None)
        engine = q._runtime.engines[0]
        seen = []
        while await q.complete_count() < 30:
            seen.append(len(engine._claims._held))
            await asyncio.sleep(0.001)
        while engine._claims._held or engine._completions._held:  # the fetch loop goes idle
            await asyncio.sleep(0.01)
        await q.shutdown()
        return seen

    seen = asyncio.run(asyncio.wait_for(main(), 30))
    assert 1 in seen  # it did keep one while claiming
