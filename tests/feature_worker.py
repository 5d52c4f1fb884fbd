"""A worker process for the feature tests: python feature_worker.py URL PREFIX TYPE [CONCURRENCY]

Each job appends "<id>:<start ms>:<worker pid>" to PREFIX:ran, sleeps data["sleep"] seconds
if given, then fails if data["fail"], else completes. Prints "ready" once it is processing;
exits on SIGTERM after a graceful shutdown.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Any

import pykue
from pykue import Settings

url, prefix, job_type = sys.argv[1:4]
concurrency = int(sys.argv[4]) if len(sys.argv) > 4 else 1
# No test that uses this worker kills it, and they count runs: a 1 s lease lost to CPU starvation
# on a loaded machine re-ran jobs (at-least-once, as documented), so the lease is long here.
settings = Settings(lease_ms=10_000, promote_interval=0.05, reap_interval=0.1, block_timeout=0.2)
queue = pykue.create_queue(url, prefix=prefix, settings=settings)


def work(job: pykue.Job) -> Any:
    queue.client.rpush(f"{prefix}:ran", f"{job.id}:{int(time.time() * 1000)}:{os.getpid()}")
    if job.data.get("sleep"):
        time.sleep(job.data["sleep"])
    if job.data.get("fail"):
        raise RuntimeError(f"job {job.id} asked to fail")
    return job.id


queue.process(job_type, concurrency, work)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
print("ready", flush=True)
stop.wait()
queue.shutdown(2)
