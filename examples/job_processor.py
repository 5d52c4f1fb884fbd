"""Seed task 7 (6-job_processor.js): process push_notification_code jobs."""

from __future__ import annotations

import pykue
from _connect import REDIS_URL


def send_notification(phone_number: str, message: str) -> None:
    print(f"Sending notification to {phone_number}, with message: {message}", flush=True)


if __name__ == "__main__":
    queue = pykue.create_queue(REDIS_URL)
    queue.process("push_notification_code", lambda job: send_notification(job.data["phoneNumber"], job.data["message"]))
    queue.run_forever()  # until Ctrl-C or SIGTERM, then a graceful shutdown
