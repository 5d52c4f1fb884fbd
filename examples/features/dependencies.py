"""Dependencies: a job runs only after the jobs it depends on complete; a failed dependency
fails it, unless it asked to run anyway.

python examples/features/dependencies.py
"""

from __future__ import annotations

import pykue

with pykue.create_queue(embedded=True) as queue:
    ran: list[str] = []

    def step(job: pykue.Job) -> str:
        ran.append(job.data["name"])
        if job.data.get("broken"):
            raise RuntimeError(f"{job.data['name']} broke")
        return job.data["name"]

    fetch = queue.create("step", {"name": "fetch"}).save()
    parse = queue.create("step", {"name": "parse"}).save()
    index = queue.create("step", {"name": "index"}).after(fetch, parse).save()
    print("index waits:", index.state)  # delayed with no due time: Node Kue never promotes it
    upload = queue.create("step", {"name": "upload", "broken": True}).save()
    notify = queue.create("step", {"name": "notify"}).after(upload).save()
    cleanup = queue.create("step", {"name": "cleanup"}).after(upload, on_failure="run").save()

    queue.process("step", step)
    result = index.wait(timeout=10)
    print("index:", result, "- after fetch and parse:", {"fetch", "parse"} <= set(ran[: ran.index("index")]))
    cleanup.wait(timeout=10)
    print("cleanup ran although upload failed:", "cleanup" in ran)
    try:
        notify.wait(timeout=10)
    except pykue.JobFailedError as exc:
        print("notify:", exc.error)
