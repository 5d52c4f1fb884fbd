"""The worker engine (asyncio), shared by the sync and asyncio queues.

One engine per `process(type, ...)` call: it claims jobs in batches with one Lua call,
runs up to `concurrency` handlers, writes completions in batches, renews the leases of
the jobs it holds, and fails or hands back what it holds when it shuts down.
`Maintenance` is the per-process housekeeping: promote delayed jobs, enforce TTLs
(under Kue's own locks, so Node and Python never do it twice), reap dead workers'
jobs, and repair wake-up tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from . import _codec as codec
from ._events import checked, decode, raw_client
from ._features import split_limit
from ._job import parse_fields
from ._keys import PROMOTION_LOCK, TTL_LOCK, Keys
from ._scripts import AsyncScripts
from ._watchdog import AckLog, WatchdogPass, expire_unowned, watchdog_pass

log = logging.getLogger("pykue.worker")


@dataclass(frozen=True)
class Settings:
    """Worker timing. A dead worker's jobs come back within lease_ms + reap_interval."""

    lease_ms: int = 15_000
    max_stalled: int = 1
    batch: int = 200
    block_timeout: float = 1.0
    promote_interval: float = 0.2
    ttl_interval: float = 1.0
    reap_interval: float = 1.0
    repair_interval: float = 5.0
    shutdown_timeout: float = 5.0
    # The fleet watchdog (see _watchdog.py). stuck_after_ms > 0 opts in to returning unowned
    # active jobs not updated for that long (a dead Node worker's); job hashes in no set of their
    # state are indexed again once seen so for orphan_after_ms (0: never).
    stuck_after_ms: int = 0
    orphan_after_ms: int = 300_000
    ttl_grace_ms: int = 1000  # how long a Node worker has to ack "ttl exceeded" (Kue waits 1 s)
    watchdog_interval: float = 1.0
    watchdog_batch: int = 100  # SCAN COUNT per sweep: the bound on one pass's work

    def __post_init__(self) -> None:
        if self.lease_ms < 100 or self.max_stalled < 0 or self.batch < 1:
            raise ValueError("lease_ms >= 100, max_stalled >= 0 and batch >= 1 are required")
        if min(self.stuck_after_ms, self.orphan_after_ms, self.ttl_grace_ms) < 0 or self.watchdog_batch < 1:
            raise ValueError("stuck_after_ms, orphan_after_ms, ttl_grace_ms >= 0 and watchdog_batch >= 1 are required")


RunFn = Callable[[int, str, dict[str, str]], Awaitable[Any]]


def js_truthy(value: Any) -> bool:
    """Kue stores a result only when JavaScript would call it truthy ({} and [] are)."""
    if value is None or value is False:
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value != 0
    return bool(value != "")


def worker_id(job_type: str, n: int) -> str:
    return f"kue:{socket.gethostname()}:{os.getpid()}:{job_type}:{n}"


async def _retrying(what: str, fn: Callable[[], Awaitable[Any]], stop: asyncio.Event) -> Any:
    """Run a Redis call until it succeeds: a dropped connection or restart is waited out."""
    delay = 0.05
    while True:
        try:
            return await fn()
        except (RedisError, OSError) as exc:
            if stop.is_set() and what != "complete" and what != "fail":
                raise
            log.warning("pykue: %s failed (%s); retrying in %.2fs", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(2.0, delay * 2)


class WorkerEngine:
    def __init__(self, client: Any, scripts: AsyncScripts, keys: Keys, job_type: str,
                 concurrency: int, run: RunFn, settings: Settings, n: int = 1) -> None:  # fmt: skip
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.client, self.scripts, self.keys = client, scripts, keys
        self.type, self.concurrency, self._run, self.settings = job_type, concurrency, run, settings
        self.worker_id = worker_id(job_type, n)
        self._base = uuid.uuid4().hex[:12]
        self._seq = 0
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._owned: dict[int, str] = {}  # id -> token, until the outcome is written
        self._lost: set[int] = set()
        self._fields: dict[int, dict[str, str]] = {}  # of the running jobs
        self._pending: list[tuple[int, str, int, str]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._slot = asyncio.Event()
        self._slot.set()
        self._stop = asyncio.Event()
        self._idle = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._loops = [asyncio.ensure_future(self._fetch_loop()), asyncio.ensure_future(self._renew_loop())]

    async def _script(self, name: str, args: list[Any]) -> Any:
        """A transition that must happen: retried through dropped connections and restarts."""
        return await _retrying(name, functools.partial(self.scripts.call, name, self.keys.jobs, args), self._stop)

    # -- claiming -------------------------------------------------------------
    async def _fetch_loop(self) -> None:
        taken = 0
        while not self._stop.is_set():
            await self._slot.wait()
            await asyncio.sleep(0)  # let handlers that are finishing free their slots: bigger batches
            if self._stop.is_set():
                break
            free = self.concurrency - len(self._tasks)
            self._seq += 1
            now = codec.now_ms()
            args = [self.keys.prefix, now, self.type, min(free, self.settings.batch),
                    self.settings.lease_ms, f"{self._base}:{self._seq}", self.worker_id, taken]  # fmt: skip
            try:
                out, limited = split_limit(await self._script("claim", args))
            except (RedisError, OSError):
                break
            if out or limited is None:
                taken = 0  # else the wake-up token we hold is still owed to the next claim
            if out:
                self._start_jobs(out, now)
            if limited is not None:  # the type's rate limit window is used up (issue 12): wait for
                # it to reopen, looking again at least every block_timeout (a limit may be lifted)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), min(limited, self.settings.block_timeout))
                continue
            if out:
                continue
            got = None
            try:
                got = await self.client.blpop([self.keys.tokens(self.type)], timeout=self.settings.block_timeout)
            except (RedisError, OSError) as exc:
                log.warning("pykue: waiting for %s jobs failed (%s)", self.type, exc)
                await asyncio.sleep(0.2)
            taken = 1 if got else 0  # that token was ours: the next claim uses one fewer

    def _start_jobs(self, out: list[Any], now: int) -> None:
        claimed = {"state": "active", "started_at": str(now), "updated_at": str(now), "workerId": self.worker_id}
        for i in range(0, len(out), 3):
            token = out[i + 1].decode() if isinstance(out[i + 1], bytes) else str(out[i + 1])
            if not token:  # a bad record claim.lua set aside
                log.error("pykue: %s job %s: %s", self.type, out[i], out[i + 2])
                continue
            job_id = int(out[i])
            fields = parse_fields(out[i + 2])
            fields.update(claimed)
            self._owned[job_id] = token
            self._fields[job_id] = fields
            self._tasks[job_id] = asyncio.ensure_future(self._run_one(job_id, token, fields))
        if len(self._tasks) >= self.concurrency:
            self._slot.clear()

    async def _run_one(self, job_id: int, token: str, fields: dict[str, str]) -> None:
        started = codec.now_ms()
        try:
            result = await self._run(job_id, token, fields)
            rjson = codec.js_dumps(result, "job result") if js_truthy(result) else ""  # may be refused
        except asyncio.CancelledError:
            if job_id not in self._lost:
                await self._fail(job_id, token, fields, "Shutdown")
        except Exception as exc:
            await self._fail(job_id, token, fields, exc)
        else:
            self._pending.append((job_id, token, codec.now_ms() - started, rjson))
            if self._flusher is None or self._flusher.done():
                self._flusher = asyncio.ensure_future(self._flush())
        finally:
            self._tasks.pop(job_id, None)
            self._fields.pop(job_id, None)
            self._lost.discard(job_id)
            self._slot.set()
            if not self._tasks:
                self._idle.set()

    # -- outcomes ---------------------------------------------------------------
    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:500], self._pending[500:]
            args: list[Any] = [self.keys.prefix, codec.now_ms(), len(batch)]
            for job_id, token, dur, rjson in batch:
                args += (job_id, token, dur, rjson)
            await self._script("complete", args)
            for job_id, *_ in batch:
                self._owned.pop(job_id, None)

    async def _fail(self, job_id: int, token: str, fields: dict[str, str], error: BaseException | str,
                    mode: str = "") -> None:  # fmt: skip
        if isinstance(error, BaseException):
            err, line, msg = codec.error_text(error)
        else:
            err = line = msg = str(error)
        attempts = int(fields.get("attempts") or 0) + 1
        delay, warning = codec.backoff_delay(fields.get("backoff"), attempts, int(fields.get("delay") or 0))
        if warning:
            log.warning("pykue: job %s: %s", job_id, warning)
        args = [self.keys.prefix, codec.now_ms(), job_id, token, err, line, msg, delay, mode]
        try:
            await self._script("fail", args)
        finally:
            self._owned.pop(job_id, None)

    async def ttl_exceeded(self, job_id: int) -> None:
        """A TTL checker (Node Kue's, usually) says a job we hold ran out of time: fail it
        ourselves and acknowledge, so Kue does not fail it behind our back."""
        token = self._owned.get(job_id)
        task = self._tasks.get(job_id)
        if token is None or task is None:
            return
        self._lost.add(job_id)
        task.cancel()
        await self._fail(job_id, token, self._fields.get(job_id, {}), "TTL exceeded", mode="ack")

    # -- leases -------------------------------------------------------------------
    async def _renew_loop(self) -> None:
        interval = self.settings.lease_ms / 3000
        await self.renew()
        while not self._stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), interval)
            await self.renew()

    async def renew(self) -> None:
        """Heartbeat (a live worker keeps its lease even when idle) and check what it holds."""
        args: list[Any] = [self.keys.prefix, codec.now_ms(), self.settings.lease_ms, self._base]
        for job_id, token in list(self._owned.items()):
            args += (job_id, token)
        try:
            lost = await self.scripts.call("renew", self.keys.jobs, args)
        except (RedisError, OSError) as exc:
            log.warning("pykue: lease renewal failed (%s)", exc)
            return
        for raw in lost:
            job_id = int(raw)
            self._lost.add(job_id)
            self._owned.pop(job_id, None)
            task = self._tasks.get(job_id)
            if task is not None:
                log.warning("pykue: job %s was taken back (lease, TTL or removal); cancelling", job_id)
                task.cancel()

    # -- shutdown -------------------------------------------------------------------
    async def shutdown(self, timeout: float) -> None:
        """Stop claiming, let running handlers finish for `timeout` s, fail the rest "Shutdown"."""
        self._stop.set()
        self._slot.set()
        fetch, renew = self._loops or (None, None)
        if fetch is not None:  # a blocked BLPOP returns within block_timeout
            await _stop_task(fetch, self._stop, self.settings.block_timeout + 1)
        if self._tasks:
            self._idle.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._idle.wait(), timeout)
        for task in list(self._tasks.values()):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        if self._flusher is not None:
            await self._flusher
        if renew is not None:
            await _stop_task(renew, self._stop)
        with contextlib.suppress(RedisError, OSError):  # a clean exit leaves no lease behind
            await self.client.zrem(self.keys.workers, self._base)
            await self.client.delete(self.keys.held(self._base))


async def _stop_task(task: asyncio.Task[None], stop: asyncio.Event, grace: float = 2.0) -> None:
    """Ask a loop to end by its event; cancel only if it does not (redis-py may swallow a
    CancelledError raised inside a read, so a cancel alone is not reliable)."""
    stop.set()
    try:
        await asyncio.wait_for(asyncio.shield(task), grace)
    except TimeoutError:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
            await asyncio.wait_for(task, grace)
    except Exception as exc:
        log.warning("pykue: background loop ended with %r", exc)


class Maintenance:
    """Housekeeping one process does for the queues it works on."""

    def __init__(self, client: Any, scripts: AsyncScripts, keys: Keys, settings: Settings) -> None:
        self.client, self.scripts, self.keys, self.settings = client, scripts, keys, settings
        self.acks = AckLog(keep_s=10 * max(1.0, settings.ttl_grace_ms / 1000))
        self.types: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    def start(self) -> None:
        if self._task is None:
            self._stop.clear()
            self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            await _stop_task(self._task, self._stop)
            self._task = None

    async def _loop(self) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        due = dict.fromkeys(("promote", "ttl", "reap", "repair", "watchdog"), 0.0)
        every = {"promote": s.promote_interval, "ttl": s.ttl_interval, "reap": s.reap_interval,
                 "repair": s.repair_interval, "watchdog": s.watchdog_interval}  # fmt: skip
        jobs = {"promote": self.promote, "ttl": self.check_ttl, "reap": self.reap, "repair": self.repair,
                "watchdog": self.watchdog}  # fmt: skip
        while not self._stop.is_set():
            now = loop.time()
            for name, when in due.items():
                if now >= when:
                    due[name] = now + every[name]
                    try:
                        await jobs[name]()
                    except (RedisError, OSError) as exc:
                        log.warning("pykue: %s failed (%s)", name, exc)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), max(0.01, min(due.values()) - loop.time()))

    async def _locked(self, lock: str, fn: Callable[[], Awaitable[Any]]) -> Any:
        token = uuid.uuid4().hex
        if not await self.client.set(lock, token, px=2000, nx=True):
            return None
        try:
            return await fn()
        finally:
            await self.scripts.call("unlock", lock, [token])

    async def promote(self) -> int:
        args = [self.keys.prefix, codec.now_ms(), 1000]
        return int(await self._locked(PROMOTION_LOCK, lambda: self.scripts.call("promote", self.keys.jobs, args)) or 0)

    async def reap(self) -> list[int]:
        args = [self.keys.prefix, codec.now_ms(), self.settings.max_stalled, 1000]
        return [int(x) for x in await self.scripts.call("reap", self.keys.jobs, args)]

    async def repair(self) -> int:
        if not self.types:
            return 0
        return int(await self.scripts.call("repair_tokens", self.keys.jobs, [self.keys.prefix, *sorted(self.types)]))

    async def watchdog(self) -> WatchdogPass:
        """Clean up after Node processes and kue.app (stale leases and marks, orphans; with
        stuck_after_ms, dead Node workers' jobs): one bounded step per call."""
        s = self.settings
        return await watchdog_pass(self.scripts, self.keys, s.stuck_after_ms, s.max_stalled, s.watchdog_batch,
                                   s.orphan_after_ms)  # fmt: skip

    async def check_ttl(self) -> None:
        await self._locked(TTL_LOCK, self._ttl_pass)

    async def _ttl_pass(self) -> None:
        """Fail jobs of ours past their TTL; tell Node's workers about theirs, as Kue does, and
        fail those no Kue worker acks within ttl_grace_ms (their worker died)."""
        now = codec.now_ms()
        expired = await self.client.zrangebyscore(self.keys.state("active"), 100000, now, start=0, num=1000)
        unowned: list[int] = []
        for member in expired:
            job_id = codec.id_of_member(member)
            if job_id is None:  # not a job: claim.lua and the reaper deal with such entries
                continue
            if not await self.client.hexists(self.keys.owners, job_id):
                unowned.append(job_id)  # a Node worker's: announced, then failed if nobody acks
                continue
            raw = await self.client.hmget(self.keys.job(job_id), "backoff", "delay", "attempts")
            f = dict(zip(("backoff", "delay", "attempts"), raw, strict=True))
            made, delay = codec.int_field(f, "attempts"), codec.int_field(f, "delay")
            ms, _ = codec.backoff_delay(f["backoff"], made + 1, delay)
            msg = "TTL exceeded"
            args = [self.keys.prefix, now, job_id, "*", msg, msg, msg, ms, "ttl"]
            await self.scripts.call("fail", self.keys.jobs, args)
        await expire_unowned(self.client, self.scripts, self.keys, unowned, self.settings.ttl_grace_ms, self.acks)


class Subscriber:
    """Listens on `P:events` and hands each Kue message to `dispatch`; survives reconnects.

    Its connection does not decode: redis-py would raise on a non-UTF-8 message inside the
    read, ending the loop and with it every listener. Each message is checked here instead
    (`_events.checked`), and one that is not Kue's is logged and skipped."""

    def __init__(self, client: Any, channel: str, dispatch: Callable[[str], None]) -> None:
        self.client, self.channel, self.dispatch = client, channel, dispatch
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def start(self) -> None:
        """Returns once the subscription is confirmed, so no later event is missed."""
        self._raw = raw_client(self.client)
        self._pubsub = self._raw.pubsub()
        await self._pubsub.subscribe(self.channel)
        while True:
            msg = await self._pubsub.get_message(timeout=5.0)
            if msg and msg["type"] == "subscribe":
                break
        self._task = asyncio.ensure_future(self._loop())

    async def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                msg = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            except (RedisError, OSError) as exc:
                log.warning("pykue: event subscription lost (%s); reconnecting", exc)
                await asyncio.sleep(0.2)
                with contextlib.suppress(RedisError, OSError):
                    await self._pubsub.subscribe(self.channel)
                continue
            if msg and msg["type"] == "message":
                text = checked(msg["data"])
                if text is not None:
                    self._deliver(text)

    def _deliver(self, text: str) -> None:
        try:
            self.dispatch(text)
        except Exception:  # a listener's bug must not end the subscription
            log.exception("pykue: handling event %.200s raised", text)

    async def stop(self) -> None:
        if self._task is not None:
            await _stop_task(self._task, self._stop)
            self._task = None
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
            with contextlib.suppress(Exception):
                await self._raw.aclose()


class Runtime:
    """The asyncio side of a queue: its workers, housekeeping and event subscription."""

    def __init__(self, client: Any, keys: Keys, settings: Settings) -> None:
        self.client, self.keys, self.settings = client, keys, settings
        self.scripts = AsyncScripts(client)
        self.engines: list[WorkerEngine] = []
        self.maintenance = Maintenance(client, self.scripts, keys, settings)
        self.subscriber: Subscriber | None = None
        self._dispatchers: list[Callable[[str], None]] = []
        self._pending: set[asyncio.Task[None]] = set()

    async def start_engine(self, job_type: str, concurrency: int, run: RunFn) -> WorkerEngine:
        engine = WorkerEngine(self.client, self.scripts, self.keys, job_type, concurrency, run,
                              self.settings, len(self.engines) + 1)  # fmt: skip
        if not self.engines:
            await self.subscribe(self._answer_ttl)
            await self.subscribe(self.maintenance.acks.hear)
        self.engines.append(engine)
        engine.start()
        self.maintenance.types.add(job_type)
        self.maintenance.start()
        return engine

    def _answer_ttl(self, message: str) -> None:
        if '"ttl exceeded"' not in message:  # cheap filter: most messages are not for us
            return
        decoded = decode(message)
        if decoded is None or decoded[1] != "ttl exceeded":
            return
        for engine in self.engines:
            if decoded[0] in engine._owned:
                task = asyncio.ensure_future(engine.ttl_exceeded(decoded[0]))
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)

    def _dispatch(self, message: str) -> None:
        for dispatch in self._dispatchers:
            try:
                dispatch(message)
            except Exception:  # one listener's bug must not starve the others
                log.exception("pykue: handling event %.200s raised", message)

    async def subscribe(self, dispatch: Callable[[str], None]) -> None:
        """Hand every `P:events` message to `dispatch` (one subscription per runtime)."""
        self._dispatchers.append(dispatch)
        if self.subscriber is None:
            self.subscriber = Subscriber(self.client, self.keys.events, self._dispatch)
            await self.subscriber.start()

    async def shutdown(self, timeout: float) -> None:
        await asyncio.gather(*(e.shutdown(timeout) for e in self.engines))
        self.engines.clear()
        await self.maintenance.stop()
        if self.subscriber is not None:
            await self.subscriber.stop()
            self.subscriber = None
        await self.client.aclose()
