"""A/B of pykue source trees: worker and Redis CPU per drained job, drains interleaved in one run.

    git archive <commit> src | tar -x -C /tmp/before      # a tree to compare against
    python bench/ab_drain.py /tmp/before/src src [--jobs 10000] [--reps 5] [--modes pure,incr] [--ttl]

On a shared machine wall-clock rates drift from minute to minute; running each tree's drain
right after the other's, rep by rep, puts both under the same load, so their CPU per job
compares. Each drain is the peer benchmark's (bench/peer/run.py: one worker process, the
adapter's handler, timed from the first completion to the last). With --ttl every job has a
TTL, so a worker holds the events subscription for the whole drain (Kue's checker may
announce its jobs); they are saved in bulk by the tree's own pykue.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE / "peer")]

import run as peer  # noqa: E402


def ttl_drain(sysm: peer.System, r: redis.Redis, url: str, n: int, concurrency: int, src: str) -> dict[str, float]:
    """peer.drain with jobs that have a TTL (the peer adapters enqueue none)."""
    r.flushall()
    code = ("import sys, pykue\nq = pykue.create_queue(sys.argv[1], prefix='q')\nn = int(sys.argv[2])\n"
            "for i in range(0, n, 1000):\n"
            "    q.save_many([q.create('bench', {'i': j}).ttl(600_000) for j in range(i, min(i + 1000, n))])\n"
            "q.shutdown()\n")  # fmt: skip
    subprocess.run([sys.executable, "-c", code, url, str(n)], env={**os.environ, "PYTHONPATH": src}, check=True)
    count = lambda c: int(c.zcard("q:jobs:complete"))  # noqa: E731
    with peer.worker(sysm, url, concurrency, "pure") as proc:
        c0 = peer.wait_progress(sysm.name, proc, lambda: count(r), 0, 30)
        t0, r0, w0 = time.perf_counter(), peer.redis_cpu(r), peer.proc_cpu(proc.pid)
        c1 = c0
        while c1 < n:
            c1 = peer.wait_progress(sysm.name, proc, lambda: count(r), c1, 30)
        t1, r1, w1 = time.perf_counter(), peer.redis_cpu(r), peer.proc_cpu(proc.pid)
    jobs = c1 - c0
    return {"drain_per_s": jobs / (t1 - t0), "redis_us_per_job": (r1 - r0) / jobs * 1e6,
            "worker_us_per_job": (w1 - w0) / jobs * 1e6}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("srcs", nargs="+", help="src folders of the trees to compare (each put first on PYTHONPATH)")
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--modes", default="pure,incr", help="peer drain modes (ignored with --ttl)")
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--ttl", action="store_true", help="every job has a TTL (pure handlers)")
    args = ap.parse_args()
    base = peer.make_system("pykue", peer.cache_dir(None))
    srcs = [str(Path(s).resolve()) for s in args.srcs]
    systems = {s: dataclasses.replace(base, env={**base.env, "PYTHONPATH": os.pathsep.join([s, str(peer.HERE)])})
               for s in srcs}  # fmt: skip
    modes = ["ttl"] if args.ttl else args.modes.split(",")
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {(s, m): [] for m in modes for s in srcs}
    from pykue import EmbeddedRedis

    with EmbeddedRedis() as srv:
        r = redis.Redis.from_url(srv.url)
        for rep in range(args.reps):
            for mode in modes:
                for src in srcs:
                    if mode == "ttl":
                        got = ttl_drain(systems[src], r, srv.url, args.jobs, args.concurrency, src)
                    else:
                        got = peer.drain(systems[src], r, srv.url, args.jobs, args.concurrency, mode)
                    runs[(src, mode)].append(got)
                    print(f"rep {rep} {mode} {src}: {got['drain_per_s']:,.0f}/s, worker "
                          f"{got['worker_us_per_job']:.1f} us/job, Redis {got['redis_us_per_job']:.1f} us/job",
                          file=sys.stderr, flush=True)  # fmt: skip
    print(f"| tree | mode | drain/s | worker µs/job | Redis µs/job |  (c={args.concurrency}, {args.jobs:,} jobs, "
          f"medians of {args.reps}, interleaved)\n|---|---|--:|--:|--:|")  # fmt: skip
    for (src, mode), got in runs.items():
        med = {k: statistics.median(g[k] for g in got) for k in got[0]}
        print(f"| {src} | {mode} | {med['drain_per_s']:,.0f} | {med['worker_us_per_job']:.1f} | "
              f"{med['redis_us_per_job']:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
