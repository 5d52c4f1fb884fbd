"""Seed tasks 8 and 9 (7-job_creator.js, 7-job_processor.js) in Python.

    python -m pykue.apps.notifications creator   [--redis URL]
    python -m pykue.apps.notifications processor [--redis URL]

The creator saves eleven jobs on `push_notification_code_2` and prints what happens to
each; the processor works two at a time and fails the blacklisted numbers. `pykue demo`
runs both. They live in the package so the demo works from a bare install.
"""

from __future__ import annotations

import argparse
import sys
import threading
from typing import Any

import pykue

QUEUE_TYPE = "push_notification_code_2"
BLACKLISTED = ["4153518780", "4153518781"]
JOBS = [
    {"phoneNumber": "4153518780", "message": "This is the code 1234 to verify your account"},
    {"phoneNumber": "4153518781", "message": "This is the code 4562 to verify your account"},
    {"phoneNumber": "4153518743", "message": "This is the code 4321 to verify your account"},
    {"phoneNumber": "4153538781", "message": "This is the code 4562 to verify your account"},
    {"phoneNumber": "4153118782", "message": "This is the code 4321 to verify your account"},
    {"phoneNumber": "4153718781", "message": "This is the code 4562 to verify your account"},
    {"phoneNumber": "4159518782", "message": "This is the code 4321 to verify your account"},
    {"phoneNumber": "4158718781", "message": "This is the code 4562 to verify your account"},
    {"phoneNumber": "4153818782", "message": "This is the code 4321 to verify your account"},
    {"phoneNumber": "4154318781", "message": "This is the code 4562 to verify your account"},
    {"phoneNumber": "4151218782", "message": "This is the code 4321 to verify your account"},
]


def say(line: str) -> None:
    """One write per line, so lines printed from two handler threads never interleave."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def run_creator(queue: pykue.Queue, jobs: list[dict[str, str]] = JOBS, wait: bool = True) -> None:
    """Create the jobs and print created / progress / completed / failed lines."""
    finished = threading.Semaphore(0)
    for data in jobs:
        job = queue.create(QUEUE_TYPE, data)

        def completed(j: pykue.Job = job) -> None:
            say(f"Notification job #{j.id} completed")
            finished.release()

        def failed(err: str, j: pykue.Job = job) -> None:
            say(f"Notification job #{j.id} failed: {err}")
            finished.release()

        job.on("complete", completed).on("failed", failed)
        job.on("progress", lambda pct, j=job: say(f"Notification job #{j.id} {pct}% complete"))
        job.save()
        say(f"Notification job created: {job.id}")
    if wait:
        for _ in jobs:
            finished.acquire()


def send_notification(phone_number: str, message: str, job: pykue.Job, done: Any) -> None:
    job.progress(0, 100)
    if phone_number in BLACKLISTED:
        done(Exception(f"Phone number {phone_number} is blacklisted"))
        return
    job.progress(50, 100)
    say(f"Sending notification to {phone_number}, with message: {message}")
    done()


def run_processor(queue: pykue.Queue) -> None:
    """Process two jobs at a time until SIGINT or SIGTERM."""
    queue.process(QUEUE_TYPE, 2, lambda job, done: send_notification(
        job.data["phoneNumber"], job.data["message"], job, done))  # fmt: skip
    queue.run_forever(timeout=5)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("role", choices=["creator", "processor"])
    parser.add_argument("--redis", default=None, help="Redis URL (default $REDIS_URL or 127.0.0.1:6379)")
    parser.add_argument("--prefix", default="q")
    args = parser.parse_args(argv)
    queue = pykue.create_queue(args.redis, prefix=args.prefix)
    if args.role == "processor":
        run_processor(queue)
        return
    try:
        run_creator(queue)
    except KeyboardInterrupt:
        pass
    finally:
        queue.shutdown(5)


if __name__ == "__main__":
    main()
