"""The stock service against a bare Starlette endpoint on the same server (issue 13, goal 6).

    python bench/bench_http.py [--duration 3] [--connections 50] [--reps 5] [--client auto|wrk|python]

One private embedded Redis; two server processes started through the very same code path
(`pykue.cli.serve`: same uvicorn version, loop, HTTP parser and settings): a bare Starlette app
whose one endpoint returns a small JSON body (the ceiling), and `pykue stock`. Each rep loads,
one after the other: the bare endpoint, `/reserve_product/1`, `/list_products`, `/list_products/1`,
and reports requests/s, p50/p99 latency, the server's CPU per request (its /proc times over the
load), Redis's CPU per request (INFO cpu), and for the stock endpoints the ratio of requests/s
to the bare endpoint in the same rep, and the ratio of the bare endpoint's server CPU per request
to this one's: what the requests/s ratio would be with both servers CPU-bound, and far steadier
than requests/s when other programs share the cores.
Medians over the reps. Once the stock of item 1 is gone, `/reserve_product/1` answers "Not enough
stock available": the same one Lua call per request, so the path measured stays the same.

The load generator is wrk (Debian: `apt-get install -y wrk`), one thread on keep-alive
connections: it costs far less CPU than the servers. Without wrk the benchmark falls back to
a Python client (asyncio on raw sockets, uvloop if installed) and says so; on a 2-core machine
that client may be the bottleneck for the bare endpoint, so the ratios are then understated.
It is a benchmark, not a test: the figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import redis

from pykue import EmbeddedRedis
from pykue.server import free_port

BARE = r"""
import sys
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from pykue.cli import serve

async def hello(request):
    return JSONResponse({"hello": "world"})

app = Starlette(routes=[Route("/hello", hello)])
serve("bare", lambda url: app, {"host": "127.0.0.1", "port": int(sys.argv[1]), "redis_url": sys.argv[2],
                                "embedded": False})
"""

PY_LOAD = r"""
import asyncio, json, sys, time
try:
    import uvloop
    uvloop.install()
except ImportError:
    pass
port, path, seconds, conns = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
lat, bad = [], 0
async def client(deadline):
    global bad
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        bad += not head.startswith(b"HTTP/1.1 200")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        lat.append(time.perf_counter() - t0)
    writer.close()
async def main():
    t0 = time.perf_counter()
    await asyncio.gather(*(client(t0 + seconds) for _ in range(conns)))
    return time.perf_counter() - t0
elapsed = asyncio.run(main())
lat.sort()
print(json.dumps({"requests": len(lat), "rps": len(lat) / elapsed, "p50": lat[len(lat) // 2] * 1000,
                  "p99": lat[int(len(lat) * .99)] * 1000, "non_2xx": bad}))
"""

ENDPOINTS = [  # (label, server, path)
    ("bare Starlette endpoint", "bare", "/hello"),
    ("GET /reserve_product/1", "stock", "/reserve_product/1"),
    ("GET /list_products", "stock", "/list_products"),
    ("GET /list_products/1", "stock", "/list_products/1"),
]


@dataclass
class Load:
    requests: int
    rps: float
    p50: float  # ms
    p99: float  # ms
    non_2xx: int


def cpu_seconds(pid: int) -> float:
    """The process's user+system CPU from /proc (Linux), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_cpu(r: redis.Redis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def ms(text: str) -> float:
    """wrk's latency figure ("812.00us", "1.20ms", "2.01s") in milliseconds."""
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def wrk(port: int, path: str, seconds: float, conns: int) -> Load:
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{seconds:g}s", "--latency", f"http://127.0.0.1:{port}{path}"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    pct = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+(?:us|ms|s))\b", out, re.M))
    if len(pct) < 2:
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if errors:
        print(f"  wrk socket errors on {path}: {errors.group(1)}", file=sys.stderr)
    return Load(requests=int(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
                rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
                p50=ms(pct["50"]), p99=ms(pct["99"]), non_2xx=int(bad.group(1)) if bad else 0)  # fmt: skip


def py_client(port: int, path: str, seconds: float, conns: int) -> Load:
    out = subprocess.run([sys.executable, "-c", PY_LOAD, str(port), path, str(seconds), str(conns)],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return Load(**json.loads(out))


def wait_up(url: str) -> None:
    for _ in range(400):
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


@contextmanager
def servers(redis_url: str) -> Iterator[dict[str, tuple[int, int]]]:
    """Both servers, up: name -> (port, pid)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    ports = {"bare": free_port(), "stock": free_port()}
    stock = [sys.executable, "-m", "pykue.cli", "stock", "--port", str(ports["stock"]), "--redis", redis_url]
    cmds = {"bare": [sys.executable, "-c", BARE, str(ports["bare"]), redis_url], "stock": stock}
    procs = {name: subprocess.Popen(cmd, env=env) for name, cmd in cmds.items()}
    try:
        wait_up(f"http://127.0.0.1:{ports['bare']}/hello")
        wait_up(f"http://127.0.0.1:{ports['stock']}/list_products")
        yield {name: (ports[name], procs[name].pid) for name in procs}
    finally:
        for p in procs.values():
            p.terminate()
            p.wait()


def loaded_modules(pid: int) -> str:
    """Which fast parts the server process really loaded (uvicorn picks them silently)."""
    with open(f"/proc/{pid}/maps") as f:
        maps = f.read()
    return ", ".join(f"{m} {'yes' if f'/{m}/' in maps else 'NO'}" for m in ("uvloop", "httptools"))


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(load: Callable[..., Load], up: dict[str, tuple[int, int]], r: redis.Redis, name: str, path: str,
            a: argparse.Namespace) -> dict[str, float]:  # fmt: skip
    """One load on one endpoint: its rates and the CPU each side spent per request."""
    port, pid = up[name]
    cpu0, rcpu0, ccpu0, t0 = cpu_seconds(pid), redis_cpu(r), children_cpu(), time.perf_counter()
    res = load(port, path, a.duration, a.connections)
    cpu, elapsed = cpu_seconds(pid) - cpu0, time.perf_counter() - t0
    return {"rps": res.rps, "p50": res.p50, "p99": res.p99, "non_2xx": res.non_2xx,
            "server_us": cpu / res.requests * 1e6, "server_busy": cpu / elapsed,
            "redis_us": (redis_cpu(r) - rcpu0) / res.requests * 1e6,
            "client_us": (children_cpu() - ccpu0) / res.requests * 1e6}  # fmt: skip


def one_rep(load: Callable[..., Load], up: dict[str, tuple[int, int]], r: redis.Redis,
            a: argparse.Namespace) -> dict[str, dict[str, float]]:  # fmt: skip
    rows = {label: measure(load, up, r, name, path, a) for label, name, path in ENDPOINTS}
    bare = rows[ENDPOINTS[0][0]]
    for row in rows.values():
        row["ratio"], row["cpu_ratio"] = row["rps"] / bare["rps"], bare["server_us"] / row["server_us"]
    return rows


def report(summary: dict[str, dict[str, float]], reps: int) -> None:
    print(f"\n| endpoint (median of {reps}) | requests/s | / bare | p50 ms | p99 ms | server CPU us/req "
          "| bare's CPU/req / this | server busy | Redis CPU us/req | client CPU us/req |")  # fmt: skip
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for label, s in summary.items():
        print(f"| {label} | {s['rps']:,.0f} | {s['ratio']:.2f} | {s['p50']:.2f} | {s['p99']:.2f} "
              f"| {s['server_us']:.0f} | {s['cpu_ratio']:.2f} | {s['server_busy']:.0%} | {s['redis_us']:.1f} "
              f"| {s['client_us']:.0f} |")  # fmt: skip
    if any(s["non_2xx"] for s in summary.values()):
        print("WARNING: some answers were not 200", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=int, default=3, help="seconds of load per endpoint and rep")
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args()
    use_wrk = a.client == "wrk" or (a.client == "auto" and shutil.which("wrk") is not None)
    if a.client == "auto" and not use_wrk:
        print("wrk not found (Debian: apt-get install -y wrk): using the Python client, which may be "
              "the bottleneck on the bare endpoint", file=sys.stderr)  # fmt: skip
    load = wrk if use_wrk else py_client
    import pykue

    print(f"pykue from {os.path.dirname(pykue.__file__)}; load generator: {'wrk -t1' if use_wrk else 'Python'}, "
          f"{a.connections} keep-alive connections, {a.duration:g} s per endpoint, {a.reps} reps")  # fmt: skip
    rows: dict[str, list[dict[str, float]]] = {label: [] for label, _, _ in ENDPOINTS}
    with EmbeddedRedis() as srv, servers(srv.url) as up:
        r = redis.Redis.from_url(srv.url)
        for _, name, path in ENDPOINTS:  # warm-up: imports, script cache, connections
            load(up[name][0], path, 1, a.connections)
        print("servers loaded: " + "; ".join(f"{name}: {loaded_modules(pid)}" for name, (_, pid) in up.items()))
        for rep in range(a.reps):
            for label, row in one_rep(load, up, r, a).items():
                rows[label].append(row)
                print(f"  rep {rep + 1} {label:24} {row['rps']:8,.0f} req/s  ratio {row['ratio']:.2f}  "
                      f"server {row['server_us']:5.0f} us/req, busy {row['server_busy']:4.0%}  "
                      f"redis {row['redis_us']:4.1f} us/req", file=sys.stderr)  # fmt: skip
    summary = {label: {k: statistics.median(row[k] for row in reps) for k in reps[0]} for label, reps in rows.items()}
    report(summary, a.reps)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"args": vars(a), "reps": rows, "median": summary}, f, indent=2)


if __name__ == "__main__":
    main()
