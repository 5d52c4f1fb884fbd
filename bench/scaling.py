"""How pykue's drain scales with worker processes (`pykue.run_workers`, i.e. `pykue worker --processes N`).

    python bench/scaling.py [--processes 1 2 4] [--jobs 40000] [--reps 3] [--concurrency 50]

For each N: N jobs enqueued (bulk) on a private redis-server, then N supervised worker
processes (the peer benchmark's pykue adapter: asyncio handler) drain them; timed from the
first completion to the last, with the CPU Redis and the whole worker tree spent meanwhile.
Both modes: `incr` (one INCR round trip per job in the handler) and `pure` (handlers do
nothing, completions counted from pykue's complete set). Redis's ceiling is 1 / (Redis CPU
per job): one Redis thread cannot go faster, whatever the number of workers.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "src"), str(HERE / "peer")]

import adapters  # noqa: E402
import run as peer  # noqa: E402

import pykue  # noqa: E402


def work(url: str, concurrency: int, mode: str) -> None:
    """One supervised worker process: the peer benchmark's pykue worker."""
    adapters.URL = url
    os.environ["BENCH_URL"] = url
    adapters.pykue_work(concurrency, mode)


def serve(url: str, processes: int, concurrency: int, mode: str) -> None:
    sys.exit(pykue.run_workers(work, processes, args=(url, concurrency, mode)))


def drain(r: redis.Redis, url: str, n: int, processes: int, concurrency: int, mode: str) -> dict[str, float]:
    r.flushall()
    q = pykue.create_queue(url, prefix="q")
    q.save_many(q.create(adapters.QUEUE, {"i": i}) for i in range(n))
    q.shutdown()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent / "src"), str(HERE / "peer")])}
    cmd = [sys.executable, __file__, "--serve", url, str(processes), str(concurrency), mode]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    count = (lambda: int(r.get("bench:done") or 0)) if mode == "incr" else (lambda: int(r.zcard("q:jobs:complete")))
    try:
        assert proc.stdout is not None
        for _ in range(processes):
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError("a worker process did not start")
        c0 = peer.wait_progress("pykue", proc, count, 0, 30)
        t0, r0, w0 = time.perf_counter(), peer.redis_cpu(r), peer.proc_cpu(proc.pid)
        c1 = c0
        while c1 < n:
            c1 = peer.wait_progress("pykue", proc, count, c1, 30)
        t1, r1, w1 = time.perf_counter(), peer.redis_cpu(r), peer.proc_cpu(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        if proc.stdout is not None:
            proc.stdout.close()
    jobs = c1 - c0
    return {"drain_per_s": jobs / (t1 - t0), "redis_us_per_job": (r1 - r0) / jobs * 1e6,
            "workers_us_per_job": (w1 - w0) / jobs * 1e6, "redis_busy": (r1 - r0) / (t1 - t0)}  # fmt: skip


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        url, processes, concurrency, mode = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
        serve(url, processes, concurrency, mode)
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--jobs", type=int, default=40000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=50, help="per process")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    started = datetime.datetime.now(datetime.UTC)
    rows: list[dict[str, Any]] = []
    with pykue.EmbeddedRedis() as srv:
        r = redis.Redis.from_url(srv.url)
        version = r.info("server")["redis_version"]
        for mode in ("incr", "pure"):
            for p in args.processes:
                runs = [drain(r, srv.url, args.jobs, p, args.concurrency, mode) for _ in range(args.reps)]
                med = {k: statistics.median(x[k] for x in runs) for k in runs[0]}
                rows.append({"mode": mode, "processes": p, **med})
                print(f"  {mode} x{p}: {med['drain_per_s']:,.0f}/s", file=sys.stderr, flush=True)
        r.close()
    machine = peer.machine()
    print(f"\n{started:%Y-%m-%d %H:%M} UTC, {machine['cpu']} x{machine['cores']}, Redis {version}, "
          f"{args.jobs:,} jobs, c={args.concurrency} per process, medians of {args.reps}: "
          f"`python {' '.join(sys.argv)}`\n")  # fmt: skip
    print(
        "| handler | processes | drain/s | vs 1 process | Redis µs/job | Redis busy | workers µs/job "
        "| Redis ceiling jobs/s |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|--:|")
    for row in rows:
        one = next(x for x in rows if x["mode"] == row["mode"] and x["processes"] == args.processes[0])
        print(f"| {row['mode']} | {row['processes']} | {row['drain_per_s']:,.0f} | "
              f"{row['drain_per_s'] / one['drain_per_s']:.2f}x | {row['redis_us_per_job']:.1f} | "
              f"{row['redis_busy'] * 100:.0f}% | {row['workers_us_per_job']:.1f} | "
              f"{1e6 / row['redis_us_per_job']:,.0f} |")  # fmt: skip
    out = {"date": started.isoformat(timespec="seconds"), "redis": version, "machine": machine, "jobs": args.jobs,
           "concurrency": args.concurrency, "rows": rows}  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
