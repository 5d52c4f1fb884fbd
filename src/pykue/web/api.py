"""Kue's JSON API (kue.app's routes, bodies and status codes), served by pykue.

    app = pykue.web.create_app(queue)          # an AsyncQueue, or a Redis URL
    uvicorn.run(app)                           # or mount it: parent.mount("/kue", app)

Where Kue answers a bad request with a 500 or silently stores garbage (an unknown state,
an invalid option), pykue answers 400 with a clear {"error": ...}; it never evaluates
anything from a request.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response

import pykue
from pykue._errors import InvalidJobError, JobNotFoundError
from pykue._keys import STATES

RANGE = re.compile(r"^(\d+)\.\.(\d+)$")
ORDERS = ("asc", "desc")


def _error(message: str, status: int = 200) -> JSONResponse:
    """Kue answers errors of GET and PUT routes with HTTP 200 and {"error": message}."""
    return JSONResponse({"error": message}, status_code=status)


def _queue(request: Request) -> pykue.AsyncQueue:
    return request.app.state.queue  # type: ignore[no-any-return]


async def _job_json(queue: pykue.AsyncQueue, job_id: str) -> dict[str, Any] | JSONResponse:
    try:
        job = await queue.get_job(job_id)
    except (JobNotFoundError, ValueError):
        return _error(f'job "{job_id}" doesnt exist')
    return job.to_json()


async def _range(queue: pykue.AsyncQueue, state: str | None, job_type: str | None, rng: str,
                 order: str | None) -> Any:  # fmt: skip
    m = RANGE.match(rng)
    if not m or (order is not None and order not in ORDERS):
        return _error(f"bad range {rng!r}: use FROM..TO[/asc|desc]", 400)
    if state is not None and state not in STATES:
        return _error(f"unknown state {state!r}; one of {', '.join(STATES)}", 400)
    jobs = await queue.jobs(state, job_type, int(m[1]), int(m[2]), order or "asc")
    return [{**j.to_json(), "id": j.id} for j in jobs]  # ranges give numeric ids, like Kue


def router() -> APIRouter:
    api = APIRouter()

    @api.get("/stats")
    async def stats(request: Request) -> Any:
        return await _queue(request).stats()

    @api.get("/job/search")
    async def search(request: Request, q: str = "") -> Any:
        return []  # Kue's full-text search is off by default; pykue keeps no search index

    @api.get("/job/types")
    async def types(request: Request) -> Any:
        return await _queue(request).types()

    @api.get("/job/{job_id}")
    async def job(request: Request, job_id: str) -> Any:
        return await _job_json(_queue(request), job_id)

    @api.get("/job/{job_id}/log")
    async def log(request: Request, job_id: str) -> Any:
        return await _queue(request).job_logs(job_id)

    @api.get("/jobs/{path:path}")
    async def jobs(request: Request, path: str) -> Any:
        """/jobs/FROM..TO[/ORDER], /jobs/STATE/FROM..TO[/ORDER], /jobs/TYPE/STATE/FROM..TO[/ORDER],
        /jobs/TYPE/STATE/stats"""
        parts = path.strip("/").split("/")
        q = _queue(request)
        if len(parts) == 3 and parts[2] == "stats":
            if parts[1] not in STATES:
                return _error(f"unknown state {parts[1]!r}; one of {', '.join(STATES)}", 400)
            return {"count": await q.card(parts[1], parts[0])}
        if RANGE.match(parts[0]) and len(parts) <= 2:
            return await _range(q, None, None, parts[0], parts[1] if len(parts) == 2 else None)
        if len(parts) >= 2 and RANGE.match(parts[1]) and len(parts) <= 3:
            return await _range(q, parts[0], None, parts[1], parts[2] if len(parts) == 3 else None)
        if len(parts) >= 3 and RANGE.match(parts[2]) and len(parts) <= 4:
            return await _range(q, parts[1], parts[0], parts[2], parts[3] if len(parts) == 4 else None)
        return _error(f"no such route: /jobs/{path}", 404)

    @api.put("/job/{job_id}/state/{state}")
    async def update_state(request: Request, job_id: str, state: str) -> Any:
        q = _queue(request)
        if state not in STATES:  # Kue stores any string here; pykue refuses
            return _error(f"unknown state {state!r}; one of {', '.join(STATES)}", 400)
        try:
            await (await q.get_job(job_id)).set_state(state)
        except (JobNotFoundError, ValueError):
            return _error(f'job "{job_id}" doesnt exist')
        return {"message": "updated state"}

    @api.put("/job/{job_id}/priority/{priority}")
    async def update_priority(request: Request, job_id: str, priority: str) -> Any:
        m = re.match(r"^\s*([+-]?\d+)", priority)  # Kue: parseInt(priority, 10)
        if not m:
            return _error("invalid priority")
        try:
            await (await _queue(request).get_job(job_id)).set_priority(int(m[1]))
        except (JobNotFoundError, ValueError):
            return _error(f'job "{job_id}" doesnt exist')
        return {"message": "updated priority"}

    @api.delete("/job/{job_id}")
    async def remove(request: Request, job_id: str) -> Any:
        try:
            await (await _queue(request).get_job(job_id)).remove()
        except (JobNotFoundError, ValueError):
            return _error(f'job "{job_id}" doesnt exist')
        return {"message": f"job {job_id} removed"}

    @api.get("/inactive/{job_id}")
    async def inactive(request: Request, job_id: str) -> Any:
        try:
            await (await _queue(request).get_job(job_id)).set_state("inactive")
        except (JobNotFoundError, ValueError):
            return _error(f'job "{job_id}" doesnt exist')
        return {"message": f"job {job_id} inactive"}

    @api.post("/job")
    async def create(request: Request) -> Any:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not body:
            return Response(status_code=204)  # Kue: an empty body is "no content"
        q = _queue(request)
        if isinstance(body, list):
            results, status = [], 200
            for item in body:
                res, code = await _create_one(q, item)
                results.append(res)
                if code != 200 and status == 200:
                    status = code
            return JSONResponse(results, status_code=status)
        res, code = await _create_one(q, body)
        return JSONResponse(res, status_code=code)

    return api


async def _create_one(q: pykue.AsyncQueue, args: Any) -> tuple[dict[str, Any], int]:
    if not isinstance(args, dict) or not args.get("type"):
        return {"error": "Must provide job type"}, 400
    options = args.get("options") or {}
    if not isinstance(options, dict):
        return {"error": "options must be an object"}, 400
    try:
        job = q.create(args["type"], args.get("data") or {})
        if options.get("attempts"):
            job.attempts(int(options["attempts"]))
        if options.get("priority"):
            job.priority(options["priority"])
        if options.get("delay"):
            job.delay(int(options["delay"]))
        if options.get("backoff"):
            job.backoff(options["backoff"])  # True or an object: never code
        if options.get("removeOnComplete"):
            job.remove_on_complete(True)
        if options.get("ttl"):
            job.ttl(int(options["ttl"]))
        await job.save()
    except (InvalidJobError, ValueError, TypeError) as exc:
        return {"error": str(exc)}, 400
    return {"message": "job created", "id": job.id}, 200


def create_app(queue: pykue.AsyncQueue | str | None = None, *, prefix: str = "q") -> FastAPI:
    """The JSON API as an app of its own; `queue` may be an AsyncQueue or a Redis URL."""
    owned = not isinstance(queue, pykue.AsyncQueue)
    q = queue if isinstance(queue, pykue.AsyncQueue) else pykue.create_async_queue(queue, prefix=prefix)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if owned:
            await q.shutdown()

    app = FastAPI(title="pykue: Kue JSON API", version=pykue.__version__, lifespan=lifespan)
    app.state.queue = q
    app.include_router(router())
    return app
