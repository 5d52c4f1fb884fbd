"""The worker engine's cheap paths (issue 13) keep what the general ones did: a handler sees its
job's options and data as stored, corrupt data never reaches it, and a revocation is seen by a
sync handler waiting on it."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

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
