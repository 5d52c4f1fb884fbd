"""Seed task 6 (6-job_creator.js): one job on push_notification_code."""

from __future__ import annotations

import threading

import pykue
from _connect import REDIS_URL

if __name__ == "__main__":
    queue = pykue.create_queue(REDIS_URL)
    settled = threading.Event()
    job_data = {"phoneNumber": "4153518780", "message": "This is the code to verify your account"}
    job = queue.create("push_notification_code", job_data)
    job.on("complete", lambda: (print("Notification job completed", flush=True), settled.set()))
    job.on("failed", lambda: (print("Notification job failed", flush=True), settled.set()))
    job.save()
    print(f"Notification job created: {job.id}", flush=True)
    try:
        settled.wait()  # like the seed, stay until the job is processed (or Ctrl-C)
    except KeyboardInterrupt:
        pass
    queue.shutdown()
