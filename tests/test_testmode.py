"""Kue's testMode semantics."""

from __future__ import annotations

import asyncio

import redis

import pykue


def test_enter_records_without_touching_redis(queue: pykue.Queue, r: redis.Redis, prefix: str) -> None:
    queue.test_mode.enter()
    a = queue.create("email", {"to": "x"}).save()
    b = queue.create("email", {"to": "y"}).save()
    assert [j.data for j in queue.test_mode.jobs] == [{"to": "x"}, {"to": "y"}]
    assert b.id == (a.id or 0) + 1 and r.get(f"{prefix}:ids") is None
    queue.test_mode.exit()
    assert len(queue.test_mode.jobs) == 2  # exit() keeps them
    queue.test_mode.clear()
    assert queue.test_mode.jobs == []
    queue.create("email", {}).save()
    assert r.get(f"{prefix}:ids") == "1"


def test_enter_with_process_also_saves(queue: pykue.Queue, r: redis.Redis, prefix: str) -> None:
    queue.test_mode.enter(process=True)
    job = queue.create("t", {}).save()
    assert queue.test_mode.jobs == [job] and job.id == 1 and r.exists(f"{prefix}:job:1")
    queue.test_mode.exit()


def test_async_queue_test_mode(url: str, prefix: str) -> None:
    async def main() -> None:
        q = pykue.create_async_queue(url, prefix=prefix)
        q.test_mode.enter()
        await q.create("t", {"n": 1}).save()
        assert len(q.test_mode.jobs) == 1 and q.test_mode.jobs[0].type == "t"
        q.test_mode.clear()
        q.test_mode.exit()
        await q.shutdown()

    asyncio.run(main())
