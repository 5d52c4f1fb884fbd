"""Seed task 1 (0-redis_client.js): connect, or say why not on every failed attempt."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import redis

from _connect import REDIS_URL


def describe(exc: Exception, url: str) -> str:
    """node_redis's wording for a refused connection; redis-py's for anything else."""
    u = urlparse(url)
    where = f"{u.hostname or '127.0.0.1'}:{u.port or 6379}"
    if isinstance(exc.__cause__ or exc.__context__, ConnectionRefusedError) or "111" in str(exc):
        return f"Error: Redis connection to {where} failed - connect ECONNREFUSED {where}"
    return f"Error: {exc}"


def redis_print(err: Exception | None, reply: Any) -> None:
    """node_redis's redis.print."""
    print(f"Error: {err}" if err else f"Reply: {reply}", flush=True)


def with_callback(op: Callable[[], Any], callback: Callable[[Exception | None, Any], None]) -> None:
    """Call a Redis operation node-style: callback(err, reply); True replies read as OK."""
    try:
        reply = op()
    except redis.RedisError as exc:
        callback(exc, None)
    else:
        callback(None, "OK" if reply is True else reply)


def connect(url: str = REDIS_URL, retry_every: float = 1.0) -> redis.Redis:
    client = redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=2)
    while True:
        try:
            client.ping()
        except redis.ConnectionError as exc:
            print(f"Redis client not connected to the server: {describe(exc, url)}", flush=True)
            time.sleep(retry_every)
            continue
        print("Redis client connected to the server", flush=True)
        return client


def stop_now(signum: int, frame: object) -> None:
    """SIGTERM or Ctrl-C ends the program at once, even in the middle of its retries."""
    raise SystemExit(0)


if __name__ == "__main__":
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop_now)
    connect()
    threading.Event().wait()  # like the seed, stay connected until stopped
