"""Retries with exponential backoff, and the events a producer hears.

python examples/features/retries_and_backoff.py
"""

from __future__ import annotations

import threading

import pykue

with pykue.create_queue(embedded=True) as queue:
    finished = threading.Event()
    job = queue.create("charge", {"order": 42}).attempts(3).backoff({"type": "exponential", "delay": 100})
    job.on("failed attempt", lambda message, made: print(f"attempt {made} failed: {message}"))
    job.on("complete", lambda result: (print(f"charged: {result}"), finished.set()))
    job.save()

    tries = []

    def charge(job: pykue.Job) -> dict[str, int]:
        tries.append(1)
        if len(tries) < 3:
            raise ConnectionError("card network timed out")
        return {"order": job.data["order"], "tries": len(tries)}

    queue.process("charge", charge)
    finished.wait(10)
    print("delay before the last retry:", queue.get_job(job.id or 0).fields["delay"], "ms")
