"""The paths the asyncio API added to the sync tests, now one body for both twins: failures
and backoff, delays, Kue-style done, priorities, shutdown, unix sockets, state changes; plus
what only asyncio has (coroutine handlers and listeners)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pykue
from pykue import EmbeddedRedis
from tests.conftest import FAST
from tests.helpers import wait_for
from tests.twins import Twin


def test_failures_backoff_and_events(tq: Any) -> None:
    q = tq
    seen: list[Any] = []
    final = threading.Event()
    job = q.create("t", {}, attempts=3, backoff={"type": "fixed", "delay": 50})
    job.on("failed attempt", lambda msg, n: seen.append((msg, n)))
    job.on("failed", lambda msg: (seen.append(msg), final.set()))
    job.save()

    def boom(j: pykue.Job) -> None:
        raise ValueError("async boom")

    q.process("t", boom)
    assert final.wait(10)
    assert seen == [("async boom", 1), ("async boom", 2), "async boom"]
    got = q.get_job(job.id or 0)
    assert got.state == "failed" and got.attempts_made == 3 and got.fields["delay"] == "50"


def test_kue_style_handler_delay_and_priority(tq: Any) -> None:
    q = tq
    order: list[str] = []
    done_all = threading.Event()
    t0 = time.monotonic()
    low = q.create("k", {"n": "low"}, priority="low")
    crit = q.create("k", {"n": "crit"}, priority="critical")
    q.save_many([low, crit, q.create("k", {"n": "later"}, delay=300)])

    def handler(job: pykue.Job, done: Any) -> None:
        order.append(job.data["n"])
        job.log("seen %s", job.data["n"])
        done(None, job.data["n"])
        done(RuntimeError("ignored"))
        if len(order) == 3:
            done_all.set()

    q.process("k", 1, handler)
    assert done_all.wait(10)
    assert order == ["crit", "low", "later"] and time.monotonic() - t0 >= 0.29
    wait_for(lambda: q.card("complete", "k") == 3, what="three completions")
    jobs = q.jobs("complete", "k")
    assert [j.result for j in jobs] == ["low", "crit", "later"] and all(j.attempts_made == 1 for j in jobs)
    assert jobs[0].logs() == ["seen low"]


def test_shutdown_fails_leftovers_and_plain_handlers_run_in_threads(twin: Twin, prefix: str) -> None:
    q = twin.queue(prefix)
    started = threading.Event()
    stuck = q.create("s", {}).save()
    threads: list[str] = []

    def blocking(job: pykue.Job) -> None:  # a plain function: it runs in a pool thread
        threads.append(threading.current_thread().name)
        started.set()
        time.sleep(1.0)

    q.process("s", blocking)
    assert started.wait(10)
    q.shutdown(0.1)
    assert threads[0].startswith("pykue-s")
    check = twin.queue(prefix, settings=None)
    got = check.get_job(stuck.id or 0)
    assert got.state == "failed" and got.error == "Shutdown"


def test_unix_socket_server(twin: Twin, prefix: str) -> None:
    with EmbeddedRedis(unix_socket=True) as srv:
        assert srv.url.startswith("unix://")
        q = twin.queue(prefix, url=srv.url)
        assert q.create("x", {}).save().id == 1 and q.inactive_count() == 1
        q.shutdown()


def test_state_changes_ttl_and_remove_on_complete(tq: Any) -> None:
    q = tq
    job = q.create("m", {"a": 1}).save()
    job.set_priority("high")
    job.complete()
    job.refresh()
    assert job.state == "complete" and job.opts.priority == -10 and q.card("complete", "m") == 1
    job.inactive()
    assert q.stats()["inactiveCount"] == 1
    assert job.remove() is True and q.card() == 0

    ttl_failed = threading.Event()
    slow = q.create("slow", {}, ttl=200)
    slow.on("failed", lambda msg: ttl_failed.set() if msg == "TTL exceeded" else None)
    slow.save()
    q.process("slow", lambda j: time.sleep(1))
    assert ttl_failed.wait(10)

    gone = threading.Event()
    roc = q.create("roc", {}, remove_on_complete=True)
    roc.on("complete", lambda: gone.set())
    roc.save()
    q.process("roc", 2, lambda j: "ok")
    assert gone.wait(10)
    wait_for(lambda: not q.client.exists(q.keys.job(roc.id or 0)), what="removed job hash")


def test_coroutine_handlers_and_listeners(url: str, prefix: str) -> None:
    """What only the asyncio twin has: handlers and listeners that are coroutines, run in its loop."""

    async def main() -> None:
        q = pykue.create_async_queue(url, prefix=prefix, settings=FAST)
        finished = asyncio.Event()
        seen: list[Any] = []
        job = q.create("video", {"n": 2})
        job.on("progress", lambda pct: seen.append(pct))

        async def on_complete(result: Any) -> None:
            seen.append(result)
            finished.set()

        job.on("complete", on_complete)
        await job.save()
        loop = asyncio.get_running_loop()

        async def handler(j: pykue.AsyncJob, done: Any) -> None:
            assert asyncio.get_running_loop() is loop  # a coroutine handler runs in our loop
            await j.progress(50, 100)
            await j.log("half")
            done(None, int(j.data["n"]) * 21)

        await q.process("video", 3, handler)
        await asyncio.wait_for(finished.wait(), 10)
        assert seen == [50, 42]
        assert await (await pykue.AsyncJob.get(job.id or 0, q)).logs() == ["half"]
        await q.shutdown()

    asyncio.run(asyncio.wait_for(main(), 60))
