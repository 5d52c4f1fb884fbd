"""The asyncio queue: the operations of `_api_async.AsyncQueueBase` on a `redis.asyncio`
client, plus how it subscribes, runs workers in this event loop and shuts down."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from typing import Any

import redis.asyncio

from ._api_async import AsyncJob, AsyncQueueBase
from ._core import Handler
from ._errors import ShutdownError
from ._events import Listener
from ._handler_client import AsyncSharedRedis
from ._handlers import HandlerTable, handler_table
from ._job import BaseJob
from ._worker import Runtime, Settings, WorkerEngine
from .connection import ConnectionSettings
from .server import EmbeddedRedis

log = logging.getLogger("pykue.events")


class AsyncQueue(AsyncQueueBase):
    """A Kue queue for asyncio code. Make one with `pykue.create_async_queue()`."""

    def __init__(self, redis_url_or_client: str | redis.asyncio.Redis | ConnectionSettings | None = None, *,
                 prefix: str = "q", settings: Settings | None = None, embedded: bool = False,
                 cluster: bool = False) -> None:  # fmt: skip
        super().__init__(prefix, settings, cluster)
        self.server = EmbeddedRedis().start() if embedded else None
        if isinstance(redis_url_or_client, redis.asyncio.Redis):
            self.client = redis_url_or_client
            self.connection = ConnectionSettings.from_client(self.client)
        else:
            self.connection = ConnectionSettings.of(self.server.url if self.server else redis_url_or_client, cluster)
            self.client = self.connection.async_client()
        self._runtime = Runtime(self.client, self.keys, self.settings)
        self.scripts = self._runtime.scripts
        self._closed = False
        self._subscribed: asyncio.Future[None] | None = None
        self._redis: AsyncSharedRedis | None = None
        self._remember()

    @property
    def redis(self) -> AsyncSharedRedis:
        """A Redis client for your handlers (Kue's `kue.redis.client()`): redis-py's command API on
        one connection shared by this queue's handlers, their commands auto-pipelined; closed
        by shutdown(). `queue.client` stays pykue's own."""
        if self._redis is None:
            self._redis = AsyncSharedRedis(self.connection)
        return self._redis

    async def __aenter__(self) -> AsyncQueue:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    # -- events -------------------------------------------------------------------
    async def listen(self) -> None:
        """Subscribe to the events channel; returns once the subscription is confirmed
        (save() of a job with listeners and on("job ...") do it for you)."""
        if self._closed:
            raise ShutdownError("the queue was shut down")
        if self._subscribed is None:
            self._subscribed = asyncio.ensure_future(self._runtime.subscribe(self.listeners.dispatch))
        try:
            await asyncio.shield(self._subscribed)
        except Exception:
            self._subscribed = None  # the next call tries again
            raise

    def _listen_soon(self) -> None:
        """Subscribe from a plain method: at once if a loop runs, else at the next save()."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._subscribed is None and not self._closed:
            task = asyncio.ensure_future(self.listen())
            task.add_done_callback(_log_failure)

    def on(self, event: str, listener: Listener) -> AsyncQueue:
        """Queue-level events: "job complete", "job failed", ... (id first), as in Kue."""
        super().on(event, listener)
        if event.startswith("job "):
            self._listen_soon()
        return self

    def _listen_to(self, job: BaseJob) -> None:
        if self.test_mode.active and not self.test_mode.process:
            return
        if job.id is not None:
            self.listeners.add(job.id, job)
        self._listen_soon()

    # -- processing ---------------------------------------------------------------
    async def process(self, job_type: str, concurrency: int | Handler, handler: Handler | None = None) -> WorkerEngine:
        """Start a worker in this event loop. Async handlers run in the loop; plain
        functions run in a thread pool of `concurrency` threads."""
        if self._closed:
            raise ShutdownError("the queue was shut down")
        n, run, ctx = self._runner(AsyncJob, job_type, concurrency, handler)
        if self.has_listeners():
            await self.listen()  # queue-level listeners hear this worker's first jobs
        return await ctx.started(self._runtime.start_engine, job_type, n, run)

    async def process_many(self, handlers: HandlerTable, concurrency: int = 1) -> list[WorkerEngine]:
        """One worker for many job types: `{type: handler or (concurrency, handler)}`, each
        type with its own concurrency (`concurrency` where the table gives none)."""
        table = handler_table(handlers, concurrency)
        return [await self.process(job_type, n, fn) for job_type, n, fn in table]

    async def run_forever(self, until: Callable[[], bool] | None = None, timeout: float | None = None) -> None:
        """Wait for SIGINT or SIGTERM (or until `until()` is true, checked every 0.2 s), then
        shut down gracefully (the asyncio worker runner)."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            while not stop.is_set() and not (until is not None and until()):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.2)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            await self.shutdown(timeout)

    async def shutdown(self, timeout: float | None = None) -> None:
        """Stop taking jobs, give running ones `timeout` s, fail the rest with "Shutdown"."""
        if self._closed:
            return
        self._closed = True
        await self._runtime.shutdown(self.settings.shutdown_timeout if timeout is None else timeout)
        for ex in self._executors:
            ex.shutdown(wait=False, cancel_futures=True)
        if self._redis is not None:
            await self._redis.aclose()
        if self.server is not None:
            self.server.close()


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("pykue: could not subscribe to events: %s", task.exception())


def create_async_queue(redis: str | Any = None, *, prefix: str = "q", settings: Settings | None = None,
                       embedded: bool = False, cluster: bool = False) -> AsyncQueue:  # fmt: skip
    """The asyncio twin of create_queue()."""
    return AsyncQueue(redis, prefix=prefix, settings=settings, embedded=embedded, cluster=cluster)
