"""Seed task 10's 8-job-main.js."""

from __future__ import annotations

import pykue
from _connect import REDIS_URL
from push_jobs import create_push_notifications_jobs

if __name__ == "__main__":
    queue = pykue.create_queue(REDIS_URL)
    jobs = [{"phoneNumber": "4153518780", "message": "This is the code 1234 to verify your account"}]
    create_push_notifications_jobs(jobs, queue)
    queue.shutdown()
