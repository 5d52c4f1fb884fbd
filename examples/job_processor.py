"""Seed task 7 (6-job_processor.js): process push_notification_code jobs."""

from __future__ import annotations

import signal
import threading

import pykue
from _connect import REDIS_URL


def send_notification(phone_number: str, message: str) -> None:
    print(f"Sending notification to {phone_number}, with message: {message}", flush=True)


if __name__ == "__main__":
    queue = pykue.create_queue(REDIS_URL)
    queue.process("push_notification_code", lambda job: send_notification(job.data["phoneNumber"], job.data["message"]))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    queue.shutdown()
