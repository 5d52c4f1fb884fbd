"""Pausing: a whole job type for every pykue worker (queue.pause), and Kue's 3-argument
handler whose ctx.pause(ms, cb) / ctx.resume() pause one worker.

python examples/features/pause_and_resume.py
"""

from __future__ import annotations

import threading
from typing import Any

import pykue
from pykue import Settings

with pykue.create_queue(embedded=True, settings=Settings(block_timeout=0.2)) as queue:
    queue.pause("email")  # every pykue worker on this queue stops claiming "email"
    mail = queue.create("email", {"to": "a@example.com"}).save()
    queue.process("email", lambda job: f"sent to {job.data['to']}")
    try:
        mail.wait(timeout=0.5)
    except pykue.WaitTimeoutError:
        print("paused:", queue.paused(), "- the job waits:", mail.refresh().state)
    queue.resume("email")
    print(mail.wait(timeout=10))

    paused = threading.Event()
    contexts: list[Any] = []

    def crawl(job: pykue.Job, ctx: Any, done: Any) -> None:
        if job.data.get("rate_limited"):  # e.g. the remote site said "slow down"
            contexts.append(ctx)
            ctx.pause(5000, lambda err: paused.set())
        done(None, f"crawled {job.data['url']}")

    first = queue.create("crawl", {"url": "/a", "rate_limited": True}).save()
    second = queue.create("crawl", {"url": "/b"}).save()
    queue.process("crawl", crawl)
    paused.wait(10)
    print(first.wait(timeout=10), "- then this worker paused;", "/b is", second.refresh().state)
    contexts[0].resume()
    print(second.wait(timeout=10))
