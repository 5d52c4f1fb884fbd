"""The `P:events` channel: Kue's message shape, listeners, and dispatch.

A job hears its own events because a process keeps the jobs that have listeners in a
registry keyed by id, dropped again when the job completes, fails or is removed (Kue kept
every job forever: its issue #401).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Callable
from typing import Any

from ._codec import js_dumps
from .connection import is_cluster, raw_cluster_client

log = logging.getLogger("pykue.events")

FINAL_EVENTS = frozenset({"complete", "failed", "remove"})

Listener = Callable[..., Any]
_pending: set[asyncio.Future[Any]] = set()


def encode(job_id: int | str, event: str, *args: Any) -> str:
    return js_dumps({"id": job_id, "event": event, "args": [event, *args]}, "event")


def decode(message: str | bytes) -> tuple[int, str, list[Any]] | None:
    """(id, event, args after the name), or None for a message that is not Kue's.

    Anything may be published on the channel, so no message makes this raise."""
    try:
        msg = json.loads(message)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    if not isinstance(msg, dict):
        return None
    job_id, event, args = msg.get("id"), msg.get("event"), msg.get("args")
    if isinstance(job_id, str) and job_id.isascii() and job_id.isdigit() and len(job_id) < 17:
        job_id = int(job_id)
    if isinstance(job_id, bool) or not isinstance(job_id, int) or not isinstance(event, str):
        return None
    if args is None:
        args = [event]
    if not isinstance(args, list):
        return None
    return job_id, event, args[1:]


def checked(raw: str | bytes) -> str | None:
    """A message from the channel as text if it is Kue's, else None (logged: the reason
    a listener heard nothing should be findable)."""
    try:
        text = raw.decode() if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        log.warning("pykue: skipped an event that is not UTF-8 (%s): %r", exc.reason, raw[:200])
        return None
    if decode(text) is None:
        log.warning("pykue: skipped an event that is not Kue's {id, event, args}: %.200r", text)
        return None
    return text


def raw_client(client: Any) -> Any:
    """A client like `client` (same connection settings) whose replies are not decoded."""
    if is_cluster(client):
        return raw_cluster_client(client)
    pool = client.connection_pool
    kwargs = {**pool.connection_kwargs, "decode_responses": False}
    raw_pool = type(pool)(connection_class=pool.connection_class, **kwargs)
    return type(client).from_pool(raw_pool)


def _arity(fn: Listener) -> int | None:
    """How many arguments a listener takes: like JavaScript, extra event args are dropped.

    Parameters with defaults are not counted, so the loop idiom `lambda pct, j=job: ...`
    gets only the event's arguments. Worked out per call, not cached: a cache keyed by the
    listener kept it, and the job its defaults capture, alive after the job finished."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return None
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty for p in params)


def _in_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def _awaited(out: Any) -> Any:
    return await out


class Emitter:
    """Minimal EventEmitter: listeners may be plain functions or coroutine functions."""

    def __init__(self) -> None:
        self._listeners: dict[str, list[Listener]] = {}

    def on(self, event: str, listener: Listener) -> Any:
        self._listeners.setdefault(event, []).append(listener)
        return self

    def off(self, event: str, listener: Listener | None = None) -> Any:
        if listener is None:
            self._listeners.pop(event, None)
        elif listener in self._listeners.get(event, []):
            self._listeners[event].remove(listener)
        return self

    def has_listeners(self) -> bool:
        return any(self._listeners.values())

    def emit(self, event: str, *args: Any) -> bool:
        listeners = list(self._listeners.get(event, ()))
        for fn in listeners:
            try:
                out = fn(*args[: _arity(fn)])
                if inspect.isawaitable(out) and not _in_loop():
                    asyncio.run(_awaited(out))  # the sync API's listener thread has no loop
                elif inspect.isawaitable(out):
                    task = asyncio.ensure_future(out)
                    _pending.add(task)  # keep a reference until it is done
                    task.add_done_callback(_pending.discard)
            except Exception:
                log.exception("listener for %r raised", event)
        return bool(listeners)


class Registry:
    """Jobs of this process that listen to their own events, by id."""

    def __init__(self) -> None:
        self.jobs: dict[int, Emitter] = {}

    def add(self, job_id: int, job: Emitter) -> None:
        self.jobs[job_id] = job

    def dispatch(self, message: str | bytes, queue: Emitter) -> None:
        decoded = decode(message)
        if decoded is None:
            return
        job_id, event, args = decoded
        job = self.jobs.get(job_id)
        if event in FINAL_EVENTS:
            self.jobs.pop(job_id, None)
        if job is not None:
            job.emit(event, *args)
        queue.emit(f"job {event}", job_id, *args)
