"""Targets for tests/test_supervisor.py: `python tests/supervisor_worker.py TARGET PROCESSES ARGS...`
runs TARGET under pykue.run_workers, the way a user's script would."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time

import redis

import pykue

SETTINGS = pykue.Settings(lease_ms=1000, reap_interval=0.1, promote_interval=0.05, block_timeout=0.2,
                          shutdown_timeout=2.0)  # fmt: skip


def work(url: str, prefix: str) -> None:
    """A worker that counts each run of each job, so a test sees what ran twice."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    counts = redis.Redis.from_url(url)

    def handler(job: pykue.Job) -> int:
        counts.hincrby(f"{prefix}:runs", str(job.id), 1)
        time.sleep(0.005)  # the job's work: keeps a few jobs in flight when the process is killed
        return os.getpid()

    queue = pykue.create_queue(url, prefix=prefix, settings=SETTINGS)
    queue.process("sv", 4, handler)
    counts.rpush(f"{prefix}:ready", os.getpid())
    queue.run_forever(until=stop.is_set)


def crash(log: str) -> None:
    """Dies at once with code 3 on its first four starts, then serves until SIGTERM: the
    supervisor must back off between the crashes, not spin."""
    with open(log, "a") as f:
        f.write(f"{time.monotonic()}\n")
    with open(log) as f:
        if len(f.read().split()) < 5:
            sys.exit(3)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()


def die(log: str) -> None:
    """Always dies with code 3."""
    with open(log, "a") as f:
        f.write(f"{os.getpid()}\n")
    sys.exit(3)


def finish(log: str) -> None:
    """Returns at once (code 0): a finished worker is not restarted."""
    with open(log, "a") as f:
        f.write(f"{os.getpid()}\n")


def loop_kind(log: str) -> None:
    """Records which event loop class the worker process gets."""
    import asyncio

    loop = asyncio.new_event_loop()
    with open(log, "a") as f:
        f.write(f"{type(loop).__module__}\n")
    loop.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")
    name, processes, *args = sys.argv[1:]
    once = name.endswith("-once")  # restart=False: every exit is final
    target = {"work": work, "crash": crash, "finish": finish, "die": die, "loop_kind": loop_kind}[name.split("-")[0]]
    delay = 30.0 if name == "die" else 0.05
    code = pykue.run_workers(target, int(processes), args=args, restart_delay=delay, max_restart_delay=4 * delay,
                             restart=not once)  # fmt: skip
    sys.exit(code)
