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
import concurrent.futures
import contextlib
import gc
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import _codec as codec
from . import _joblog
from . import _scripts as sc
from ._events import OnDemand, Subscriber, decode, end_task, raw_client
from ._features import split_limit
from ._keys import Keys
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
    repeat_interval: float = 0.5  # how often this process looks for due repeatable jobs (feata)
    shutdown_timeout: float = 5.0
    # The fleet watchdog (see _watchdog.py). stuck_after_ms > 0 opts in to returning unowned
    # active jobs not updated for that long (a dead Node worker's); job hashes in no set of their
    # state are indexed again once seen so for orphan_after_ms (0: never).
    stuck_after_ms: int = 0
    orphan_after_ms: int = 300_000
    ttl_grace_ms: int = 1000  # how long a Node worker has to ack "ttl exceeded" (Kue waits 1 s)
    watchdog_interval: float = 1.0
    watchdog_batch: int = 100  # SCAN COUNT per sweep: the bound on one pass's work
    # Python's cyclic GC scans its young generation every 700 new container objects; a worker
    # makes ~15 per job, and at that pace the scans cost a fifth of a pure worker's CPU. A
    # process that starts a worker raises the threshold to this, if it is still Python's
    # default (an application's own tuning is kept); 0 leaves it alone. See _tune_gc.
    young_gc_threshold: int = 10_000

    def __post_init__(self) -> None:
        if self.lease_ms < 100 or self.max_stalled < 0 or self.batch < 1 or self.young_gc_threshold < 0:
            raise ValueError("lease_ms >= 100, max_stalled >= 0, batch >= 1 and young_gc_threshold >= 0 are required")
        if min(self.stuck_after_ms, self.orphan_after_ms, self.ttl_grace_ms) < 0 or self.watchdog_batch < 1:
            raise ValueError("stuck_after_ms, orphan_after_ms, ttl_grace_ms >= 0 and watchdog_batch >= 1 are required")


T = TypeVar("T")
RunFn = Callable[["JobLease"], Awaitable[Any]]


def js_truthy(value: Any) -> bool:
    """Kue stores a result only when JavaScript would call it truthy ({} and [] are)."""
    if value is None or value is False:
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value != 0
    return bool(value != "")


def worker_id(job_type: str, n: int) -> str:
    return f"kue:{socket.gethostname()}:{os.getpid()}:{job_type}:{n}"


PYTHON_YOUNG_GC_THRESHOLD = 700  # gc.get_threshold()[0] unless someone changed it


def _tune_gc(threshold: int) -> None:
    """Fewer young-generation scans: garbage cycles wait for up to `threshold` new objects
    instead of 700 (kilobytes, not megabytes), each scan is longer, and most of a job's
    objects are gone before any scan sees them. Measured on a pure drain: ~6 of ~28 µs/job."""
    young, *older = gc.get_threshold()
    if threshold and young == PYTHON_YOUNG_GC_THRESHOLD:
        gc.set_threshold(threshold, *older)


class LeaseLostError(Exception):
    """Internal: a handler was not started because its job is no longer ours."""


class Revocation:
    """`job.lease.revoked`: threading.Event's is_set/set/wait, without the lock and condition
    an Event builds per job. Nearly no job is revoked and nobody waits on most of them, so
    the Event behind `wait` is made only for a waiter."""

    __slots__ = ("_event", "_flag")

    def __init__(self) -> None:
        self._flag = False
        self._event: threading.Event | None = None

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        with _REVOKING:
            self._flag = True
            if self._event is not None:
                self._event.set()

    def wait(self, timeout: float | None = None) -> bool:
        """As threading.Event.wait: True once revoked, False if `timeout` s passed first."""
        with _REVOKING:
            if self._event is None:
                self._event = threading.Event()
                if self._flag:
                    self._event.set()
            event = self._event
        return event.wait(timeout)


_REVOKING = threading.Lock()  # a revocation's flag and its waiters' Event change together


class JobLease:
    """One job an engine holds, from its claim until its outcome is written, and its claim
    as the handler sees it (`job.lease`): one object per job.

    `revoked` is set when the worker learns the job is no longer its own (reaped after a
    pause, removed, re-queued by an operator, failed by a TTL checker): a sync handler can
    poll `revoked.is_set()` (or wait on it) and stop early; an asyncio handler is cancelled.
    """

    __slots__ = ("engine", "fields", "job_id", "revoked", "started", "task", "threaded", "token")

    def __init__(self, engine: WorkerEngine, job_id: int, token: str, fields: dict[str, str] | None = None) -> None:
        self.engine, self.job_id, self.token = engine, job_id, token
        self.fields: dict[str, str] = {} if fields is None else fields  # the job's hash as claimed
        self.revoked = Revocation()
        self.threaded = False  # the handler runs in a pool thread (it cannot be cancelled)
        self.started: float | None = None  # monotonic time the handler was let start
        self.task: asyncio.Task[None] | None = None  # the run, until its outcome is known

    def ready(self) -> bool:
        """Can the handler start without asking Redis (surely still ours)? Marks the start."""
        if self.revoked.is_set() or not self.engine.lease_fresh():
            return False
        self.started = time.monotonic()
        return True

    def enter(self) -> None:
        """In the pool thread, right before a sync handler: make sure the job is still ours."""
        self.threaded = True
        if (self.revoked.is_set() or not self.engine.lease_fresh()) and not self._confirm_from_thread():
            raise LeaseLostError(self.job_id)
        self.started = time.monotonic()

    def _confirm_from_thread(self) -> bool:
        """Ask the engine's loop; a loop that is gone or does not answer (shut down) is a no."""
        try:
            future = asyncio.run_coroutine_threadsafe(self.engine.confirm(self), self.engine.loop)
            return bool(future.result(timeout=self.engine.settings.lease_ms / 1000 * 3 + 5))
        except (RuntimeError, TimeoutError, concurrent.futures.CancelledError):
            return False

    async def aenter(self) -> None:
        if not self.ready() and not await self.engine.confirm(self):
            raise LeaseLostError(self.job_id)
        self.started = time.monotonic()


def guarded(handler: Callable[..., Any], is_coro: bool) -> Callable[..., Any]:
    """Wrap a handler so it starts only on a job its worker still owns (checked as late as
    possible: a worker may have been paused between the claim and this call)."""
    if is_coro:

        async def acall(job: Any, *rest: Any) -> Any:
            if job.lease is not None and not job.lease.ready():
                await job.lease.aenter()
            return await handler(job, *rest)

        return acall

    def call(job: Any, *rest: Any) -> Any:
        if job.lease is not None:
            job.lease.enter()
        return handler(job, *rest)

    return call


@dataclass(frozen=True)
class _Claim:
    seq: int  # numbers its owner tokens: the renewal tells a lost reply's jobs by it
    now: int
    sent: float  # monotonic: the claim extended the lease from then
    task: asyncio.Task[Any]


class _Backoff:
    """Retry pacing with a warning on the first failure and then every 10th (not a log flood)."""

    def __init__(self, what: str) -> None:
        self.what, self.delay, self.failures = what, 0.05, 0

    async def wait(self, exc: BaseException) -> None:
        if self.failures % 10 == 0:
            log.warning("pykue: %s failed (%s); retrying in %.2fs", self.what, exc, self.delay)
        self.failures += 1
        await asyncio.sleep(self.delay)
        self.delay = min(2.0, self.delay * 2)


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
        self._inflight: list[int] = []  # the claims whose replies may still be on their way
        self._lease_at = -1e18  # monotonic time the last successful renewal (or claim) was sent
        self._fresh_for = settings.lease_ms / 1000 - settings.lease_ms / 3000  # lease - margin, s
        self._chunk = min(settings.batch, -(-concurrency // 2))  # a claim takes at most half the slots (_claim_ahead)
        self._held: dict[int, JobLease] = {}
        self._running = 0
        self._pending: list[tuple[JobLease, int, str]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._slot = asyncio.Event()
        self._slot.set()
        self._deliverable = asyncio.Event()  # cleared while outcomes cannot be written
        self._deliverable.set()
        self._stop = asyncio.Event()
        self._idle = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._claims, self._completions = sc.Lane(), sc.Lane()  # each used by one task at a time
        self.paused_locally = False  # Kue's ctx.pause (see _pause.py)
        self.loop = asyncio.get_running_loop()

    def start(self) -> None:
        _tune_gc(self.settings.young_gc_threshold)
        self._loops = [asyncio.ensure_future(self._fetch_loop()), asyncio.ensure_future(self._renew_loop())]

    async def _outcome(self, call: sc.Call[T], lane: sc.Lane | None = None) -> T:
        """An outcome must be written: retried through dropped connections, restarts and a
        full Redis; claiming waits meanwhile, so a worker does not run jobs it cannot finish."""
        pace = _Backoff(call.script)
        while True:
            try:
                out = await self.scripts.run(call, lane=lane)
            except (RedisError, OSError) as exc:
                self._deliverable.clear()
                await pace.wait(exc)
                continue
            self._deliverable.set()
            return out

    # -- claiming -------------------------------------------------------------
    def _claim(self, count: int, taken: int) -> _Claim:
        """Send a claim now (its reply is awaited later): numbered, and in flight until read."""
        self._seq += 1
        self._inflight.append(self._seq)
        now, sent = codec.now_ms(), time.monotonic()
        call = sc.claim(self.keys, now=now, job_type=self.type, count=count, lease_ms=self.settings.lease_ms,
                        token_base=f"{self._base}:{self._seq}", worker_id=self.worker_id,
                        tokens_taken=taken)  # fmt: skip
        return _Claim(self._seq, now, sent, self.loop.create_task(self.scripts.run(call, lane=self._claims)))

    def _claim_ahead(self, claimed: int) -> _Claim | None:
        """While the jobs just claimed are built and run, Redis claims the next ones: each
        claim takes at most half the slots, so a second fits beside the first. Its jobs get
        slots that are free now and start as soon as its reply is read."""
        free = self.concurrency - self._running - claimed
        if free <= 0 or self._stop.is_set() or self.paused_locally or not self._deliverable.is_set():
            return None
        return self._claim(min(free, self._chunk), 0)

    async def _fetch_loop(self) -> None:
        taken = 0
        pace = _Backoff(f"claiming {self.type} jobs")
        ahead: _Claim | None = None
        while ahead is not None or not self._stop.is_set():
            if ahead is None:
                await self._slot.wait()
                await self._deliverable.wait()
                await asyncio.sleep(0)  # let handlers that are finishing free their slots: bigger batches
                if self._stop.is_set():
                    break
                if self.paused_locally:  # Kue's ctx.pause: take nothing until ctx.resume()
                    await self._nap()
                    continue
                claim = self._claim(min(self.concurrency - self._running, self._chunk), taken)
            else:
                claim, ahead = ahead, None
            try:
                out = await claim.task
            except (RedisError, OSError) as exc:
                # The claim may have run with its reply lost: its jobs are held under our
                # name but unknown here, and the next renewal hands them back.
                self._inflight.remove(claim.seq)
                if not self._stop.is_set():
                    await pace.wait(exc)
                continue
            self._inflight.remove(claim.seq)
            pace = _Backoff(f"claiming {self.type} jobs")
            if not isinstance(
                out, list
            ):  # Outcome.PAUSED, queue.pause(type): claim.lua took nothing; `taken` stays ours
                await self._nap()
                continue
            out, limited = split_limit(out)
            if out or limited is None:
                taken = 0  # else the wake-up token we hold is still owed to the next claim
            if out:
                self._lease_at = max(self._lease_at, claim.sent)  # the claim extended our lease
                if limited is None:
                    ahead = self._claim_ahead(len(out) // 3)
                self._start_jobs(out, claim.now)
            if limited is not None:  # the type's rate limit window is used up (issue 12): wait for
                # it to reopen, looking again at least every block_timeout (a limit may be lifted)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), min(limited, self.settings.block_timeout))
                continue
            if out or ahead is not None:
                continue
            got = None
            await self._claims.close()  # an idle engine keeps no connection from the pools
            await self._completions.close()
            try:
                got = await self.client.blpop([self.keys.tokens(self.type)], timeout=self.settings.block_timeout)
            except (RedisError, OSError) as exc:
                log.warning("pykue: waiting for %s jobs failed (%s)", self.type, exc)
                await asyncio.sleep(0.2)
            taken = 1 if got else 0  # that token was ours: the next claim uses one fewer

    async def _nap(self) -> None:
        """While paused: look again after block_timeout (or stop at once on shutdown)."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stop.wait(), self.settings.block_timeout)

    def _set_aside(self, job_id: int, token: str, reason: str) -> None:
        """A claimed record no reader can decode fails for good, in the background. If that
        call fails too, the job stays held under a token no handler owns, which the lease
        renewal hands back, and the next claim sets it aside again."""
        log.error("pykue: %s job %s set aside: %s", self.type, job_id, reason)
        call = sc.set_aside(self.keys, now=codec.now_ms(), job_id=job_id, token=token, reason=reason)
        task = asyncio.ensure_future(self.scripts.run(call))
        _ASIDES.add(task)
        task.add_done_callback(_ASIDES.discard)

    def _start_jobs(self, out: list[Any], now: int) -> None:
        claimed = {"state": "active", "started_at": str(now), "updated_at": str(now), "workerId": self.worker_id}
        held, create_task = self._held, self.loop.create_task
        for i in range(0, len(out), 3):
            token = out[i + 1].decode() if isinstance(out[i + 1], bytes) else str(out[i + 1])
            if not token:  # a bad record claim.lua set aside
                log.error("pykue: %s job %s: %s", self.type, codec.text(out[i]), codec.text(out[i + 2]))
                continue
            job_id = int(out[i])
            fields, problem = codec.claimed_record(out[i + 2])
            if problem:
                self._set_aside(job_id, token, problem)
                continue
            fields.update(claimed)
            h = JobLease(self, job_id, token, fields)
            old = held.get(job_id)
            if old is not None:  # taken from us and claimed again: the old run is not ours
                self._revoke(old)
            held[job_id] = h
            self._running += 1
            h.task = create_task(self._run_one(h))
        if self._running >= self.concurrency:
            self._slot.clear()

    async def _run_one(self, h: JobLease) -> None:
        try:
            result = await self._run(h)
            rjson = "" if result is None or not js_truthy(result) else codec.js_dumps(result, "job result")
        except LeaseLostError:
            self._forget(h)  # not ours (or shutting down before it started): the renewal hands it back
        except asyncio.CancelledError:
            if not h.revoked.is_set():
                await self._fail(h, "Shutdown")
        except Exception as exc:
            if not h.revoked.is_set():
                await self._fail(h, exc)
        else:
            if h.revoked.is_set():
                self._forget(h)
            else:
                took = 0 if h.started is None else int((time.monotonic() - h.started) * 1000)
                self._pending.append((h, took, rjson))
                if self._flusher is None or self._flusher.done():
                    self._flusher = self.loop.create_task(self._flush())
        finally:
            h.task = None
            self._running -= 1
            self._slot.set()
            if not self._running:
                self._idle.set()

    def running_tasks(self) -> list[asyncio.Task[None]]:
        """The handlers running now (Kue's ctx.pause waits for them)."""
        return [h.task for h in self._held.values() if h.task is not None]

    def _forget(self, h: JobLease) -> None:
        if self._held.get(h.job_id) is h:
            del self._held[h.job_id]

    # -- outcomes ---------------------------------------------------------------
    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:500], self._pending[500:]
            jobs = [(h.job_id, h.token, dur, rjson) for h, dur, rjson in batch]
            done = await self._outcome(sc.complete(self.keys, now=codec.now_ms(), jobs=jobs), self._completions)
            for h, _, _ in batch:
                self._forget(h)
            if _joblog.jobs_log.isEnabledFor(logging.INFO):  # once per batch, not per job
                for (h, dur, _), ok in zip(batch, done, strict=False):
                    if ok is sc.Outcome.DONE:
                        _joblog.outcome(h.job_id, self.type, "complete", dur, int(h.fields.get("attempts") or 0) + 1)

    async def _fail(self, h: JobLease, error: BaseException | str, mode: str = "") -> None:
        if isinstance(error, BaseException):
            err, line, msg = codec.error_text(error)
        else:
            err = line = msg = str(error)
        attempts = int(h.fields.get("attempts") or 0) + 1
        delay, warning = codec.backoff_delay(h.fields.get("backoff"), attempts, int(h.fields.get("delay") or 0))
        if warning:
            log.warning("pykue: job %s: %s", h.job_id, warning)
        now = codec.now_ms()
        call = sc.fail(self.keys, now=now, job_id=h.job_id, token=h.token, error=err, log_line=line, message=msg,
                       retry_delay_ms=delay, mode=mode)  # fmt: skip
        try:
            made = await self._outcome(call)
        finally:
            self._forget(h)
        if isinstance(made, sc.Failed):
            dur = now - int(h.fields.get("started_at") or now)
            _joblog.outcome(h.job_id, self.type, "failed" if made.final else "retry", dur, attempts, msg)

    async def ttl_exceeded(self, job_id: int) -> None:
        """A TTL checker (Node Kue's, usually) says a job we hold ran out of time: fail it
        ourselves and acknowledge, so Kue does not fail it behind our back."""
        h = self._held.get(job_id)
        if h is None or h.task is None:
            return
        self._revoke(h)
        await self._fail(h, "TTL exceeded", mode="ack")

    def holds(self, job_id: int) -> bool:
        return job_id in self._held

    def _revoke(self, h: JobLease) -> None:
        h.revoked.set()
        if h.task is not None and not h.threaded:
            h.task.cancel()

    # -- leases -------------------------------------------------------------------
    def lease_fresh(self) -> bool:
        """Is our lease surely still valid? Its last renewal (or claim) was sent less than
        lease - margin ago, on a monotonic clock (a paused process sees the gap)."""
        return time.monotonic() - self._lease_at < self._fresh_for

    async def confirm(self, lease: JobLease) -> bool:
        """After a gap: renew (which tells us what we lost) before a handler may start."""
        pace = _Backoff("lease check")
        while not lease.revoked.is_set() and not self._stop.is_set():
            try:
                await self.renew(raising=True)
            except (RedisError, OSError) as exc:
                await pace.wait(exc)
                continue
            if self.lease_fresh():
                return not lease.revoked.is_set()
        return False

    async def _renew_loop(self) -> None:
        """Every lease/3; after a failure sooner (backing off), so a short outage costs no lease."""
        interval, retry = self.settings.lease_ms / 3000, 0.05
        ok = await self.renew()
        while not self._stop.is_set():
            wait, retry = (interval, 0.05) if ok else (retry, min(interval, retry * 2))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), wait)
            ok = await self.renew()

    async def renew(self, raising: bool = False, mode: str = "renew") -> bool:
        """Heartbeat (a live worker keeps its lease even when idle), learn which jobs were
        taken from us, and have Redis hand back what it says we hold but no handler runs."""
        floor = min(self._inflight) if self._inflight else self._seq + 1
        sent_tokens = {job_id: h.token for job_id, h in self._held.items()}
        call = sc.renew(self.keys, now=codec.now_ms(), lease_ms=self.settings.lease_ms, worker=self._base,
                        floor=floor, mode=mode, held=list(sent_tokens.items()))  # fmt: skip
        sent = time.monotonic()
        try:
            lost, back = (renewed := await self.scripts.run(call)).lost, renewed.back
        except (RedisError, OSError) as exc:
            if raising:
                raise
            log.warning("pykue: lease renewal failed (%s)", exc)
            return False
        if mode == "renew":
            self._lease_at = max(self._lease_at, sent)
        if back:
            log.warning("pykue: handed back %d %s job(s) held under a lost claim reply", len(back), self.type)
        for raw in lost:
            h = self._held.get(int(raw))
            if h is not None and h.token == sent_tokens.get(h.job_id):
                del self._held[h.job_id]
                if h.task is not None:
                    log.warning("pykue: job %s was taken back (lease, TTL, removal or re-queue)", h.job_id)
                self._revoke(h)
        return True

    # -- shutdown -------------------------------------------------------------------
    async def shutdown(self, timeout: float) -> None:
        """Stop claiming, let running handlers finish for `timeout` s, fail the rest "Shutdown",
        then hand back whatever Redis still says we hold and drop the lease."""
        self._stop.set()
        self._slot.set()
        fetch, renew = self._loops or (None, None)
        if fetch is not None:  # a blocked BLPOP returns within block_timeout
            await _stop_task(fetch, self._stop, self.settings.block_timeout + 1)
        if self._running:
            self._idle.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._idle.wait(), timeout)
        tasks = [h.task for h in self._held.values() if h.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._flusher is not None:
            await self._flusher
        if renew is not None:
            await _stop_task(renew, self._stop)
        with contextlib.suppress(RedisError, OSError):
            await self.renew(raising=True, mode="release")
        await self._claims.close()
        await self._completions.close()


async def _stop_task(task: asyncio.Task[None], stop: asyncio.Event, grace: float = 2.0) -> None:
    """Ask a loop to end by its event (see end_task)."""
    stop.set()
    await end_task(task, grace, "background loop")


class Maintenance:
    """Housekeeping one process does for the queues it works on."""

    def __init__(self, client: Any, scripts: AsyncScripts, keys: Keys, settings: Settings) -> None:
        self.client, self.scripts, self.keys, self.settings = client, scripts, keys, settings
        self.acks = AckLog(keep_s=10 * max(1.0, settings.ttl_grace_ms / 1000))
        self.hear_acks: Callable[[float], Awaitable[None]] = _deaf  # the runtime's OnDemand.hold_for
        self.types: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._healthy_since = -math.inf

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
        due = dict.fromkeys(("promote", "ttl", "reap", "repair", "watchdog", "repeat"), 0.0)
        every = {"promote": s.promote_interval, "ttl": s.ttl_interval, "reap": s.reap_interval,
                 "repair": s.repair_interval, "watchdog": s.watchdog_interval,
                 "repeat": s.repeat_interval}  # fmt: skip
        jobs = {"promote": self.promote, "ttl": self.check_ttl, "reap": self.reap, "repair": self.repair,
                "watchdog": self.watchdog, "repeat": self.fire_schedules}  # fmt: skip
        while not self._stop.is_set():
            now = loop.time()
            for name, when in due.items():
                if now >= when:
                    due[name] = now + every[name]
                    try:
                        await jobs[name]()
                    except (RedisError, OSError) as exc:
                        if not isinstance(exc, ResponseError):  # unreachable, not merely refusing
                            self._healthy_since = loop.time()
                        log.warning("pykue: %s failed (%s)", name, exc)
                    self._check_gap(loop.time() - now)
            pause = max(0.01, min(due.values()) - loop.time())
            before = loop.time()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), pause)
            self._check_gap(loop.time() - before - pause)

    def _check_gap(self, gap: float) -> None:
        """Redis stalled, or this process was paused: live workers could not renew meanwhile."""
        if gap > self.settings.lease_ms / 3000:
            self._healthy_since = asyncio.get_running_loop().time()

    async def _locked(self, lock: str, fn: Callable[[], Awaitable[Any]]) -> Any:
        token = uuid.uuid4().hex
        if not await self.client.set(lock, token, px=2000, nx=True):
            return None
        try:
            return await fn()
        finally:
            await self.scripts.run(sc.unlock(self.keys, lock=lock, token=token))

    async def promote(self) -> int:
        call = sc.promote(self.keys, now=codec.now_ms(), limit=1000)
        return int(await self._locked(self.keys.promotion_lock, lambda: self.scripts.run(call)) or 0)

    async def reap(self) -> list[int]:
        """Only after a full lease of seeing Redis answer: when Redis was down or stalled (or
        this process paused), live workers' leases ran out too, and they need a lease period
        to renew before theirs can be told from a dead worker's."""
        loop = asyncio.get_running_loop()
        if loop.time() - self._healthy_since < self.settings.lease_ms / 1000:
            return []
        out = await self.scripts.run(sc.reap(self.keys, now=codec.now_ms(), max_stalled=self.settings.max_stalled,
                                             limit=1000))  # fmt: skip
        return [out.requeued, out.failed]

    async def fire_schedules(self) -> list[int]:
        """Repeatable jobs whose tick is due (see _schedule.py); each tick fires once fleet-wide."""
        from ._schedule import fire_due

        return await fire_due(self.client, self.scripts, self.keys)

    async def repair(self) -> int:
        if not self.types:
            return 0
        return await self.scripts.run(sc.repair_tokens(self.keys, job_types=sorted(self.types)))

    async def watchdog(self) -> WatchdogPass:
        """Clean up after Node processes and kue.app (stale leases and marks, orphans; with
        stuck_after_ms, dead Node workers' jobs): one bounded step per call."""
        s = self.settings
        return await watchdog_pass(self.scripts, self.keys, s.stuck_after_ms, s.max_stalled, s.watchdog_batch,
                                   s.orphan_after_ms)  # fmt: skip

    async def check_ttl(self) -> None:
        await self._locked(self.keys.ttl_lock, self._ttl_pass)

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
            await self.scripts.run(sc.fail(self.keys, now=now, job_id=job_id, token="*", error=msg, log_line=msg,
                                           message=msg, retry_delay_ms=ms, mode="ttl"))  # fmt: skip
        if unowned:  # subscribed before announcing, and through the grace and the acks' window
            await self.hear_acks(self.settings.ttl_grace_ms / 1000 + self.acks.keep_s)
        await expire_unowned(self.client, self.scripts, self.keys, unowned, self.settings.ttl_grace_ms, self.acks)


async def _deaf(seconds: float) -> None:
    """A Maintenance outside a Runtime hears acks only through what calls `acks.hear`."""


# Set-aside calls in flight (a reference keeps a task alive until it is done).
_ASIDES: set[asyncio.Future[Any]] = set()


async def warn_if_evicting(client: Any) -> str | None:
    """Warn when Redis may evict queue keys: an evicted job hash or index is a lost job.
    pykue needs maxmemory-policy noeviction (a full Redis then refuses writes, which pykue
    reports and retries). Returns the policy (None if CONFIG is not allowed)."""
    try:
        policy = (await client.config_get("maxmemory-policy")).get("maxmemory-policy")
    except (RedisError, OSError):
        return None
    if policy and policy.startswith("allkeys-"):
        log.warning("pykue: Redis maxmemory-policy is %s: a full Redis would evict queue keys and lose jobs; "
                    "set maxmemory-policy noeviction", policy)  # fmt: skip
    return str(policy) if policy else None


EVENTS_LINGER_S = 5.0  # how long a runtime stays subscribed after its last need (see OnDemand)


def has_ttl(fields: dict[str, str]) -> bool:
    """Would claim.lua have given the job a TTL score (that Kue's TTL checker announces)?
    When unsure, yes: a subscription too many costs a little, one too few a wrong failure."""
    ttl = fields.get("ttl")
    if not ttl:
        return False
    try:
        return float(ttl) > 0
    except ValueError:
        return True


class Runtime:
    """The asyncio side of a queue: its workers, housekeeping and event subscription."""

    def __init__(self, client: Any, keys: Keys, settings: Settings) -> None:
        self.client, self.keys, self.settings = client, keys, settings
        self.raw_client = raw_client(client)  # for replies that may hold bytes as stored
        self.scripts = AsyncScripts(client, self.raw_client)
        self.engines: list[WorkerEngine] = []
        self.maintenance = Maintenance(client, self.scripts, keys, settings)
        self.events = OnDemand(self._subscriber, EVENTS_LINGER_S)
        self.maintenance.hear_acks = self.events.hold_for
        self._dispatchers: list[Callable[[str], None]] = []
        self._pending: set[asyncio.Task[None]] = set()

    def _subscriber(self) -> Subscriber:
        return Subscriber(self.client, self.keys.events, self._dispatch, validate=False)

    async def start_engine(self, job_type: str, concurrency: int, run: RunFn) -> WorkerEngine:
        engine = WorkerEngine(self.client, self.scripts, self.keys, job_type, concurrency, self._heard_if_ttl(run),
                              self.settings, len(self.engines) + 1)  # fmt: skip
        if not self.engines:
            await warn_if_evicting(self.client)
            self._dispatchers += [self._answer_ttl, self.maintenance.acks.hear]  # heard while subscribed
        self.engines.append(engine)
        engine.start()
        self.maintenance.types.add(job_type)
        self.maintenance.start()
        return engine

    def _heard_if_ttl(self, run: RunFn) -> RunFn:
        """Kue's TTL checker may announce a running job with a TTL, and fails it unless its
        owner acks: such a job's handler starts only once the subscription is confirmed.
        Jobs without a TTL go straight through."""

        def start(lease: JobLease) -> Awaitable[Any]:
            if has_ttl(lease.fields):
                return self._run_heard(run, lease)
            return run(lease)

        return start

    async def _run_heard(self, run: RunFn, lease: JobLease) -> Any:
        await self._hold_events(lease)
        try:
            return await run(lease)
        finally:
            self.events.release()

    async def _hold_events(self, lease: JobLease) -> None:
        """Through dropped connections; a job taken from us meanwhile is handed back unrun."""
        pace = _Backoff("subscribing to events for a job with a TTL")
        while True:
            try:
                await self.events.hold()
                return
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                if lease.revoked.is_set():
                    raise LeaseLostError(lease.job_id) from exc
                await pace.wait(exc)

    def _answer_ttl(self, message: str) -> None:
        if '"ttl exceeded"' not in message:  # cheap filter: most messages are not for us
            return
        decoded = decode(message)
        if decoded is None or decoded[1] != "ttl exceeded":
            return
        for engine in self.engines:
            if engine.holds(decoded[0]):
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
        """Hand every `P:events` message to `dispatch`, for good (user listeners may wait
        for any event); returns once the subscription is confirmed."""
        self._dispatchers.append(dispatch)
        try:
            await self.events.forever()
        except BaseException:
            self._dispatchers.remove(dispatch)  # the caller tries again: not twice then
            raise

    async def shutdown(self, timeout: float) -> None:
        await asyncio.gather(*(e.shutdown(timeout) for e in self.engines))
        self.engines.clear()
        await self.maintenance.stop()
        await self.events.close()
        await self.raw_client.aclose()
        await self.client.aclose()
