"""The asyncio API: async handlers, progress, logs, and a queue-level listener.

python examples/features/async_worker.py
"""

from __future__ import annotations

import asyncio

import pykue


async def main() -> None:
    queue = pykue.create_async_queue(embedded=True)
    done = asyncio.Event()
    results: dict[int, object] = {}

    def on_complete(job_id: int, result: object) -> None:
        results[job_id] = result
        if len(results) == 3:
            done.set()

    queue.on("job complete", on_complete)
    await queue.listen()

    async def resize(job: pykue.AsyncJob) -> str:
        await job.progress(1, 2)
        await job.log("resizing %s", job.data["file"])
        await asyncio.sleep(0.01)
        return f"{job.data['file']} -> 128px"

    await queue.process("resize", 3, resize)
    await queue.save_many(queue.create("resize", {"file": f"img{i}.png"}) for i in range(3))
    await done.wait()
    for job_id in sorted(results):
        print(job_id, results[job_id], await queue.job_logs(job_id))
    await queue.shutdown()


asyncio.run(main())
