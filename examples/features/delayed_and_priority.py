"""Delayed jobs run when due; among ready jobs, priority first, then FIFO.

python examples/features/delayed_and_priority.py
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pykue

with pykue.create_queue(embedded=True) as queue:
    order: list[str] = []
    all_done = threading.Event()
    t0 = time.monotonic()
    soon = datetime.now(UTC) + timedelta(milliseconds=400)  # a datetime: run at that time
    queue.create("task", {"name": "soon"}).delay(soon).save()
    queue.create("task", {"name": "low"}).priority("low").save()
    queue.create("task", {"name": "critical"}).priority("critical").save()
    queue.create("task", {"name": "normal"}).save()

    def run(job: pykue.Job) -> None:
        order.append(job.data["name"])
        print(f"{time.monotonic() - t0:4.1f}s  {job.data['name']}")
        if len(order) == 4:
            all_done.set()

    queue.process("task", 1, run)
    all_done.wait(10)
