"""The Python queues of the peer benchmark, one adapter each, behind one command line.

Runs inside each system's private venv (pykue: the checkout's interpreter), so it imports
only the standard library, redis-py and the system under test, and only the one asked for.

    adapters.py enqueue SYSTEM URL N [--bulk]      -> {"seconds": t} (or {"unsupported": true})
    adapters.py work SYSTEM URL CONCURRENCY MODE   -> prints "ready", works until SIGTERM
    adapters.py latency SYSTEM URL SAMPLES         -> [ms, ...] enqueue-to-start, one job at a time

MODE: `incr` (the handler's bookkeeping: one INCR round trip on bench:done per job, the same
for every system), `pure` (the handler does nothing; run.py counts completions from the
queue's own bookkeeping), `latency` (the handler pushes now - job.t onto bench:lat).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

URL = os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/0")
QUEUE = "bench"
_sync: redis.Redis | None = None


def sync_client() -> redis.Redis:
    """One client per worker process for the handlers' own Redis calls (its pool is thread-safe)."""
    global _sync
    if _sync is None:  # a blocking pool: redis-py 8's default pool raises past its size instead of waiting
        _sync = redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(URL, max_connections=256))
    return _sync


def async_client(concurrency: int) -> Any:
    """The asyncio handlers' client: one pool, a connection per handler slot at most."""
    import redis.asyncio as aredis

    return aredis.Redis(connection_pool=aredis.BlockingConnectionPool.from_url(URL, max_connections=concurrency))


def now_ms() -> float:
    return time.time() * 1000


def bookkeeping(mode: str, t: float | None) -> None:
    """The handler body every sync system runs."""
    if mode == "incr":
        sync_client().incr("bench:done")
    elif mode == "latency" and t is not None:
        sync_client().rpush("bench:lat", now_ms() - t)


def wait_for_sigterm() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def ready() -> None:
    print("ready", flush=True)


# -- pykue (asyncio API; the handler's INCR through `queue.redis`, the recommended way: one ----
# auto-pipelined connection shared by the worker's handlers, as ioredis gives BullMQ's) -------
def pykue_enqueue(n: int, bulk: bool) -> float:
    import pykue

    async def run() -> float:
        q = pykue.create_async_queue(URL, prefix="q")
        t0 = time.perf_counter()
        if bulk:
            await q.save_many(q.create(QUEUE, {"i": i}) for i in range(n))
        else:
            for i in range(n):
                await q.create(QUEUE, {"i": i}).save()
        t = time.perf_counter() - t0
        await q.shutdown()
        return t

    return asyncio.run(run())


def pykue_work(concurrency: int, mode: str, uvloop: bool = False) -> None:
    import pykue

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        q = pykue.create_async_queue(URL, prefix="q")
        client = q.redis

        async def handler(job: Any) -> None:
            if mode == "incr":
                await client.incr("bench:done")
            elif mode == "latency":
                await client.rpush("bench:lat", now_ms() - job.data["t"])

        await q.process(QUEUE, concurrency, handler)
        ready()
        await stop.wait()
        await q.shutdown()

    if uvloop:
        import uvloop as uv

        uv.install()
    asyncio.run(run())


def pykue_produce() -> Callable[[], None]:
    import pykue

    q = pykue.create_queue(URL, prefix="q")
    return lambda: q.create(QUEUE, {"t": now_ms()}).save() and None


# -- pykue-sync (the sync API: handlers in its thread pool, INCR through `queue.redis`, the ---
# thread-safe twin: every thread's commands auto-pipelined on one connection) ----------------
def pykue_sync_enqueue(n: int, bulk: bool) -> float:
    import pykue

    q = pykue.create_queue(URL, prefix="q")
    t0 = time.perf_counter()
    if bulk:
        q.save_many(q.create(QUEUE, {"i": i}) for i in range(n))
    else:
        for i in range(n):
            q.create(QUEUE, {"i": i}).save()
    t = time.perf_counter() - t0
    q.shutdown()
    return t


def pykue_sync_work(concurrency: int, mode: str, uvloop: bool = False) -> None:
    import pykue

    if uvloop:  # the sync queue's event-loop thread takes its loop from the policy
        import uvloop as uv

        uv.install()

    stop = wait_for_sigterm()
    q = pykue.create_queue(URL, prefix="q")
    client = q.redis

    def handler(job: Any) -> None:
        if mode == "incr":
            client.incr("bench:done")
        elif mode == "latency":
            client.rpush("bench:lat", now_ms() - job.data["t"])

    q.process(QUEUE, concurrency, handler)
    ready()
    stop.wait()
    q.shutdown()


# -- RQ (SimpleWorker: no fork per job, its fastest setting in one process) ------------------
def rq_job(t: float | None = None, i: int | None = None) -> None:
    bookkeeping(os.environ["BENCH_MODE"], t)


def rq_enqueue(n: int, bulk: bool) -> float:
    from rq import Queue

    q = Queue(QUEUE, connection=sync_client())
    t0 = time.perf_counter()
    if bulk:
        for start in range(0, n, 500):
            chunk = range(start, min(n, start + 500))
            q.enqueue_many([Queue.prepare_data("adapters.rq_job", kwargs={"i": i}) for i in chunk])
    else:
        for i in range(n):
            q.enqueue("adapters.rq_job", i=i)
    return time.perf_counter() - t0


def rq_work(concurrency: int, mode: str) -> None:
    from rq import Queue, SimpleWorker

    os.environ["BENCH_MODE"] = mode
    worker = SimpleWorker([Queue(QUEUE, connection=sync_client())], connection=sync_client())
    ready()
    worker.work(burst=False, logging_level="WARNING", with_scheduler=False)


def rq_produce() -> Callable[[], None]:
    from rq import Queue

    q = Queue(QUEUE, connection=sync_client())
    return lambda: q.enqueue("adapters.rq_job", t=now_ms()) and None


# -- huey (thread workers, blocking BRPOP; store_none so its result hash counts completions) -
def _huey() -> Any:
    from huey import RedisHuey

    huey = RedisHuey(QUEUE, url=URL, store_none=True)

    @huey.task()
    def job(t: float | None = None, i: int | None = None) -> None:
        bookkeeping(os.environ["BENCH_MODE"], t)

    return huey, job


def huey_enqueue(n: int, bulk: bool) -> float:
    if bulk:
        raise NotImplementedError
    _, job = _huey()
    t0 = time.perf_counter()
    for i in range(n):
        job(i=i)
    return time.perf_counter() - t0


def huey_work(concurrency: int, mode: str) -> None:
    import logging

    logging.basicConfig(level=logging.WARNING)
    os.environ["BENCH_MODE"] = mode
    huey, _ = _huey()
    consumer = huey.create_consumer(workers=concurrency, worker_type="thread", periodic=False, initial_delay=0.001,
                                    max_delay=0.01)  # fmt: skip
    ready()
    consumer.run()


def huey_produce() -> Callable[[], None]:
    _, job = _huey()
    return lambda: job(t=now_ms()) and None


# -- arq (asyncio; poll_delay cut from 0.5 s to 5 ms, else it idles between polls) ------------
def arq_enqueue(n: int, bulk: bool) -> float:
    if bulk:
        raise NotImplementedError
    from arq import create_pool
    from arq.connections import RedisSettings

    async def run() -> float:
        pool = await create_pool(RedisSettings.from_dsn(URL))
        t0 = time.perf_counter()
        for i in range(n):
            await pool.enqueue_job("job", i=i)
        t = time.perf_counter() - t0
        await pool.aclose()
        return t

    return asyncio.run(run())


def arq_work(concurrency: int, mode: str) -> None:
    from arq.connections import RedisSettings
    from arq.worker import Worker

    client = async_client(concurrency)

    async def job(ctx: Any, t: float | None = None, i: int | None = None) -> None:
        if mode == "incr":
            await client.incr("bench:done")
        elif mode == "latency" and t is not None:
            await client.rpush("bench:lat", now_ms() - t)

    job.__qualname__ = job.__name__ = "job"
    worker = Worker(functions=[job], redis_settings=RedisSettings.from_dsn(URL), max_jobs=concurrency,
                    poll_delay=0.005, keep_result=3600, log_results=False, handle_signals=True)  # fmt: skip
    ready()
    worker.run()


def arq_produce() -> Callable[[], None]:
    from arq import create_pool
    from arq.connections import RedisSettings

    loop = asyncio.new_event_loop()
    pool = loop.run_until_complete(create_pool(RedisSettings.from_dsn(URL)))
    return lambda: loop.run_until_complete(pool.enqueue_job("job", t=now_ms())) and None


SYSTEMS: dict[str, dict[str, Any]] = {
    "pykue": {"enqueue": pykue_enqueue, "work": pykue_work, "produce": pykue_produce},
    "pykue-sync": {"enqueue": pykue_sync_enqueue, "work": pykue_sync_work, "produce": pykue_produce},
    "pykue-uvloop": {
        "enqueue": pykue_enqueue,
        "work": lambda c, m: pykue_work(c, m, uvloop=True),
        "produce": pykue_produce,
    },
    "pykue-sync-uvloop": {
        "enqueue": pykue_sync_enqueue,
        "work": lambda c, m: pykue_sync_work(c, m, uvloop=True),
        "produce": pykue_produce,
    },
    "rq": {"enqueue": rq_enqueue, "work": rq_work, "produce": rq_produce},
    "huey": {"enqueue": huey_enqueue, "work": huey_work, "produce": huey_produce},
    "arq": {"enqueue": arq_enqueue, "work": arq_work, "produce": arq_produce},
}


def latency(system: str, samples: int) -> list[float]:
    produce = SYSTEMS[system]["produce"]()
    client = sync_client()
    out = []
    for _ in range(samples):
        produce()
        got = client.blpop(["bench:lat"], timeout=30)
        if got is None:
            raise SystemExit("latency: no job started within 30 s")
        out.append(float(got[1]))
    return out


def main(argv: list[str]) -> None:
    global URL
    role, system, URL = argv[0], argv[1], argv[2]
    os.environ["BENCH_URL"] = URL
    impl = SYSTEMS[system]
    if role == "enqueue":
        try:
            print(json.dumps({"seconds": impl["enqueue"](int(argv[3]), "--bulk" in argv)}))
        except NotImplementedError:
            print(json.dumps({"unsupported": True}))
    elif role == "work":
        impl["work"](int(argv[3]), argv[4])
    elif role == "latency":
        print(json.dumps(latency(system, int(argv[3]))))
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main(sys.argv[1:])
