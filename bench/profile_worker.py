"""Where one pykue worker process spends its CPU per job: py-spy over a drain, grouped by layer.

    pip install py-spy   # (into the interpreter that runs this)
    python bench/profile_worker.py [--jobs 40000] [--concurrency 50] [--mode pure|incr|sync-incr]

N jobs are enqueued on a private redis-server, then the peer benchmark's pykue worker (asyncio
handler; `sync-incr`: the sync API with its thread pool) drains them under `py-spy record`
(sampling, GIL-holding samples only, so waiting in the kernel is not counted as CPU). Each
sample is charged to the innermost frame that belongs to a known layer (redis-py, asyncio,
pykue's engine, codec, ...), so the table says which layer burns the CPU. Prints the layers'
shares, the top functions by own time, and the worker's CPU per job from /proc.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "src"), str(HERE / "peer")]

import run as peer  # noqa: E402

import pykue  # noqa: E402

# (label, regex on "function (file:line)"): the first layer found walking from the leaf up wins
LAYERS = [
    ("handler (the benchmark's own code)", r"adapters\.py"),
    ("pykue worker engine (_worker.py)", r"pykue/_worker\.py"),
    ("pykue job/codec (_job, _codec, _events)", r"pykue/(_job|_codec|_events)\.py"),
    ("pykue queue core (_core, _queue, _aqueue, _scripts)", r"pykue/(_core|_queue|_aqueue|_scripts)\.py"),
    ("json (stdlib)", r"/json/"),
    ("redis-py: command packing", r"redis/(_parsers/encoders|connection\.py.*pack_command|.*encode)"),
    ("redis-py: reply parsing (hiredis)", r"redis/_parsers/(hiredis|resp)"),
    ("redis-py: connection pool and client", r"redis/"),
    ("asyncio event loop and tasks", r"asyncio/"),
    ("threads and futures (thread pool handoff)", r"(concurrent/futures|threading\.py|queue\.py)"),
]


def classify(stack: list[str]) -> str:
    for frame in reversed(stack):  # leaf first
        for label, pattern in LAYERS:
            if re.search(pattern, frame):
                return label
    return "other (interpreter, stdlib)"


def task_of(stack: list[str]) -> str:
    """The outermost pykue (or handler) frame: which of the worker's tasks a sample belongs to."""
    starts = [i for i, frame in enumerate(stack) if frame.startswith("Handle._run ")]
    for frame in stack[starts[-1] + 1 if starts else 0 :]:  # from the task's own root
        if "pykue/" in frame or "adapters.py" in frame:
            return re.sub(r" \(.*", "", frame)
    return "(event loop itself, no pykue frame)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=40000)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--mode", choices=["pure", "incr", "sync-incr"], default="pure")
    ap.add_argument("--top", type=int, default=20)
    args = ap.parse_args()
    pyspy = shutil.which("py-spy")
    if pyspy is None:
        raise SystemExit("py-spy is not installed: pip install py-spy")
    system, mode = ("pykue-sync", "incr") if args.mode == "sync-incr" else ("pykue", args.mode)
    tmp = Path(tempfile.mkdtemp(prefix="pykue-profile-"))
    raw = tmp / "stacks.txt"
    with pykue.EmbeddedRedis() as srv:
        r = redis.Redis.from_url(srv.url)
        q = pykue.create_queue(srv.url, prefix="q")
        q.save_many(q.create("bench", {"i": i}) for i in range(args.jobs))
        q.shutdown()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent / "src"), str(HERE / "peer")]),
               "PYTHONUNBUFFERED": "1"}  # fmt: skip
        cmd = [sys.executable, str(HERE / "peer" / "adapters.py"), "work", system, srv.url, str(args.concurrency), mode]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        count = (lambda: int(r.get("bench:done") or 0)) if mode == "incr" else (lambda: int(r.zcard("q:jobs:complete")))
        c0 = peer.wait_progress("pykue", proc, count, 0, 30)
        spy_cmd = [pyspy, "record", "--pid", str(proc.pid), "--format", "raw", "--rate", "500", "--gil",
                   "--nonblocking", "-o", str(raw)]  # fmt: skip
        spy = subprocess.Popen(spy_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        c0 = peer.wait_progress("pykue", proc, count, c0, 30)
        t0, w0, r0 = time.perf_counter(), peer.proc_cpu(proc.pid), peer.redis_cpu(r)
        c1 = c0
        while c1 < args.jobs:
            c1 = peer.wait_progress("pykue", proc, count, c1, 30)
        t1, w1, r1 = time.perf_counter(), peer.proc_cpu(proc.pid), peer.redis_cpu(r)
        spy.send_signal(signal.SIGINT)  # py-spy writes what it sampled in the drain window only
        spy.wait(60)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        proc.stdout.close()
        r.close()
    jobs = c1 - c0
    samples: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    tasks: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack_text, _, n = line.rpartition(" ")
        stack = stack_text.split(";")
        total += int(n)
        samples[classify(stack)] += int(n)
        own[re.sub(r":\d+\)$", ")", stack[-1])] += int(n)
        tasks[task_of(stack)] += int(n)
    worker_us = (w1 - w0) / jobs * 1e6
    print(f"\n{args.mode}: {jobs:,} jobs timed at {jobs / (t1 - t0):,.0f}/s; worker {worker_us:.1f} µs/job CPU "
          f"(/proc), Redis {(r1 - r0) / jobs * 1e6:.1f} µs/job; {total:,} py-spy samples holding the GIL "
          "(drain only)\n")  # fmt: skip
    print("| layer (innermost known frame) | share of samples | ≈ µs/job |\n|---|--:|--:|")
    for label, n in samples.most_common():
        print(f"| {label} | {n / total * 100:.1f}% | {worker_us * n / total:.1f} |")
    print("\n| worker task (outermost pykue frame), inclusive | share | ≈ µs/job |\n|---|--:|--:|")
    for task, n in tasks.most_common(12):
        print(f"| `{task}` | {n / total * 100:.1f}% | {worker_us * n / total:.1f} |")
    print(f"\n| top {args.top} functions by own samples | share |\n|---|--:|")
    for fn, n in own.most_common(args.top):
        print(f"| `{fn.replace('|', '/')}` | {n / total * 100:.1f}% |")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
