"""The long fault run: random faults against a fleet of worker processes draining jobs.

    PYTHONPATH=src python bench/chaos.py [--jobs 20000] [--faults 30] [--workers 3]

A private redis-server (AOF, appendfsync always) holds `--jobs` jobs; `--workers` worker
processes (tests/worker_proc.py, mode "record", 8 slots, lease 1 s) drain them while this
script injects faults at random until the queue is drained and at least `--faults` were
injected: kill -9 of a worker (a new one replaces it), SIGSTOP of a worker past its lease,
Redis SHUTDOWN + restart, Redis kill -9 + restart from the AOF, DEBUG SLEEP past the client
socket timeout, CLIENT PAUSE past the lease, and a full Redis (maxmemory, noeviction) for
3 s. Every handler records its start with the job's state and ownership at that moment.
Then it audits Redis and prints a markdown table: jobs lost, completed twice, handlers
started on a finished (or no longer owned) job, re-runs after an interruption (expected:
at-least-once), stuck (not complete 60 s after the last fault), and time to recover: for a
worker fault, from the kill/stop until no active job is held by that process any more; for
a Redis fault, from its end until completions resume.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

import pykue
from pykue import EmbeddedRedis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from worker_proc import bad_start  # the fault suite's record format

ROOT = Path(__file__).resolve().parent.parent
WORKER = str(ROOT / "tests" / "worker_proc.py")
PREFIX = "chaos"
LEASE_MS = 1000


class Fleet:
    def __init__(self, srv: EmbeddedRedis, n: int) -> None:
        self.srv = srv
        self.env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), PYTHONUNBUFFERED="1")
        self.procs = [self.spawn() for _ in range(n)]

    def spawn(self) -> subprocess.Popen[str]:
        args = [sys.executable, WORKER, self.srv.url, PREFIX, "chaos", "record", "8", str(LEASE_MS)]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=self.env)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGCONT)
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            proc.wait(30)
            if proc.stdout:
                proc.stdout.close()


def client(srv: EmbeddedRedis) -> redis.Redis:
    return redis.Redis.from_url(srv.url, decode_responses=True, socket_timeout=15)


def patiently(call: Callable[[], Any], patience: float = 60) -> Any:
    """This script's own reads, waiting out a restart or an AOF load."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return call()
        except redis.RedisError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def held_by(srv: EmbeddedRedis, pid: int) -> int:
    """Active jobs whose workerId names that process."""
    return int(patiently(lambda: _held_by(srv, pid)))


def _held_by(srv: EmbeddedRedis, pid: int) -> int:
    c = client(srv)
    ids = [m.split("|", 1)[1] for m in c.zrange(f"{PREFIX}:jobs:active", 0, -1)]
    with c.pipeline(transaction=False) as p:
        for i in ids:
            p.hget(f"{PREFIX}:job:{i}", "workerId")
        return sum(1 for w in p.execute() if w and f":{pid}:" in w)


def until_back(srv: EmbeddedRedis, pid: int, t0: float, deadline: float = 60) -> float:
    """Seconds from t0 until no active job is held by process `pid` any more."""
    while held_by(srv, pid) and time.monotonic() - t0 < deadline:
        time.sleep(0.05)
    return time.monotonic() - t0


def kill_worker(fleet: Fleet) -> float:
    i = random.randrange(len(fleet.procs))
    proc, t0 = fleet.procs[i], time.monotonic()
    proc.kill()
    proc.wait()
    if proc.stdout:
        proc.stdout.close()
    fleet.procs[i] = fleet.spawn()
    return until_back(fleet.srv, proc.pid, t0)


def stop_worker(fleet: Fleet) -> float:
    proc, t0 = random.choice(fleet.procs), time.monotonic()
    proc.send_signal(signal.SIGSTOP)
    back = until_back(fleet.srv, proc.pid, t0, deadline=2.5 * LEASE_MS / 1000)
    time.sleep(max(0.0, 2.5 * LEASE_MS / 1000 - back))  # stopped for 2.5 leases in all
    proc.send_signal(signal.SIGCONT)
    return back


def redis_shutdown(fleet: Fleet) -> None:
    fleet.srv.restart()  # SIGTERM: Redis shuts down cleanly, then starts from its AOF


def redis_kill_9(fleet: Fleet) -> None:
    fleet.srv.stop(save=False)
    fleet.srv.start()


def debug_sleep(fleet: Fleet) -> None:
    patiently(lambda: client(fleet.srv).execute_command("DEBUG", "SLEEP", "6"))  # > redis-py's 5 s socket timeout


def client_pause(fleet: Fleet) -> None:
    c = client(fleet.srv)
    patiently(lambda: c.execute_command("CLIENT", "PAUSE", str(int(2.5 * LEASE_MS))))
    c.ping()  # returns once the pause is over


def full_redis(fleet: Fleet) -> None:
    c = client(fleet.srv)
    used = patiently(lambda: int(c.info("memory")["used_memory"]))
    c.config_set("maxmemory", max(1, used // 2))
    time.sleep(3)  # the fault's duration
    c.config_set("maxmemory", 0)


FAULTS: dict[str, Callable[[Fleet], float | None]] = {
    "kill -9 worker": kill_worker,
    "SIGSTOP worker 2.5 leases": stop_worker,
    "Redis SHUTDOWN + restart (AOF)": redis_shutdown,
    "Redis kill -9 + restart (AOF)": redis_kill_9,
    "DEBUG SLEEP 6 s (> socket timeout)": debug_sleep,
    "CLIENT PAUSE 2.5 leases": client_pause,
    "maxmemory (full Redis) 3 s": full_redis,
}


def completed(srv: EmbeddedRedis) -> int | None:
    try:
        return int(client(srv).zcard(f"{PREFIX}:jobs:complete"))
    except redis.RedisError:
        return None


def resumed(srv: EmbeddedRedis, before: int, deadline: float = 60) -> float:
    """Seconds after a Redis fault until completions resume (50 more, or the queue drained)."""
    t0 = time.monotonic()
    total = int(patiently(lambda: client(srv).get(f"{PREFIX}:ids")) or 0)
    while time.monotonic() - t0 < deadline:
        done = completed(srv)
        if done is not None and done >= min(before + 50, total):
            return time.monotonic() - t0
        time.sleep(0.05)
    return float("inf")


def audit(r: redis.Redis) -> dict[str, Any]:
    n = int(r.get(f"{PREFIX}:ids") or 0)
    rows: list[Any] = []
    for lo in range(1, n + 1, 2000):
        with r.pipeline(transaction=False) as p:
            for i in range(lo, min(n, lo + 1999) + 1):
                p.hmget(f"{PREFIX}:job:{i}", "state", "attempts")
            rows += p.execute()
    starts = [s.split("|") for s in r.lrange(f"{PREFIX}:starts", 0, -1)]
    per_job = Counter(s[0] for s in starts)
    return {
        "jobs": n,
        "lost": sum(1 for state, _ in rows if state is None),
        "completed twice": sum(1 for state, attempts in rows if state == "complete" and attempts != "1"),
        "stuck": sum(1 for state, _ in rows if state not in (None, "complete")),
        "handler started on a finished/not-owned job": sum(1 for s in starts if bad_start(s, LEASE_MS) == "defect"),
        "taken from a handler paused right after its lease check": sum(
            1 for s in starts if bad_start(s, LEASE_MS) == "paused"
        ),
        "re-run after an interruption": sum(c - 1 for c in per_job.values()),
        "never started": n - len(per_job),
        "owner entries left": r.hlen(f"{PREFIX}:pykue:owners"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=20_000)
    ap.add_argument("--faults", type=int, default=30)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--kinds", default="", help="only faults whose name contains one of these (comma-separated)")
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    random.seed(seed)
    t_start = time.monotonic()
    kinds = [k for k in FAULTS if not a.kinds or any(w in k for w in a.kinds.split(","))]
    with EmbeddedRedis(aof=True) as srv:
        producer = pykue.create_queue(srv.url, prefix=PREFIX)
        for lo in range(0, a.jobs, 500):
            producer.save_many(
                producer.create("chaos", {"ms": random.randint(40, 200)}) for _ in range(min(500, a.jobs - lo))
            )
        producer.shutdown()
        fleet = Fleet(srv, a.workers)
        try:
            injected, recover, drain_after = run_faults(a, kinds, srv, fleet, t_start)
        finally:
            fleet.stop()
        got = patiently(lambda: audit(client(srv)))
    print_table(a, seed, injected, recover, got, drain_after, time.monotonic() - t_start)


def run_faults(a: Any, kinds: list[str], srv: EmbeddedRedis, fleet: Fleet,
               t_start: float) -> tuple[Counter[str], dict[str, list[float]], float]:  # fmt: skip
    """Inject faults until the queue is drained and at least a.faults were injected (a
    drained queue keeps taking faults until there were enough)."""
    injected: Counter[str] = Counter()
    recover: dict[str, list[float]] = {}
    while (completed(srv) or 0) < a.jobs or sum(injected.values()) < a.faults:
        time.sleep(random.uniform(0.5, 2.0))
        kind = random.choice(kinds)
        before = completed(srv) or 0
        back = FAULTS[kind](fleet)
        injected[kind] += 1
        recover.setdefault(kind, []).append(back if back is not None else resumed(srv, before))
        print(f"{time.monotonic() - t_start:7.1f}s  {kind:38s} complete {completed(srv)}", flush=True)
    last_fault = time.monotonic()
    while (completed(srv) or 0) < a.jobs and time.monotonic() - last_fault < 60:
        time.sleep(0.1)
    return injected, recover, time.monotonic() - last_fault


def print_table(a: Any, seed: int, injected: Counter[str], recover: dict[str, list[float]],
                got: dict[str, Any], drain_after: float, took: float) -> None:  # fmt: skip
    print(f"\n`PYTHONPATH=src python bench/chaos.py --jobs {a.jobs} --faults {a.faults} --workers {a.workers} "
          f"--seed {seed}` ({time.strftime('%Y-%m-%d', time.gmtime())}, {took:.0f} s, "
          f"{a.workers} worker processes x 8 slots, lease {LEASE_MS} ms)\n")  # fmt: skip
    print("| fault | injected | time to recover, median / max (s) |")
    print("|---|---:|---:|")
    for kind in FAULTS:
        times = recover.get(kind, [])
        med = f"{statistics.median(times):.1f} / {max(times):.1f}" if times else "-"
        print(f"| {kind} | {injected[kind]} | {med} |")
    print(f"| **all** | **{sum(injected.values())}** | drained {drain_after:.1f} s after the last |")
    print("\n| outcome | count |")
    print("|---|---:|")
    for key, value in got.items():
        print(f"| {key} | {value} |")


if __name__ == "__main__":
    main()
