"""The dashboard's own routes beyond Kue's API: bulk actions, search in the data, and the
last hour's throughput.

Bulk actions work through library calls (Queue.retry, Job.remove) in batches of BATCH ids,
so no Redis call is long, and stop after MAX_PER_CALL jobs (the answer says `more`; the
page asks again), so no request is. They are writes: guarded by `security.WRITE` like
every other, refused in read-only mode.

Throughput comes from the events channel: each `complete`, `failed attempt` and `failed`
message is counted in a per-minute ring buffer in the dashboard process (`History`). pykue's
complete/fail scripts keep no per-minute history, and adding one would cost every
completion a write; counting events costs the queue nothing. The price: the chart covers the
time since this dashboard started (it says so), and a message missed while the subscription
reconnects is not counted.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request

import pykue
from pykue._errors import JobNotFoundError, JobStateError
from pykue._keys import STATES

from .security import WRITE, error

BATCH = 200
MAX_PER_CALL = 10_000
SEARCH_DEFAULT, SEARCH_MAX = 1000, 5000
MINUTES = 60


class History:
    """Completions and failed runs per minute, for the last MINUTES minutes."""

    def __init__(self, clock: Any = time.time) -> None:
        self.clock = clock
        self.started = int(clock() * 1000)
        self.buckets: dict[int, list[int]] = {}  # minute -> [complete, failed]

    def count(self, event: str) -> None:
        column = 0 if event == "complete" else 1 if event in ("failed", "failed attempt") else None
        if column is None:
            return
        minute = int(self.clock() // 60)
        self.buckets.setdefault(minute, [0, 0])[column] += 1
        for old in [m for m in self.buckets if m <= minute - MINUTES]:
            del self.buckets[old]

    def series(self) -> dict[str, Any]:
        now = int(self.clock() // 60)
        minutes = range(now - MINUTES + 1, now + 1)
        rows = [{"at": m * 60_000, "complete": self.buckets.get(m, [0, 0])[0],
                 "failed": self.buckets.get(m, [0, 0])[1]} for m in minutes]  # fmt: skip
        return {"since": self.started, "minutes": rows}


def _queue(request: Request) -> pykue.AsyncQueue:
    return request.app.state.queue  # type: ignore[no-any-return]


def _checked(state: str, job_type: str | None) -> str | None:
    if state not in STATES:
        return f"unknown state {state!r}; one of {', '.join(STATES)}"
    if job_type is not None and not job_type:
        return "type must not be empty (leave it out for every type)"
    return None


async def retry_all(q: pykue.AsyncQueue, job_type: str | None) -> dict[str, Any]:
    """Retry failed jobs (of a type) in batches; a job that left `failed` meanwhile is skipped."""
    done = skipped = 0
    while done + skipped < MAX_PER_CALL:
        ids = await q.job_ids("failed", job_type, skipped, skipped + BATCH - 1)
        if not ids:
            return {"retried": done, "skipped": skipped, "more": False}
        for job_id in ids:
            try:
                await q.retry(job_id)
                done += 1
            except (JobStateError, JobNotFoundError):
                skipped += 1
    return {"retried": done, "skipped": skipped, "more": True}


async def remove_all(q: pykue.AsyncQueue, state: str, job_type: str | None) -> dict[str, Any]:
    """Remove the jobs of a state (of a type) in batches."""
    removed = skipped = 0
    while removed + skipped < MAX_PER_CALL:
        jobs = await q.jobs(state, job_type, skipped, skipped + BATCH - 1)
        if not jobs:
            return {"removed": removed, "more": False}
        for job in jobs:
            if await job.remove():
                removed += 1
            else:
                skipped += 1
    return {"removed": removed, "more": True}


async def search_data(q: pykue.AsyncQueue, text: str, state: str, job_type: str | None,
                      limit: int) -> dict[str, Any]:  # fmt: skip
    """Jobs whose data JSON contains `text`, among the last `limit` of a state's set (Kue's
    order: by priority, then id; with equal priorities, the newest)."""
    scanned = await q.jobs(state, job_type, -limit, -1, "desc")
    hits = [{"id": j.id, "type": j.type, "state": j.state, "created_at": j.fields.get("created_at")}
            for j in scanned if text in (j.fields.get("data") or "")]  # fmt: skip
    return {"scanned": len(scanned), "limit": limit, "state": state, "jobs": hits}


def extras_router(history: History) -> APIRouter:
    r = APIRouter()

    @r.post("/bulk/retry", dependencies=[WRITE])
    async def bulk_retry(request: Request, type: str | None = None) -> Any:
        if problem := _checked("failed", type):
            return error(problem, 400)
        return await retry_all(_queue(request), type)

    @r.post("/bulk/remove", dependencies=[WRITE])
    async def bulk_remove(request: Request, state: str = "complete", type: str | None = None) -> Any:
        if problem := _checked(state, type):
            return error(problem, 400)
        if state == "active":
            return error("running jobs are not removed in bulk: their workers still hold them", 400)
        return await remove_all(_queue(request), state, type)

    @r.get("/search/data")
    async def search(request: Request, q: str, state: str = "complete", type: str | None = None,
                     limit: int = SEARCH_DEFAULT) -> Any:  # fmt: skip
        if problem := _checked(state, type):
            return error(problem, 400)
        if not q:
            return error("give the text to look for in q", 400)
        if not 1 <= limit <= SEARCH_MAX:
            return error(f"limit must be 1..{SEARCH_MAX}", 400)
        return await search_data(_queue(request), q, state, type, limit)

    @r.get("/history")
    async def throughput() -> Any:
        return history.series()

    return r
