"""The asyncio API through the same paths as the sync tests: failures and backoff, delays,
Kue-style done, priorities, shutdown, events from a plain-function handler."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pykue
from pykue import EmbeddedRedis
from tests.conftest import FAST


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_failures_backoff_and_events(url: str, prefix: str) -> None:
    async def main() -> None:
        q = pykue.create_async_queue(url, prefix=prefix, settings=FAST)
        seen: list[Any] = []
        final = asyncio.Event()
        job = q.create("t", {}, attempts=3, backoff={"type": "fixed", "delay": 50})
        job.on("failed attempt", lambda msg, n: seen.append((msg, n)))
        job.on("failed", lambda msg: (seen.append(msg), final.set()))
        await job.save()

        async def boom(j: pykue.AsyncJob) -> None:
            raise ValueError("async boom")

        await q.process("t", boom)
        await final.wait()
        assert seen == [("async boom", 1), ("async boom", 2), "async boom"]
        got = await q.get_job(job.id or 0)
        assert got.state == "failed" and got.attempts_made == 3 and got.fields["delay"] == "50"
        await q.shutdown()

    run(main())


def test_kue_style_async_handler_delay_and_priority(url: str, prefix: str) -> None:
    async def main() -> None:
        q = pykue.create_async_queue(url, prefix=prefix, settings=FAST)
        order: list[str] = []
        done_all = asyncio.Event()
        t0 = time.monotonic()
        low = q.create("k", {"n": "low"}, priority="low")
        crit = q.create("k", {"n": "crit"}, priority="critical")
        await q.save_many([low, crit, q.create("k", {"n": "later"}, delay=300)])

        async def handler(job: pykue.AsyncJob, done: Any) -> None:
            order.append(job.data["n"])
            await job.log("seen %s", job.data["n"])
            done(None, job.data["n"])
            done(RuntimeError("ignored"))
            if len(order) == 3:
                done_all.set()

        await q.process("k", 1, handler)
        await done_all.wait()
        assert order == ["crit", "low", "later"] and time.monotonic() - t0 >= 0.29
        while await q.card("complete", "k") < 3:
            await asyncio.sleep(0.01)
        jobs = await q.jobs("complete", "k")
        assert [j.result for j in jobs] == ["low", "crit", "later"] and all(j.attempts_made == 1 for j in jobs)
        assert await jobs[0].logs() == ["seen low"]
        await q.shutdown()

    run(main())


def test_shutdown_fails_leftovers_and_sync_handlers_run_in_threads(url: str, prefix: str) -> None:
    async def main() -> None:
        q = pykue.create_async_queue(url, prefix=prefix, settings=FAST)
        started = asyncio.Event()
        loop = asyncio.get_running_loop()
        stuck = await q.create("s", {}).save()

        def blocking(job: pykue.AsyncJob) -> None:  # a plain function: it runs in a thread
            loop.call_soon_threadsafe(started.set)
            time.sleep(1.0)

        await q.process("s", blocking)
        await started.wait()
        await q.shutdown(0.1)
        check = pykue.create_async_queue(url, prefix=prefix)
        got = await check.get_job(stuck.id or 0)
        assert got.state == "failed" and got.error == "Shutdown"
        await check.shutdown()

    run(main())


def test_unix_socket_server() -> None:
    with EmbeddedRedis(unix_socket=True) as srv:
        assert srv.url.startswith("unix://")
        q = pykue.create_queue(srv.url)
        assert q.create("x", {}).save().id == 1 and q.inactive_count() == 1
        q.shutdown()


def test_state_changes_ttl_and_remove_on_complete(url: str, prefix: str) -> None:
    async def main() -> None:
        q = pykue.create_async_queue(url, prefix=prefix, settings=FAST)
        job = await q.create("m", {"a": 1}).save()
        await job.set_priority("high")
        await job.complete()
        await job.refresh()
        assert job.state == "complete" and job.opts.priority == -10 and await q.card("complete", "m") == 1
        await job.inactive()
        assert (await q.stats())["inactiveCount"] == 1
        assert await job.remove() is True and await q.card() == 0

        ttl_failed = asyncio.Event()
        slow = q.create("slow", {}, ttl=200)
        slow.on("failed", lambda msg: ttl_failed.set() if msg == "TTL exceeded" else None)
        await slow.save()
        await q.process("slow", lambda j: time.sleep(1))
        await asyncio.wait_for(ttl_failed.wait(), 10)

        gone = asyncio.Event()
        roc = q.create("roc", {}, remove_on_complete=True)
        roc.on("complete", lambda: gone.set())
        await roc.save()
        await q.process("roc", 2, lambda j: "ok")
        await asyncio.wait_for(gone.wait(), 10)
        while await q.client.exists(q.keys.job(roc.id or 0)):
            await asyncio.sleep(0.01)
        await q.shutdown(1)

    run(main())
