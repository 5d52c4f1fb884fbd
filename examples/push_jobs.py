"""Seed task 10 (8-job.js): create_push_notifications_jobs(jobs, queue)."""

from __future__ import annotations

from typing import Any

import pykue


def create_push_notifications_jobs(jobs: Any, queue: pykue.Queue) -> list[pykue.Job]:
    if not isinstance(jobs, list):
        raise TypeError("Jobs is not an array")
    created = []
    for data in jobs:
        job = queue.create("push_notification_code_3", data)
        job.on("complete", lambda j=job: print(f"Notification job {j.id} completed", flush=True))
        job.on("failed", lambda err, j=job: print(f"Notification job {j.id} failed: {err}", flush=True))
        job.on("progress", lambda pct, j=job: print(f"Notification job {j.id} {pct}% complete", flush=True))
        job.save()
        print(f"Notification job created: {job.id}", flush=True)
        created.append(job)
    return created
