"""HTTP load on the stock service, with a minimal Starlette "hello" as the ceiling, same run.

    python bench/bench_http.py [--requests 20000] [--connections 50]

Each server runs in its own process (uvicorn, one worker) on a private embedded Redis;
the load generator is a third process: keep-alive HTTP/1.1 connections on raw asyncio
sockets, so the generator itself costs little. Prints requests/s and p50/p99 latency.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import httpx

from pykue import EmbeddedRedis
from pykue.server import free_port

HELLO = r"""
import sys, uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
async def hello(request):
    return JSONResponse({"hello": "world"})
uvicorn.run(Starlette(routes=[Route("/hello", hello)]), port=int(sys.argv[1]), log_level="warning")
"""

LOAD = r"""
import asyncio, json, sys, time
port, path, total, conns = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
lat = []
left = total
async def client():
    global left
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    while left > 0:
        left -= 1
        t0 = time.perf_counter()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        lat.append(time.perf_counter() - t0)
    writer.close()
async def main():
    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(conns)))
    return time.perf_counter() - t0
elapsed = asyncio.run(main())
lat.sort()
print(json.dumps({"rps": len(lat) / elapsed, "p50": lat[len(lat) // 2] * 1000, "p99": lat[int(len(lat) * .99)] * 1000}))
"""


def wait_up(url: str) -> None:
    for _ in range(200):
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def load(port: int, path: str, n: int, conns: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", LOAD, str(port), path, str(n), str(conns)],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--connections", type=int, default=50)
    a = ap.parse_args()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with EmbeddedRedis() as srv:
        hello_port, stock_port = free_port(), free_port()
        stock = [sys.executable, "-m", "pykue.cli", "stock", "--port", str(stock_port), "--redis", srv.url]
        hello = [sys.executable, "-c", HELLO, str(hello_port)]
        procs = [subprocess.Popen(hello, env=env), subprocess.Popen(stock, env=env)]
        try:
            wait_up(f"http://127.0.0.1:{hello_port}/hello")
            wait_up(f"http://127.0.0.1:{stock_port}/list_products")
            for name, port, path in (("starlette hello (ceiling)", hello_port, "/hello"),
                                     ("GET /list_products/1", stock_port, "/list_products/1"),
                                     ("GET /reserve_product/1", stock_port, "/reserve_product/1")):  # fmt: skip
                r = load(port, path, a.requests, a.connections)
                print(f"{name:28} {r['rps']:8,.0f} req/s   p50 {r['p50']:6.2f} ms   p99 {r['p99']:6.2f} ms")
        finally:
            for p in procs:
                p.terminate()
                p.wait()


if __name__ == "__main__":
    main()
