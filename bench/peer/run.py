"""pykue against its peers, one command: python bench/peer/run.py [--quick] [--systems pykue,bullmq,...]

Installs every peer pinned on first use under a cache folder ($PYKUE_BENCH_CACHE, default
~/.cache/pykue-bench): a venv per Python queue from bench/peer/requirements/*.txt (from PyPI),
BullMQ and Kue 0.11.6 with `npm ci` from bench/peer/node/package-lock.json. pykue runs from
this checkout. Starts one private redis-server (the binary pykue embeds) and for each system:

* enqueue: N jobs one awaited call at a time ("single"), and through its bulk API if it has one;
* drain, two ways: `incr` (each handler makes the same one INCR round trip: bookkeeping a real
  handler would do) and `pure` (handlers do nothing; completions counted from the queue's own
  bookkeeping: its complete set, finished registry or result hash). N jobs are enqueued before
  ONE worker process starts; the drain is timed from the first completion seen to the last
  (start-up excluded), with the CPU both sides spent in that window: Redis's INFO cpu and the
  worker's /proc times (its children included), per job;
* latency: enqueue-to-start p50/p99 at low load (one job at a time, a 10-slot worker).

Each drain runs at a few worker settings (concurrency); the best median is reported. Medians of
`--reps` runs. It prints a markdown table (ratios against BullMQ) and writes JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "src"))

import pykue  # noqa: E402  (the checkout's pykue, whichever is installed)

CLK_TCK = os.sysconf("SC_CLK_TCK")
NODE = {"bullmq", "kue"}
PY_PEERS = {"rq", "huey", "arq"}
ALL = ["pykue", "pykue-uvloop", "pykue-sync", "pykue-sync-uvloop", "bullmq", "kue", "rq", "huey", "arq"]
CONCURRENCY = {"pykue": [50, 200], "pykue-uvloop": [50, 200], "pykue-sync": [16, 64], "pykue-sync-uvloop": [16, 64],
               "bullmq": [50, 200], "kue": [20, 100], "rq": [1], "huey": [8, 32], "arq": [50, 200]}  # fmt: skip
LATENCY_CONCURRENCY = {"rq": 1, "huey": 4}
BULK = {"pykue", "pykue-uvloop", "pykue-sync", "pykue-sync-uvloop", "bullmq", "rq"}


def pure_count(system: str) -> Callable[[redis.Redis], int] | None:
    """How many jobs the queue itself records as done (None: it keeps no such record)."""
    keys = {"kue": "q:jobs:complete", **{s: "q:jobs:complete" for s in ALL if s.startswith("pykue")},
            "bullmq": "bull:bench:completed", "rq": "rq:finished:bench"}  # fmt: skip
    if system in keys:
        key = keys[system]
        return lambda r: int(r.zcard(key))
    if system == "huey":
        return lambda r: int(r.hlen("huey.results.bench"))
    return None


def failed_count(system: str, r: redis.Redis) -> int:
    """Jobs the queue records as failed: a drain with failures measures nothing."""
    key = {"bullmq": "bull:bench:failed", "rq": "rq:failed:bench"}.get(system)
    if key is None and (system == "kue" or system.startswith("pykue")):
        key = "q:jobs:failed"
    return int(r.zcard(key)) if key else 0


# -- installing the peers ---------------------------------------------------------------------
def cache_dir(arg: str | None) -> Path:
    path = Path(arg or os.environ.get("PYKUE_BENCH_CACHE") or Path.home() / ".cache" / "pykue-bench")
    path.mkdir(parents=True, exist_ok=True)
    return path


def digest(*files: Path) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def python_env(system: str, cache: Path) -> str:
    """The interpreter of `system`'s private venv, created (pinned) on first use."""
    if system.startswith("pykue"):
        return sys.executable
    req = HERE / "requirements" / f"{system}.txt"
    venv = cache / f"venv-{system}-{digest(req)}"
    python = venv / "bin" / "python"
    if not (venv / ".ok").exists():
        shutil.rmtree(venv, ignore_errors=True)
        print(f"installing {system} into {venv} ...", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", str(req)],
                       check=True)  # fmt: skip
        (venv / ".ok").touch()
    return str(python)


def node_modules(cache: Path) -> Path:
    """node_modules for BullMQ and Kue, from the committed lock file (npm ci) on first use."""
    src = HERE / "node"
    dest = cache / f"node-{digest(src / 'package.json', src / 'package-lock.json')}"
    if not (dest / ".ok").exists():
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(src / name, dest / name)
        print(f"installing BullMQ and Kue into {dest} (npm ci) ...", file=sys.stderr, flush=True)
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=dest, check=True)
        (dest / ".ok").touch()
    return dest / "node_modules"


@dataclass
class System:
    name: str
    argv: list[str]  # the adapter's command line before ROLE
    env: dict[str, str]
    logs: Path

    def cmd(self, role: str, *args: Any) -> list[str]:
        return [*self.argv[:-1], role, self.argv[-1], *map(str, args)]


def make_system(name: str, cache: Path) -> System:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if name in NODE:
        env["NODE_PATH"] = str(node_modules(cache))
        return System(name, ["node", str(HERE / "node" / "adapter.js"), name], env, cache / "logs")
    if name.startswith("pykue"):
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(HERE)])
    else:
        env["PYTHONPATH"] = str(HERE)
    return System(name, [python_env(name, cache), str(HERE / "adapters.py"), name], env, cache / "logs")


# -- measuring --------------------------------------------------------------------------------
def proc_cpu(pid: int) -> float:
    """CPU seconds of a process and its live descendants (threads included)."""
    total = 0.0
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / CLK_TCK
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            total += proc_cpu(int(child))
    return total


def redis_cpu(r: redis.Redis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


@contextlib.contextmanager
def worker(sysm: System, url: str, concurrency: int, mode: str) -> Iterator[subprocess.Popen[str]]:
    log = sysm.logs / f"{sysm.name}-work.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as err:  # workers' shutdown noise (arq's CancelledError...) stays out of the table
        proc = subprocess.Popen(sysm.cmd("work", url, concurrency, mode), env=sysm.env, stdout=subprocess.PIPE,
                                stderr=err, text=True, cwd=HERE)  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"{sysm.name} worker did not start: {line!r}; see {log}")
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def run_json(sysm: System, role: str, *args: Any, timeout: float = 900) -> Any:
    out = subprocess.run(sysm.cmd(role, *args), env=sysm.env, capture_output=True, text=True, cwd=HERE,
                         timeout=timeout)  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"{sysm.name} {role} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def enqueue(sysm: System, r: redis.Redis, url: str, n: int, bulk: bool) -> float | None:
    r.flushall()
    got = run_json(sysm, "enqueue", url, n, *(["--bulk"] if bulk else []))
    return None if got.get("unsupported") else n / got["seconds"]


def wait_progress(name: str, proc: subprocess.Popen[str], count: Callable[[], int], seen: int, stall: float) -> int:
    """Poll (every 2 ms) until the count moves past `seen`; a worker that makes no progress for
    `stall` seconds, or dies, is an error, not a hang."""
    deadline = time.monotonic() + stall
    while (c := count()) <= seen:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"{name}: no progress past {seen} jobs in {stall} s (worker exit code {proc.poll()})")
        time.sleep(0.002)
    return c


def drain(sysm: System, r: redis.Redis, url: str, n: int, concurrency: int, mode: str,
          stall: float = 30.0) -> dict[str, float]:  # fmt: skip
    """One drain of n pre-enqueued jobs by one worker process: rate and CPU per job."""
    r.flushall()
    enqueue_fast = sysm.name in BULK
    run_json(sysm, "enqueue", url, n, *(["--bulk"] if enqueue_fast else []))
    count = (lambda c: int(c.get("bench:done") or 0)) if mode == "incr" else pure_count(sysm.name)
    assert count is not None
    with worker(sysm, url, concurrency, mode) as proc:
        count_ok = lambda: count(r) if not failed_count(sysm.name, r) else n  # noqa: E731  (fail fast)
        c0 = wait_progress(sysm.name, proc, count_ok, 0, stall)
        t0, r0, w0 = time.perf_counter(), redis_cpu(r), proc_cpu(proc.pid)
        c1 = c0
        while c1 < n:
            c1 = wait_progress(sysm.name, proc, count_ok, c1, stall)
        t1, r1, w1 = time.perf_counter(), redis_cpu(r), proc_cpu(proc.pid)
    if failed := failed_count(sysm.name, r):
        raise RuntimeError(f"{sysm.name}: {failed} jobs failed during the drain (see {sysm.logs})")
    jobs = c1 - c0
    return {"drain_per_s": jobs / (t1 - t0), "seconds": t1 - t0, "jobs_timed": jobs,
            "redis_us_per_job": (r1 - r0) / jobs * 1e6, "worker_us_per_job": (w1 - w0) / jobs * 1e6}  # fmt: skip


def latency(sysm: System, r: redis.Redis, url: str, samples: int) -> dict[str, float]:
    r.flushall()
    with worker(sysm, url, LATENCY_CONCURRENCY.get(sysm.name, 10), "latency"):
        values = sorted(run_json(sysm, "latency", url, samples))
    return {"p50_ms": statistics.median(values), "p99_ms": values[max(0, int(len(values) * 0.99) - 1)]}


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(run[k] for run in runs) for k in runs[0]}


@dataclass
class Result:
    system: str
    enqueue_single: float | None = None
    enqueue_bulk: float | None = None
    drain: dict[str, dict[str, Any]] = field(default_factory=dict)  # mode -> best concurrency's medians
    all_drains: dict[str, dict[int, list[dict[str, float]]]] = field(default_factory=dict)
    latency: dict[str, float] = field(default_factory=dict)


def bench_system(sysm: System, r: redis.Redis, url: str, args: argparse.Namespace) -> Result:
    res = Result(sysm.name)
    n, reps = args.jobs, args.reps
    say = lambda *a: print(f"  {sysm.name}:", *a, file=sys.stderr, flush=True)  # noqa: E731
    singles = [enqueue(sysm, r, url, n, False) for _ in range(reps)]
    res.enqueue_single = statistics.median(s for s in singles if s is not None)
    say(f"enqueue single {res.enqueue_single:,.0f}/s")
    if sysm.name in BULK:
        bulks = [enqueue(sysm, r, url, n, True) for _ in range(reps)]
        res.enqueue_bulk = statistics.median(b for b in bulks if b is not None)
        say(f"enqueue bulk {res.enqueue_bulk:,.0f}/s")
    modes = ["incr"] + (["pure"] if pure_count(sysm.name) else [])
    for mode in modes:
        res.all_drains[mode] = {}
        best: dict[str, Any] | None = None
        for conc in CONCURRENCY[sysm.name][: 1 if args.quick else None]:
            runs = [drain(sysm, r, url, n, conc, mode, args.stall) for _ in range(reps)]
            res.all_drains[mode][conc] = runs
            med = {**median_of(runs), "concurrency": conc}
            say(f"drain {mode} c={conc}: {med['drain_per_s']:,.0f}/s, Redis {med['redis_us_per_job']:.1f} us/job, "
                f"worker {med['worker_us_per_job']:.1f} us/job")  # fmt: skip
            if best is None or med["drain_per_s"] > best["drain_per_s"]:
                best = med
        assert best is not None
        res.drain[mode] = best
    res.latency = latency(sysm, r, url, args.latency_samples)
    say(f"latency p50 {res.latency['p50_ms']:.2f} ms, p99 {res.latency['p99_ms']:.2f} ms")
    return res


# -- reporting --------------------------------------------------------------------------------
def fmt(v: float | None, spec: str = ",.0f") -> str:
    return "-" if v is None else format(v, spec)


def ratio(v: float | None, base: float | None) -> str:
    return "" if v is None or not base else f" ({v / base:.2f}x)"


def table(results: list[Result]) -> str:
    by = {r.system: r for r in results}
    base = by.get("bullmq")
    lines = [
        "| system | enqueue/s single | bulk | drain/s (c) | p50 ms | p99 ms | Redis µs/job | worker µs/job "
        "| drain/s pure (c) | Redis µs/job pure | worker µs/job pure |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for res in results:
        inc, pure = res.drain.get("incr", {}), res.drain.get("pure", {})
        b_inc = base.drain.get("incr", {}) if base else {}
        b_pure = base.drain.get("pure", {}) if base else {}
        cells = [
            f"**{res.system}**" if res.system.startswith("pykue") else res.system,
            fmt(res.enqueue_single) + ratio(res.enqueue_single, base and base.enqueue_single),
            fmt(res.enqueue_bulk) + ratio(res.enqueue_bulk, base and base.enqueue_bulk),
            f"{fmt(inc.get('drain_per_s'))}{ratio(inc.get('drain_per_s'), b_inc.get('drain_per_s'))} "
            f"(c={inc.get('concurrency')})",
            fmt(res.latency.get("p50_ms"), ".2f"),
            fmt(res.latency.get("p99_ms"), ".2f"),
            fmt(inc.get("redis_us_per_job"), ".1f"),
            fmt(inc.get("worker_us_per_job"), ".1f"),
            f"{fmt(pure.get('drain_per_s'))}{ratio(pure.get('drain_per_s'), b_pure.get('drain_per_s'))}"
            + (f" (c={pure.get('concurrency')})" if pure else ""),
            fmt(pure.get("redis_us_per_job"), ".1f")
            + ratio(pure.get("redis_us_per_job"), b_pure.get("redis_us_per_job")),
            fmt(pure.get("worker_us_per_job"), ".1f")
            + ratio(pure.get("worker_us_per_job"), b_pure.get("worker_us_per_job")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu, "cores": os.cpu_count(), "loadavg_at_start": os.getloadavg(),
            "python": platform.python_version(), "platform": platform.platform()}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2,000 jobs, 1 repetition, one worker setting each")
    ap.add_argument("--jobs", type=int, default=None, help="jobs per run (default 20,000; --quick 2,000)")
    ap.add_argument("--reps", type=int, default=None, help="repetitions, median taken (default 3; --quick 1)")
    ap.add_argument("--latency-samples", type=int, default=None, help="default 1,000; --quick 200")
    ap.add_argument("--systems", default=",".join(ALL), help=f"comma-separated subset of {','.join(ALL)}")
    ap.add_argument("--stall", type=float, default=30.0, help="fail a drain that makes no progress this long (s)")
    ap.add_argument("--cache", default=None, help="install folder (default $PYKUE_BENCH_CACHE or ~/.cache/pykue-bench)")
    ap.add_argument("--json", default=None, help="write results here (default: CACHE/results/peer-DATE.json)")
    args = ap.parse_args()
    args.jobs = args.jobs or (2000 if args.quick else 20000)
    args.reps = args.reps or (1 if args.quick else 3)
    args.latency_samples = args.latency_samples or (200 if args.quick else 1000)
    names = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(names) - set(ALL)
    if unknown:
        ap.error(f"unknown system(s): {', '.join(sorted(unknown))}")
    cache = cache_dir(args.cache)
    systems = [make_system(name, cache) for name in names]  # install everything first
    started = datetime.datetime.now(datetime.UTC)
    results = []
    with pykue.EmbeddedRedis() as srv:
        r = redis.Redis.from_url(srv.url)
        version = r.info("server")["redis_version"]
        print(f"redis-server {version} ({srv.binary}); {args.jobs:,} jobs x {args.reps}", file=sys.stderr)
        for sysm in systems:
            results.append(bench_system(sysm, r, srv.url, args))
        r.close()
    report = {"date": started.isoformat(timespec="seconds"), "command": " ".join(["python", *sys.argv]),
              "redis": version, "machine": machine(), "jobs": args.jobs, "reps": args.reps,
              "results": [asdict(res) for res in results]}  # fmt: skip
    out = Path(args.json) if args.json else cache / "results" / f"peer-{started:%Y%m%dT%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"\n{started:%Y-%m-%d %H:%M} UTC, {report['machine']['cpu']} x{report['machine']['cores']}, "
          f"Redis {version}, {args.jobs:,} jobs, medians of {args.reps}: `{report['command']}`\n")  # fmt: skip
    print(table(results))
    print(f"\nJSON: {out}")


if __name__ == "__main__":
    main()
