"""pykue throughput and latency on a private Redis, against a Redis round trip in the same run.

    python bench/bench_queue.py [--jobs 20000] [--concurrency 100]

Prints: the baseline (sequential INCR round trip, same client library), single enqueue
(one awaited call per job, sync and asyncio), bulk enqueue, drain rate of ONE worker
process (no-op async handler; jobs enqueued before the worker starts), and enqueue-to-start
latency p50/p99 at low load (one job at a time, 10-slot worker in another process).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time

import redis

import pykue

WORKER = r"""
import asyncio, sys, time, pykue
url, n, conc, jtype = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
async def main():
    q = pykue.create_async_queue(url, prefix="bench")
    done = asyncio.Event()
    count = 0
    async def noop(job):
        nonlocal count
        count += 1
        if count == n:
            done.set()
    t0 = time.perf_counter()
    await q.process(jtype, conc, noop)
    await done.wait()
    while await q.card("complete", jtype) < n:  # completions are written in batches
        await asyncio.sleep(0.001)
    print(time.perf_counter() - t0, flush=True)
    await q.shutdown()
asyncio.run(main())
"""

LATENCY_WORKER = r"""
import asyncio, sys, time, json, pykue
url = sys.argv[1]
async def main():
    q = pykue.create_async_queue(url, prefix="lat")
    async def record(job):
        print(json.dumps(time.time() - job.data["t"]), flush=True)
    await q.process("ping", 10, record)
    print("ready", flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}/s"


def baseline_us(client: redis.Redis, n: int = 5000) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        client.incr("bench:baseline")
    return (time.perf_counter() - t0) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=20000)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[50, 500])
    ap.add_argument("--latency-samples", type=int, default=1000)
    args = ap.parse_args()
    n = args.jobs
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with pykue.EmbeddedRedis() as srv:
        client = redis.Redis.from_url(srv.url)
        base = baseline_us(client)
        print(f"baseline: redis-py INCR round trip   {base:8.1f} us  ({1e6 / base:,.0f}/s)")

        q = pykue.create_queue(srv.url, prefix="bench")
        t0 = time.perf_counter()
        for i in range(n):
            q.create("single", {"i": i}).save()
        t = time.perf_counter() - t0
        print(f"single enqueue, sync (1 call/job)    {rate(n, t):>12}  {t / n * 1e6:6.1f} us/job "
              f"= {t / n * 1e6 / base:.2f} round trips")  # fmt: skip

        async def async_single() -> float:
            aq = pykue.create_async_queue(srv.url, prefix="bench-async")
            t0 = time.perf_counter()
            for i in range(n):
                await aq.create("single", {"i": i}).save()
            t = time.perf_counter() - t0
            await aq.shutdown()
            return t

        t = asyncio.run(async_single())
        print(f"single enqueue, asyncio (awaited)    {rate(n, t):>12}  {t / n * 1e6:6.1f} us/job")

        t0 = time.perf_counter()
        q.save_many(q.create("bulk", {"i": i}) for i in range(n))
        t = time.perf_counter() - t0
        print(f"bulk enqueue (save_many)             {rate(n, t):>12}")

        for conc in args.concurrency:
            q.save_many(q.create(f"noop{conc}", {"i": i}) for i in range(n))
            out = subprocess.run([sys.executable, "-c", WORKER, srv.url, str(n), str(conc), f"noop{conc}"],
                                 capture_output=True, text=True, env=env, check=True)  # fmt: skip
            t = float(out.stdout.strip().splitlines()[-1])
            print(f"drain, 1 worker process, c={conc:<4}     {rate(n, t):>12}")

        proc = subprocess.Popen([sys.executable, "-c", LATENCY_WORKER, srv.url], stdout=subprocess.PIPE,
                                text=True, env=env)  # fmt: skip
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        lq = pykue.create_queue(srv.url, prefix="lat")
        samples = []
        for _ in range(args.latency_samples):
            lq.create("ping", {"t": time.time()}).save()
            samples.append(json.loads(proc.stdout.readline()) * 1000)
        proc.terminate()
        proc.wait()
        proc.stdout.close()
        samples.sort()
        p50 = statistics.median(samples)
        p99 = samples[int(len(samples) * 0.99) - 1]
        print(f"enqueue-to-start latency, low load   p50 {p50:.2f} ms   p99 {p99:.2f} ms")
        lq.shutdown()
        q.shutdown()
        client.close()


if __name__ == "__main__":
    main()
