"""Cleaning: remove finished jobs older than an age, in short Lua batches.

python examples/features/clean_old_jobs.py
"""

from __future__ import annotations

import pykue

with pykue.create_queue(embedded=True) as queue:
    queue.process("thumb", lambda job: "ok")
    jobs = queue.save_many([queue.create("thumb", {"n": i}) for i in range(5)])
    for job in jobs:
        job.wait(timeout=10)
    print("complete:", queue.complete_count())
    print("older than an hour:", queue.clean("complete", older_than_ms=3_600_000))
    removed = queue.clean("complete", older_than_ms=0, limit=3)
    print("removed", len(removed), "with limit=3; complete now:", queue.complete_count())
    print("the rest:", len(queue.clean("complete", older_than_ms=0)), "removed; complete now:", queue.complete_count())
