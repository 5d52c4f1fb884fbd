"""The sync queue: the generated operations (`_api_sync.QueueBase`) on a plain redis-py
client, plus what only a sync API needs. Workers run the asyncio engine on a private loop
in a daemon thread (handlers in threads); event listeners run on a thread of their own, so
a listener that blocks or calls the queue never holds up the workers or their leases."""

from __future__ import annotations

import asyncio
import functools
import logging
import queue as queue_mod
import signal
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

import redis

from ._api_sync import Job, QueueBase
from ._core import Handler
from ._errors import LoopThreadError, ShutdownError
from ._events import Emitter, Listener
from ._handler_client import SharedRedis
from ._handlers import HandlerTable, handler_table
from ._job import BaseJob
from ._scripts import Scripts
from ._worker import Runtime, Settings, WorkerEngine
from .connection import ConnectionSettings
from .server import EmbeddedRedis

T = TypeVar("T")
log = logging.getLogger("pykue.events")


class _LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="pykue-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        if threading.current_thread() is self.thread:
            coro.close()
            raise LoopThreadError("a sync queue call was made on the queue's own event loop; it would wait for itself")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.thread.is_alive():
            self.loop.close()


class _ListenerThread:
    """Calls the sync API's listeners, in event order, on a thread whose only job that is
    (redis-py's PubSubWorkerThread shape); the engine's loop only hands messages over."""

    def __init__(self) -> None:
        self._calls: queue_mod.SimpleQueue[Callable[[], None] | None] = queue_mod.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="pykue-listeners", daemon=True)
        self.thread.start()

    def put(self, call: Callable[[], None]) -> None:
        self._calls.put(call)

    def _run(self) -> None:
        while (call := self._calls.get()) is not None:
            try:
                call()
            except Exception:
                log.exception("pykue: event dispatch failed")

    def stop(self, timeout: float = 5) -> None:
        self._calls.put(None)
        if threading.current_thread() is not self.thread:
            self.thread.join(timeout)


class Queue(QueueBase):
    """A Kue queue, sync flavour. Make one with `pykue.create_queue()`."""

    def __init__(self, redis_url_or_client: str | redis.Redis | ConnectionSettings | None = None, *,
                 prefix: str = "q", settings: Settings | None = None, embedded: bool = False,
                 cluster: bool = False) -> None:  # fmt: skip
        super().__init__(prefix, settings, cluster)
        self.server = EmbeddedRedis().start() if embedded else None
        if isinstance(redis_url_or_client, redis.Redis):
            self.client = redis_url_or_client
            self.connection = ConnectionSettings.from_client(self.client)
        else:
            self.connection = ConnectionSettings.of(self.server.url if self.server else redis_url_or_client, cluster)
            self.client = self.connection.sync_client()
        self.scripts = Scripts(self.client)
        self._bg: _LoopThread | None = None
        self._runtime: Runtime | None = None
        self._listener_thread: _ListenerThread | None = None
        self._closed = False
        self._listening = False
        self._lock = threading.Lock()
        self._redis: SharedRedis | None = None
        self._remember()

    @property
    def redis(self) -> SharedRedis:
        """A Redis client for your handlers (Kue's `kue.redis.client()`): redis-py's command API,
        thread-safe, every handler thread's commands auto-pipelined on one connection; closed
        by shutdown(). `queue.client` stays pykue's own."""
        if self._redis is None:
            with self._lock:
                if self._redis is None:
                    self._background()
                    assert self._bg is not None
                    self._redis = SharedRedis(self.connection, loop=self._bg.loop)
        return self._redis

    def __enter__(self) -> Queue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # -- plumbing ---------------------------------------------------------------
    def _background(self) -> Runtime:
        if self._closed:
            raise ShutdownError("the queue was shut down")
        if self._runtime is None:
            self._bg = _LoopThread()
            self._runtime = Runtime(self.connection.async_client(), self.keys, self.settings)
        return self._runtime

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = 30) -> T:
        assert self._bg is not None
        return self._bg.run(coro, timeout)

    def _listeners_on_thread(self) -> _ListenerThread:
        if self._listener_thread is None:
            self._listener_thread = _ListenerThread()
        return self._listener_thread

    # -- events -------------------------------------------------------------------
    def listen(self) -> None:
        """Subscribe to the events channel; returns once the subscription is confirmed
        (save() of a job with listeners and on("job ...") do it for you)."""
        with self._lock:
            if self._listening:
                return
            runtime = self._background()
            thread = self._listeners_on_thread()
            self._run(runtime.subscribe(lambda m: thread.put(functools.partial(self.listeners.dispatch, m))))
            self._listening = True

    def on(self, event: str, listener: Listener) -> Queue:
        """Queue-level events: "job complete", "job failed", ... (id first), as in Kue."""
        super().on(event, listener)
        if event.startswith("job "):
            self.listen()
        return self

    def _listen_to(self, job: BaseJob) -> None:
        if self.test_mode.active and not self.test_mode.process:
            return
        self.listen()
        if job.id is not None:
            self._listeners_on_thread().put(functools.partial(self.listeners.add, job.id, job))

    def _unlisten(self, job: BaseJob) -> None:
        self._listeners_on_thread().put(functools.partial(super()._unlisten, job))

    def _expect(self) -> None:
        self._listeners_on_thread().put(self.listeners.expect)

    def _settle(self, jobs: Sequence[tuple[int, Emitter]]) -> None:
        self._listeners_on_thread().put(functools.partial(self.listeners.settle, jobs))

    # -- processing ---------------------------------------------------------------
    def process(self, job_type: str, concurrency: int | Handler, handler: Handler | None = None) -> WorkerEngine:
        """Kue's queue.process(type, [n], fn): run `fn` on jobs of `type`, n at a time.

        `fn(job)` returns the result or raises; Kue's `fn(job, done)` calls done(err, result),
        and `fn(job, ctx, done)` also gets Kue's ctx (ctx.pause(ms, cb) / ctx.resume()).
        Returns at once; jobs run in background threads until shutdown().
        """
        n, run, ctx = self._runner(Job, job_type, concurrency, handler)
        return self._run(ctx.started(self._background().start_engine, job_type, n, run))

    def process_many(self, handlers: HandlerTable, concurrency: int = 1) -> list[WorkerEngine]:
        """One worker for many job types: `{type: handler or (concurrency, handler)}`, each
        type with its own concurrency (`concurrency` where the table gives none)."""
        table = handler_table(handlers, concurrency)
        return [self.process(job_type, n, fn) for job_type, n, fn in table]

    def run_forever(self, until: Callable[[], bool] | None = None, timeout: float | None = None) -> None:
        """Block until SIGINT or SIGTERM (or until `until()` is true, checked every 0.2 s),
        then shut down gracefully: the worker runner for scripts. Main thread only."""
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            while not stop.wait(0.2):
                if until is not None and until():
                    break
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.shutdown(timeout)

    def shutdown(self, timeout: float | None = None) -> None:
        """Stop taking jobs, give running ones `timeout` s, fail the rest with "Shutdown"."""
        if self._closed:
            return
        self._closed = True
        if self._runtime is not None and self._bg is not None:
            t = self.settings.shutdown_timeout if timeout is None else timeout
            self._bg.run(self._runtime.shutdown(t), t + 30)
            if self._redis is not None:
                self._redis.close()
            self._bg.stop()
        if self._listener_thread is not None:
            self._listener_thread.stop()
        for ex in self._executors:
            ex.shutdown(wait=False, cancel_futures=True)
        self.client.close()
        if self.server is not None:
            self.server.close()


def create_queue(redis: str | Any = None, *, prefix: str = "q", settings: Settings | None = None,
                 embedded: bool = False, cluster: bool = False) -> Queue:  # fmt: skip
    """Kue's kue.createQueue(): a queue on `redis` (URL, client or ConnectionSettings; default
    $REDIS_URL or redis://127.0.0.1:6379/0), or on a private embedded server with embedded=True.
    cluster=True: `redis` is a node of a Redis Cluster, and `prefix` must carry a {hash tag}."""
    return Queue(redis, prefix=prefix, settings=settings, embedded=embedded, cluster=cluster)
