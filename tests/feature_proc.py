"""A worker process for the feature tests: python feature_proc.py URL PREFIX TYPE MODE

MODE record: each job appends its id to PREFIX:ran and completes at once.
MODE slow:   each job appends its id to PREFIX:ran, sleeps 0.3 s, completes.
Maintenance looks for due repeatable jobs every 10 ms (so processes race for each tick).
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
settings = Settings(lease_ms=1000, promote_interval=0.05, reap_interval=0.1, block_timeout=0.2, repeat_interval=0.01)
queue = pykue.create_queue(url, prefix=prefix, settings=settings)


def handler(job: pykue.Job) -> Any:
    queue.client.rpush(f"{prefix}:ran", job.id)
    if mode == "slow":
        time.sleep(0.3)
    return job.id


queue.process(job_type, 2, handler)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
print("ready", flush=True)
stop.wait()
queue.shutdown(2)
