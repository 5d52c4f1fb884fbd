"""A producer waits for its job's result (Celery's AsyncResult.get, BullMQ's waitUntilFinished).

python examples/features/wait_for_result.py
"""

from __future__ import annotations

import pykue

with pykue.create_queue(embedded=True) as queue:
    queue.process("resize", lambda job: {"width": job.data["width"] // 2})
    job = queue.create("resize", {"width": 1024}).save()
    print("result:", job.wait(timeout=10))
    print("again, from the stored hash:", job.wait(timeout=10))

    queue.process("explode", lambda job: 1 / 0)
    try:
        queue.create("explode", {}).save().wait(timeout=10)
    except pykue.JobFailedError as exc:
        print("failed:", exc.error)

    try:
        queue.create("nobody-works-on-this", {}).save().wait(timeout=0.2)
    except pykue.WaitTimeoutError:
        print("no result within 0.2 s")
