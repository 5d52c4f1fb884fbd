"""Handlers' own Redis calls through `queue.redis`: redis-py's command API on one connection
that every handler of the queue shares, their commands auto-pipelined; the sync queue's
`queue.redis` is the same for handlers that run in threads.

python examples/features/handler_redis.py
"""

from __future__ import annotations

import asyncio

import pykue

PAGES = ["home", "about", "home", "pricing", "home", "about"]


async def asyncio_worker() -> None:
    queue = pykue.create_async_queue(embedded=True)

    async def count_visit(job: pykue.AsyncJob) -> int:
        page = job.data["page"]
        await queue.redis.hset("last-visit", page, str(job.id))
        return int(await queue.redis.incr(f"visits:{page}"))  # str replies, like queue.client

    await queue.process("visit", 50, count_visit)
    jobs = [queue.create("visit", {"page": page}) for page in PAGES]
    await queue.save_many(jobs)
    for job in jobs:
        await job.wait(10)
    counts = {page: await queue.redis.get(f"visits:{page}") for page in sorted(set(PAGES))}
    print("asyncio:", counts, "pages seen:", await queue.redis.hlen("last-visit"))
    await queue.shutdown()


def sync_worker() -> None:
    queue = pykue.create_queue(embedded=True)
    queue.process("visit", 8, lambda job: queue.redis.incr(f"visits:{job.data['page']}"))  # thread-safe
    jobs = [queue.create("visit", {"page": page}) for page in PAGES]
    queue.save_many(jobs)
    for job in jobs:
        job.wait(10)
    print("sync:", {page: queue.redis.get(f"visits:{page}") for page in sorted(set(PAGES))})
    queue.shutdown()


asyncio.run(asyncio_worker())
sync_worker()
