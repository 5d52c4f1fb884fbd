"""The `P:events` channel: Kue's message shape, listeners, and dispatch.

A job hears its own events because a process keeps the jobs that have listeners in a
registry keyed by id, dropped again when the job completes, fails or is removed (Kue kept
every job forever: its issue #401).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

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


def decode_or_warn(message: str | bytes) -> tuple[int, str, list[Any]] | None:
    """`decode`, logging a message that is not Kue's: the reason a listener heard nothing
    should be findable. Listeners decode anyway, so the check costs nothing extra there."""
    decoded = decode(message)
    if decoded is None:
        log.warning("pykue: skipped an event that is not Kue's {id, event, args}: %.200r", message)
    return decoded


def as_text(raw: str | bytes) -> str | None:
    """A message from the channel as text, or None (logged) if it is not UTF-8."""
    try:
        return raw.decode() if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        log.warning("pykue: skipped an event that is not UTF-8 (%s): %r", exc.reason, raw[:200])
        return None


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


async def end_task(task: asyncio.Task[Any], grace: float, what: str) -> None:
    """Let a loop that was asked to stop end; cancel it only if it does not (redis-py may
    swallow a CancelledError raised inside a read, so a cancel alone is not reliable)."""
    try:
        await asyncio.wait_for(asyncio.shield(task), grace)
    except TimeoutError:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
            await asyncio.wait_for(task, grace)
    except Exception as exc:
        log.warning("pykue: %s ended with %r", what, exc)


async def _as_is(message: Any) -> Any:
    """The subscription's push handler: redis-py's default looks up a logger and formats
    every message into a debug line, a quarter of the CPU of reading a message."""
    return message


class Subscriber:
    """Listens on `P:events` and hands each message, as text, to `dispatch`; survives reconnects.

    Its connection does not decode: redis-py would raise on a non-UTF-8 message inside the
    read, ending the loop and with it every listener; such a message is logged and skipped
    here. With `validate` (the dashboard, which forwards the text to browsers) only Kue's
    messages are delivered; without it, listeners decode, and log, what they use.
    One task reads the connection with a plain blocking read: redis-py's per-message
    `get_message(timeout=...)` builds an asyncio timeout, a retry closure and a dict for each
    message, which a busy worker paid for on every job's events."""

    def __init__(self, client: Any, channel: str, dispatch: Callable[[str], None], validate: bool = True) -> None:
        self.client, self.channel, self.dispatch, self.validate = client, channel, dispatch, validate
        self._task: asyncio.Task[None] | None = None
        self._raw: Any = None
        self._pubsub: Any = None
        self.stopping = False

    async def start(self) -> None:
        """Returns once the subscription is confirmed, so no later event is missed."""
        self._raw = await raw_client(self.client).initialize()  # a cluster client learns its slots here
        self._pubsub = self._raw.pubsub(push_handler_func=_as_is)
        try:
            await self._pubsub.subscribe(self.channel)
            while True:
                msg = await self._pubsub.get_message(timeout=5.0)
                if msg and msg["type"] == "subscribe":
                    break
        except BaseException:
            await self._close()
            raise
        self._task = asyncio.ensure_future(self._loop())

    async def _loop(self) -> None:
        while not self.stopping:
            try:
                reply = await self._pubsub.connection.read_response(timeout=math.inf, push_request=True)
            except (RedisError, OSError, AttributeError) as exc:  # AttributeError: closed under us
                if self.stopping:
                    return
                await self._reconnect(exc)
                continue
            if isinstance(reply, list) and len(reply) == 3 and reply[0] == b"message":  # hiredis: a subclass
                self._deliver(reply[2])

    async def _reconnect(self, exc: BaseException) -> None:
        log.warning("pykue: event subscription lost (%s); reconnecting", exc)
        await asyncio.sleep(0.2)
        with contextlib.suppress(RedisError, OSError):
            await self._pubsub.subscribe(self.channel)  # reconnects, and subscribes again

    def _deliver(self, raw: bytes) -> None:
        if self.stopping:  # a newer subscription may deliver it: never twice
            return
        text = as_text(raw)
        if text is None or (self.validate and decode_or_warn(text) is None):
            return
        try:
            self.dispatch(text)
        except Exception:  # a listener's bug must not end the subscription
            log.exception("pykue: handling event %.200s raised", text)

    async def stop(self) -> None:
        """Unsubscribes at once (the connection is closed: the blocked read ends with it)."""
        self.stopping = True
        await self._close()
        task, self._task = self._task, None
        if task is not None:
            await end_task(task, 2.0, "event subscription")

    async def _close(self) -> None:
        for closable in (self._pubsub, self._raw):
            if closable is not None:
                with contextlib.suppress(Exception):
                    await closable.aclose()


class OnDemand:
    """A runtime's one subscription, held only while something needs it.

    Every job publishes its events, and a process subscribed to `P:events` reads every job's
    of the whole fleet: a worker paid more for that than for running its jobs. So a worker
    subscribes only while it must hear something: for good once user code listens
    (`forever`); while it runs a job with a TTL, which Kue's TTL checker may announce (`hold`
    / `release`); for a while after announcing TTLs itself, to hear Kue workers' acks
    (`hold_for`). Each returns once the subscription is confirmed. After the last need it
    lingers `linger` s, so a stream of TTL jobs does not subscribe and unsubscribe per job."""

    def __init__(self, make: Callable[[], Subscriber], linger: float) -> None:
        self._make, self.linger = make, linger
        self._sub: Subscriber | None = None
        self._lock = asyncio.Lock()
        self._forever = False
        self._holds = 0
        self._until = -math.inf  # monotonic time until which hold_for asked for it
        self._timer: asyncio.TimerHandle | None = None
        self._retiring: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def subscribed(self) -> bool:
        return self._sub is not None

    async def forever(self) -> None:
        was, self._forever = self._forever, True
        try:
            await self._confirmed()
        except BaseException:
            self._forever = was
            raise

    async def hold(self) -> None:
        self._holds += 1
        try:
            await self._confirmed()
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        self._holds -= 1
        self._keep(self.linger)

    async def hold_for(self, seconds: float) -> None:
        self._keep(seconds)
        await self._confirmed()

    def _keep(self, seconds: float) -> None:
        self._until = max(self._until, time.monotonic() + seconds)
        self._arm()

    async def _confirmed(self) -> None:
        if self._sub is not None:
            return
        async with self._lock:
            if self._sub is None and not self._closed:
                sub = self._make()
                await sub.start()
                self._sub = sub
        self._arm()

    def _arm(self) -> None:
        """Look again when the last need may have passed (one timer at a time)."""
        if self._timer is None and self._sub is not None and not self._forever:
            delay = max(0.0, self._until - time.monotonic())
            self._timer = asyncio.get_running_loop().call_later(delay, self._expire)

    def _expire(self) -> None:
        self._timer = None
        if self._sub is None or self._forever or self._holds > 0:  # release() arms again
            return
        if time.monotonic() < self._until:
            self._arm()
            return
        sub, self._sub = self._sub, None
        sub.stopping = True  # from now on only a new subscription delivers
        task = asyncio.ensure_future(self._retire(sub))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _retire(self, sub: Subscriber) -> None:
        async with self._lock:
            await sub.stop()

    async def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._sub is not None:
            sub, self._sub = self._sub, None
            sub.stopping = True
            await self._retire(sub)
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)
