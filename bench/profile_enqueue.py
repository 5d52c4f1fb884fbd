"""What one enqueue costs the producer and Redis: rate, CPU per job on both sides, round trips.

    python bench/profile_enqueue.py [--jobs 10000] [--reps 3] [--modes sync,async,bulk,async-bulk]
    python bench/profile_enqueue.py --profile sync     # cProfile of the sync single-save loop

Each mode saves N jobs of `{"i": i}` on a private redis-server, the peer benchmark's workload:
`sync`/`async` one awaited `q.create(t, data).save()` at a time, `bulk`/`async-bulk` one
`save_many`. Per job it prints the producer's CPU (`time.process_time`), Redis's (INFO cpu,
user + sys), and the commands Redis ran (INFO commandstats), medians of `--reps`.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

sys.path[:0] = [str(Path(__file__).resolve().parent.parent / "src")]

import pykue  # noqa: E402

QUEUE = "bench"


def redis_cpu(r: redis.Redis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def calls(r: redis.Redis) -> int:
    stats = r.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k not in ("cmdstat_info", "cmdstat_config|resetstat"))


Mode = tuple[Callable[[], None], Callable[[], None]]  # (the timed saves, the clean-up after)


def sync_single(url: str, n: int) -> Mode:
    q = pykue.create_queue(url, prefix="q")

    def run() -> None:
        for i in range(n):
            q.create(QUEUE, {"i": i}).save()

    return run, q.shutdown


def sync_bulk(url: str, n: int) -> Mode:
    q = pykue.create_queue(url, prefix="q")

    def run() -> None:
        q.save_many(q.create(QUEUE, {"i": i}) for i in range(n))

    return run, q.shutdown


def async_run(url: str, n: int, bulk: bool) -> Mode:
    """Only the saves are timed (as in the peer benchmark's adapter), not the queue's start
    and shutdown."""
    loop = asyncio.new_event_loop()
    q = loop.run_until_complete(_async_queue(url))

    async def go() -> None:
        if bulk:
            await q.save_many(q.create(QUEUE, {"i": i}) for i in range(n))
        else:
            for i in range(n):
                await q.create(QUEUE, {"i": i}).save()

    def close() -> None:
        loop.run_until_complete(q.shutdown())
        loop.close()

    return lambda: loop.run_until_complete(go()), close


async def _async_queue(url: str) -> pykue.AsyncQueue:
    return pykue.create_async_queue(url, prefix="q")


MODES: dict[str, Callable[[str, int], Mode]] = {
    "sync": sync_single,
    "async": lambda url, n: async_run(url, n, False),
    "bulk": sync_bulk,
    "async-bulk": lambda url, n: async_run(url, n, True),
}


def measure(url: str, mode: str, n: int) -> dict[str, float]:
    r = redis.Redis.from_url(url)
    r.flushall()
    run, close = MODES[mode](url, n)
    r.config_resetstat()
    c0, p0, w0 = redis_cpu(r), time.process_time(), time.perf_counter()
    run()
    w1, p1, c1 = time.perf_counter(), time.process_time(), redis_cpu(r)
    close()
    out = {"rate": n / (w1 - w0), "client_us": (p1 - p0) / n * 1e6, "redis_us": (c1 - c0) / n * 1e6,
           "cmds": calls(r) / n}  # fmt: skip
    r.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=10000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--modes", default="sync,async,bulk,async-bulk")
    ap.add_argument("--profile", choices=list(MODES))
    args = ap.parse_args()
    print(f"pykue from {pykue.__file__}", file=sys.stderr)
    with pykue.EmbeddedRedis() as srv:
        if args.profile:
            run, close = MODES[args.profile](srv.url, args.jobs)
            prof = cProfile.Profile()
            prof.runcall(run)
            close()
            pstats.Stats(prof).sort_stats("tottime").print_stats(30)
            return
        print("| mode | jobs/s | producer CPU us/job | Redis CPU us/job | commands/job |")
        print("|---|--:|--:|--:|--:|")
        for mode in args.modes.split(","):
            runs: list[dict[str, Any]] = [measure(srv.url, mode, args.jobs) for _ in range(args.reps)]
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            print(f"| {mode} | {med['rate']:,.0f} | {med['client_us']:.1f} | {med['redis_us']:.1f} | "
                  f"{med['cmds']:.3f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
