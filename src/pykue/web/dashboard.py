"""The dashboard: Kue's JSON API, a web page built on it, live events, and metrics.

    pykue dashboard [--port 3000] [--host 127.0.0.1] [--read-only] [--token T | --insecure]

Live updates come from the `P:events` channel (server-sent events), so jobs created or
worked by Node Kue show up too. The page's view (state, type, page, open job) lives in its
URL, so a link or a reload shows the same thing; bulk actions, search in the data and the
throughput chart are served by `extras`. Every asset ships in the package: no CDN.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

import pykue
from pykue import _codec as codec
from pykue._events import Subscriber, decode
from pykue._keys import STATES

from .api import router
from .extras import History, extras_router
from .security import LOOPBACK, Guard, protect

STATIC = resources.files("pykue.web") / "static"
ASSETS = {"app.js": "text/javascript", "style.css": "text/css"}


class Broadcaster:
    """One subscription to `P:events`, fanned out to every open browser."""

    def __init__(self) -> None:
        self.clients: set[asyncio.Queue[str]] = set()

    def publish(self, message: str) -> None:
        for q in list(self.clients):
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(message)

    async def stream(self, request: Request) -> AsyncIterator[str]:
        q: asyncio.Queue[str] = asyncio.Queue(maxsize=1000)
        self.clients.add(q)
        try:
            yield ": connected\n\n"
            while not await request.is_disconnected():
                try:
                    msg = await asyncio.wait_for(q.get(), 10)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                yield f"data: {msg}\n\n"
        finally:
            self.clients.discard(q)


class Metrics:
    """Prometheus metrics: counts read from Redis at scrape time, totals and durations
    observed from the events channel while the dashboard runs."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Gauge("pykue_jobs", "Jobs per state and type", ["state", "type"], registry=self.registry)
        self.workers = Gauge("pykue_workers", "pykue workers holding a live lease", registry=self.registry)
        self.completed = Counter("pykue_jobs_completed", "Jobs completed (seen since start)", ["type"],
                                 registry=self.registry)  # fmt: skip
        self.failed = Counter("pykue_jobs_failed", "Jobs failed for good (seen since start)", ["type"],
                              registry=self.registry)  # fmt: skip
        buckets = (0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120)
        self.duration = Histogram("pykue_job_duration_seconds", "Processing time of completed jobs", ["type"],
                                  buckets=buckets, registry=self.registry)  # fmt: skip

    async def on_event(self, queue: pykue.AsyncQueue, job_id: int, event: str) -> None:
        if event not in ("complete", "failed"):
            return
        fields = await queue.client.hmget(queue.keys.job(job_id), "type", "duration")
        job_type = fields[0] or "unknown"
        if event == "failed":
            self.failed.labels(job_type).inc()
            return
        self.completed.labels(job_type).inc()
        if fields[1] is not None:
            self.duration.labels(job_type).observe(int(fields[1]) / 1000)

    async def render(self, queue: pykue.AsyncQueue) -> bytes:
        types = await queue.types()
        async with queue.client.pipeline(transaction=False) as p:
            for t in types:
                for s in STATES:
                    p.zcard(queue.keys.state(s, t))
            p.zcount(queue.keys.workers, codec.now_ms(), "+inf")
            *counts, workers = await p.execute()
        for i, t in enumerate(types):
            for j, s in enumerate(STATES):
                self.jobs.labels(s, t).set(counts[i * len(STATES) + j])
        self.workers.set(workers)
        return generate_latest(self.registry)


def create_dashboard(queue: pykue.AsyncQueue | str | None = None, *, prefix: str = "q", read_only: bool = False,
                     token: str | None = None, hosts: frozenset[str] | None = LOOPBACK,
                     timeout: float = 10.0) -> FastAPI:  # fmt: skip
    """The dashboard app. With `token`, every request needs it (Bearer header, cookie, or
    ?token= once in the browser); with `read_only`, every write is refused; `hosts` are the
    Host names it answers to (None: any). See `security` for what else is guarded."""
    owned = not isinstance(queue, pykue.AsyncQueue)
    q = queue if isinstance(queue, pykue.AsyncQueue) else pykue.create_async_queue(queue, prefix=prefix)
    hub = Broadcaster()
    metrics = Metrics()
    history = History()
    pending: set[asyncio.Task[None]] = set()

    def on_message(raw: str) -> None:
        hub.publish(raw)
        decoded = decode(raw)
        if decoded is not None:
            history.count(decoded[1])
            task = asyncio.ensure_future(metrics.on_event(q, decoded[0], decoded[1]))
            pending.add(task)
            task.add_done_callback(pending.discard)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sub = Subscriber(q.client, q.keys.events, on_message)
        await sub.start()
        yield
        await sub.stop()
        if owned:
            await q.shutdown()

    app = FastAPI(title="pykue dashboard", version=pykue.__version__, lifespan=lifespan, docs_url=None,
                  redoc_url=None)  # fmt: skip
    app.state.queue = q
    protect(app, Guard(token=token, read_only=read_only, hosts=hosts, name="dashboard", timeout=timeout))

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse((STATIC / "index.html").read_text())

    @app.get("/static/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        if name not in ASSETS:
            return JSONResponse({"error": "not found"}, status_code=404)
        return Response((STATIC / name).read_text(), media_type=ASSETS[name])

    @app.get("/config")
    async def config() -> dict[str, Any]:
        return {"readOnly": read_only, "prefix": q.keys.prefix, "version": pykue.__version__}

    @app.get("/events", include_in_schema=False)
    async def events(request: Request) -> StreamingResponse:
        return StreamingResponse(hub.stream(request), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})  # fmt: skip

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        return Response(await metrics.render(q), media_type=CONTENT_TYPE_LATEST)

    app.include_router(router())
    app.include_router(extras_router(history))
    return app
