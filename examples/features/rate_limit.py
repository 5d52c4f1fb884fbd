"""Rate limits: at most N jobs of a type start per window, across every pykue worker process.

python examples/features/rate_limit.py
"""

from __future__ import annotations

import threading
import time

import pykue
from pykue import Settings

with pykue.create_queue(embedded=True, settings=Settings(block_timeout=0.2)) as queue:
    queue.limit("sms", max=2, per_ms=300)  # persisted in Redis: every worker of this queue obeys it
    print("limits:", queue.limits())
    queue.save_many(queue.create("sms", {"to": n}) for n in range(6))

    started: list[float] = []
    all_done = threading.Event()

    def send(job: pykue.Job) -> None:
        started.append(time.monotonic())
        if len(started) == 6:
            all_done.set()

    queue.process("sms", 6, send)  # six slots, but only two may start per 300 ms
    all_done.wait(10)
    spread = started[-1] - started[0]
    print("6 sent over three windows (>= 0.6 s):", spread >= 0.6 - 0.05)
    print("failed:", queue.failed_count())
    queue.limit("sms", None)  # lifted
    print("limits:", queue.limits())
