"""Kue's JSON API (kue.app's routes, bodies and status codes), served by pykue.

    app = pykue.web.create_app(queue)          # an AsyncQueue, or a Redis URL
    uvicorn.run(app)                           # or mount it: parent.mount("/kue", app)

Where Kue answers a bad request with a 500 or silently stores garbage (an unknown state,
an invalid option, a body that is not JSON), pykue answers 4xx with a clear {"error": ...};
options go through the library's own validation, and nothing from a request is evaluated.
Protections (token, read-only, cross-site writes, Host, headers) are in `security`.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response

import pykue
from pykue import _codec as codec
from pykue import _scripts as sc
from pykue._errors import InvalidJobError, JobNotFoundError, JobStateError
from pykue._keys import STATES

from .security import LOOPBACK, WRITE, Guard, protect

RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)$")  # Kue: parseInt of each bound, so -1 is the last job
ORDERS = ("asc", "desc")
INT64 = 2**63 - 1
MAX_PRIORITY = 2**31 - 1  # Lua keeps priorities as doubles: far beyond this they come back as "1e+15"
MAX_INT_OPTION = 2**53 - 1  # what Node Kue (a double) reads back exactly
MAX_BODY = 10 * 1024 * 1024
# Kue's option names -> the library's; searchKeys is Kue's search index, which pykue does not keep.
KUE_OPTIONS = {"attempts": "attempts", "priority": "priority", "delay": "delay", "backoff": "backoff",
               "removeOnComplete": "remove_on_complete", "ttl": "ttl", "searchKeys": None}  # fmt: skip
INTEGER = re.compile(r"^\s*[+-]?\d{1,18}\s*$")


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
    if not m or (order is not None and order not in ORDERS) or max(abs(int(m[1])), abs(int(m[2]))) > INT64:
        return _error(f"bad range {rng!r}: use FROM..TO[/asc|desc] with 64-bit integers", 400)
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

    @api.put("/job/{job_id}/state/{state}", dependencies=[WRITE])
    async def update_state(request: Request, job_id: str, state: str) -> Any:
        if state not in STATES:  # Kue stores any string here; pykue refuses
            return _error(f"unknown state {state!r}; one of {', '.join(STATES)}", 400)
        if not await _set_state(_queue(request), job_id, state):
            return _error(f'job "{job_id}" doesnt exist')
        return {"message": "updated state"}

    @api.post("/job/{job_id}/retry", dependencies=[WRITE])
    async def retry(request: Request, job_id: str, force: bool = False) -> Any:
        """pykue's own: run a failed job again with its attempts reset (Queue.retry)."""
        if not job_id.isdigit():
            return _error(f'job "{job_id}" doesnt exist', 404)
        try:
            await _queue(request).retry(job_id, force)
        except JobNotFoundError as exc:
            return _error(str(exc), 404)
        except JobStateError as exc:
            return _error(str(exc), 409)
        return {"message": f"job {job_id} retried"}

    @api.put("/job/{job_id}/priority/{priority}", dependencies=[WRITE])
    async def update_priority(request: Request, job_id: str, priority: str) -> Any:
        m = re.match(r"^\s*([+-]?\d+)", priority)  # Kue: parseInt(priority, 10)
        if not m:
            return _error("invalid priority")
        if abs(int(m[1])) > MAX_PRIORITY:
            return _error(f"priority must lie within -{MAX_PRIORITY}..{MAX_PRIORITY}", 400)
        try:
            await (await _queue(request).get_job(job_id)).set_priority(int(m[1]))
        except (JobNotFoundError, ValueError):
            return _error(f'job "{job_id}" doesnt exist')
        return {"message": "updated priority"}

    @api.delete("/job/{job_id}", dependencies=[WRITE])
    async def remove(request: Request, job_id: str) -> Any:
        try:
            await (await _queue(request).get_job(job_id)).remove()
        except (JobNotFoundError, ValueError):
            return _error(f'job "{job_id}" doesnt exist')
        return {"message": f"job {job_id} removed"}

    @api.get("/inactive/{job_id}", dependencies=[WRITE])  # a GET that writes, as in Kue
    async def inactive(request: Request, job_id: str) -> Any:
        if not await _set_state(_queue(request), job_id, "inactive"):
            return _error(f'job "{job_id}" doesnt exist')
        return {"message": f"job {job_id} inactive"}

    @api.post("/job", dependencies=[WRITE])
    async def create(request: Request) -> Any:
        body = await _json_body(request)
        if isinstance(body, JSONResponse):
            return body
        if body is None or body == {} or body == []:
            return Response(status_code=204)  # Kue: an empty body is "no content"; other non-objects are 400
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


async def _set_state(q: pykue.AsyncQueue, job_id: str, state: str) -> bool:
    """Kue's bare job.state(s) (progress and failed_at untouched), revoking any running
    attempt's owner token; False when there is no such job."""
    if not job_id.isdigit():
        return False
    call = sc.set_state(q.keys, now=codec.now_ms(), job_id=job_id, state=state, bare=True)
    return await q.scripts.run(call) is sc.Outcome.DONE


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def _json_body(request: Request) -> Any:
    """The parsed body, or a 400/413 answer: not JSON, NaN/Infinity, or nested too deep."""
    raw = await request.body()
    if len(raw) > MAX_BODY:
        return _error(f"body larger than {MAX_BODY} bytes", 413)
    if not raw.strip():
        return None
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        return _error(f"body is not valid JSON: {reason}", 400)


def _option_value(value: Any) -> Any:
    """Kue parseInt()s numbers given as strings; the library then validates them as integers."""
    return int(value) if isinstance(value, str) and INTEGER.match(value) else value


def _library_options(options: dict[str, Any]) -> dict[str, Any]:
    """Kue's options as the library's keyword options (Kue skips falsy ones, and so do we)."""
    out: dict[str, Any] = {}
    for name, value in options.items():
        if name not in KUE_OPTIONS:
            raise InvalidJobError(f"unknown job option {name!r}; known: {', '.join(KUE_OPTIONS)}")
        target = KUE_OPTIONS[name]
        if target is not None and value not in (None, False, 0, ""):
            out[target] = value if target in ("priority", "backoff") else _option_value(value)
    for name, value in out.items():
        bound = MAX_PRIORITY if name == "priority" else MAX_INT_OPTION
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > bound:
            raise InvalidJobError(f"{name} must lie within -{bound}..{bound}; got {value}")
    if "remove_on_complete" in out and not isinstance(out["remove_on_complete"], bool):
        raise InvalidJobError(f"removeOnComplete must be true or false; got {out['remove_on_complete']!r}")
    return out


async def _create_one(q: pykue.AsyncQueue, args: Any) -> tuple[dict[str, Any], int]:
    if not isinstance(args, dict) or not args.get("type"):
        return {"error": "Must provide job type"}, 400
    options = args.get("options") or {}
    if not isinstance(options, dict):
        return {"error": f"options must be an object; got {type(options).__name__}"}, 400
    try:
        job = q.create(args["type"], args.get("data") or {}, **_library_options(options))
        await job.save()
    except (InvalidJobError, ValueError, TypeError, OverflowError) as exc:
        return {"error": str(exc)}, 400
    return {"message": "job created", "id": job.id}, 200


def create_app(queue: pykue.AsyncQueue | str | None = None, *, prefix: str = "q", read_only: bool = False,
               token: str | None = None, hosts: frozenset[str] | None = LOOPBACK,
               timeout: float = 10.0) -> FastAPI:  # fmt: skip
    """The JSON API as an app of its own; `queue` may be an AsyncQueue or a Redis URL.
    `hosts`: the Host names it answers to (None: any); see `security` for the rest."""
    owned = not isinstance(queue, pykue.AsyncQueue)
    q = queue if isinstance(queue, pykue.AsyncQueue) else pykue.create_async_queue(queue, prefix=prefix)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if owned:
            await q.shutdown()

    # no /docs: Swagger UI would load from a CDN; /openapi.json describes the API
    app = FastAPI(title="pykue: Kue JSON API", version=pykue.__version__, lifespan=lifespan, docs_url=None,
                  redoc_url=None)  # fmt: skip
    app.state.queue = q
    protect(app, Guard(token=token, read_only=read_only, hosts=hosts, timeout=timeout))
    app.include_router(router())
    return app
