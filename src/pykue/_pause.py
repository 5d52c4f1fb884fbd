"""Pausing: Kue's per-worker ctx.pause/ctx.resume, and the fleet-wide pause of a job type.

Fleet-wide: `P:pykue:paused` is a set of paused job types; claim.lua refuses to claim a
type in it (one SISMEMBER inside the claim script, no extra round trip), so every pykue
worker stops taking that type as soon as the set changes, while jobs already running
finish. Node Kue workers do not read this key: they keep working (Kue has no such pause).

Per worker: a 3-argument handler `(job, ctx, done)` gets a WorkerContext. As in Kue's
worker.js, `ctx.pause(ms, fn)` stops this worker taking new jobs and gives its running
jobs up to `ms` to finish; those still running then fail with "Shutdown" (Kue's
Worker#shutdown), and `fn(None)` is called. `ctx.resume()` starts taking jobs again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from ._keys import Keys
from ._worker import WorkerEngine

DEFAULT_PAUSE_MS = 5000  # Kue's default when pause(fn) is called without a timeout


def paused_key(keys: Keys) -> str:
    return keys.key("pykue:paused")


class WorkerContext:
    """Kue's `ctx` for one `process()` call; callable from any thread (handlers run in a pool)."""

    def __init__(self, job_type: str) -> None:
        self.type = job_type
        self.engine: WorkerEngine | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drains: set[asyncio.Task[None]] = set()

    async def started(self, start: Callable[..., Awaitable[WorkerEngine]], *args: Any) -> WorkerEngine:
        """Start the engine (`start(*args)`) and bind to it before any of its jobs can run
        (they start only after we return). The call is made here, so a coroutine refused
        before it runs leaves no inner one unawaited."""
        engine = await start(*args)
        self.engine, self._loop = engine, asyncio.get_running_loop()
        return engine

    @property
    def paused(self) -> bool:
        return self.engine is not None and self.engine.paused_locally

    def pause(self, ms: int | Callable[[Any], Any] | None = None, fn: Callable[[Any], Any] | None = None) -> None:
        """Kue's ctx.pause([ms], fn): stop taking jobs; running ones get `ms` to finish."""
        if callable(ms):
            ms, fn = None, ms
        timeout = (DEFAULT_PAUSE_MS if ms is None else int(ms)) / 1000
        self._on_loop(lambda: self._start_drain(timeout, fn))

    def resume(self) -> bool:
        """Kue's ctx.resume(): take jobs again; False if this worker was not paused."""
        was = self.paused
        self._on_loop(self._resume)
        return was

    def _on_loop(self, call: Callable[[], None]) -> None:
        if self._loop is None:
            raise RuntimeError("the worker has not started yet")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            call()
        else:
            self._loop.call_soon_threadsafe(call)

    def _resume(self) -> None:
        if self.engine is not None:
            self.engine.paused_locally = False

    def _start_drain(self, timeout: float, fn: Callable[[Any], Any] | None) -> None:
        assert self.engine is not None
        self.engine.paused_locally = True
        task = asyncio.ensure_future(self._drain(self.engine, timeout, fn))
        self._drains.add(task)
        task.add_done_callback(self._drains.discard)

    @staticmethod
    async def _drain(engine: WorkerEngine, timeout: float, fn: Callable[[Any], Any] | None) -> None:
        running = engine.running_tasks()
        if running:
            await asyncio.wait(running, timeout=timeout)
        late = [t for t in running if not t.done()]
        for task in late:
            task.cancel()  # the engine fails a cancelled job with "Shutdown", as Kue does
        if late:
            await asyncio.gather(*late, return_exceptions=True)
        if fn is not None:
            with contextlib.suppress(Exception):
                out = fn(None)
                if asyncio.iscoroutine(out):
                    await out
