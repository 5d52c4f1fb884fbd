"""A worker process for the tests: python worker_proc.py URL PREFIX TYPE MODE [CONCURRENCY]

MODE slow: each job appends its id to PREFIX:ran, sleeps 0.2 s, completes.
MODE report: progress 50%, then fails jobs whose data has "fail", completes the rest.
Prints "ready" once it is processing; exits on SIGTERM after a graceful shutdown.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from typing import Any

import pykue
from pykue import Settings

url, prefix, job_type, mode = sys.argv[1:5]
concurrency = int(sys.argv[5]) if len(sys.argv) > 5 else 1
settings = Settings(lease_ms=1000, promote_interval=0.05, reap_interval=0.1, block_timeout=0.2)
queue = pykue.create_queue(url, prefix=prefix, settings=settings)


def slow(job: pykue.Job) -> Any:
    queue.client.rpush(f"{prefix}:ran", job.id)
    time.sleep(0.2)
    return {"done": job.id}


def report(job: pykue.Job) -> Any:
    job.progress(50, 100)
    if job.data.get("fail"):
        raise RuntimeError(f"job {job.id} asked to fail")
    return "ok"


queue.process(job_type, concurrency, slow if mode == "slow" else report)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
print("ready", flush=True)
stop.wait()
queue.shutdown(2)
