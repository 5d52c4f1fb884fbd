"""Unique jobs: saving a job whose key an unfinished job holds returns that job instead.

python examples/features/unique_jobs.py
"""

from __future__ import annotations

import pykue

with pykue.create_queue(embedded=True) as queue:
    first = queue.create("report", {"day": "2026-11-28"}).unique("report:2026-11-28").save()
    again = queue.create("report", {"day": "2026-11-28"}, unique="report:2026-11-28").save()
    print("same job:", again.id == first.id, "- deduplicated:", again.deduplicated)
    print("jobs in the queue:", queue.card())

    queue.process("report", lambda job: f"report for {job.data['day']}")
    print("result:", first.wait(timeout=10))
    later = queue.create("report", {"day": "2026-11-28"}).unique("report:2026-11-28").save()
    print("after it completed, the key is free again: new job", later.id != first.id)
