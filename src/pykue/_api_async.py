"""Every producer and reader operation of a queue and of its jobs, written once.

This asyncio module is the source: `python scripts/unasync.py` writes the sync twin,
`_api_sync.py` (`Job`, `QueueBase`), by dropping `async`/`await` and renaming, and a test
fails when that file is not current. The queues themselves (`AsyncQueue`, `Queue`) add
only what really differs: how they connect, subscribe, run workers and shut down.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from functools import cached_property
from typing import Any, Self, cast

import redis.asyncio
from redis.exceptions import ResponseError

from . import _codec as codec
from . import _features as features
from . import _scripts as sc
from ._core import STAT_NAMES, QueueCore, default_queue, remember, stats_dict
from ._errors import InvalidJobError, JobNotFoundError, RedisOutOfMemoryError
from ._job import BaseJob, BoundJob, log_line
from ._keys import TERMINAL_STATES, Keys, State, check_state
from ._pause import paused_key
from ._retry import after_retry, retry_outcome
from ._schedule import Schedule, loaded_schedule, make_schedule, next_key, schedules_key
from ._scripts import AsyncScripts, best_effort
from ._wait import AsyncWaiter, outcome_of, settle

SAVE_CHUNK = 500  # jobs per enqueue script call
CLEAN_SCAN = 500  # jobs clean.lua looks at per call: each call is short, however big the state


def enqueue_args(keys: Keys, jobs: Sequence[BaseJob], now: int) -> tuple[sc.Call[list[Any]], list[list[str]]]:
    """One enqueue call, and each job's hash fields; every job is validated (and encoded,
    once) before anything is sent."""
    all_fields = [job._new_fields(now) for job in jobs]
    specs = [(job.type, "delayed" if job.opts.delay > 0 else "inactive", job.opts.priority, now + job.opts.delay,
              fields) for job, fields in zip(jobs, all_fields, strict=True)]  # fmt: skip
    return sc.enqueue(keys, now=now, jobs=specs), all_fields


class AsyncJob(BoundJob):
    """A job bound to its queue: Kue's job methods that read or write Redis."""

    queue: AsyncQueueBase

    async def save(self) -> Self:
        """Create the job (one Lua call); updates of saved jobs use the methods below."""
        if self.id is not None:
            raise InvalidJobError(f"job {self.id} is already saved")
        await self.queue._save([self])
        return self

    async def progress(self, completed: float, total: float, data: Any = None) -> Self:
        await self.queue._progress(self, codec.pct(completed, total), data)
        return self

    async def log(self, fmt: Any, *args: Any) -> Self:
        await self.queue._log(self, log_line(fmt, args))
        return self

    async def remove(self) -> bool:
        call = sc.remove(self.queue.keys, job_id=self.id or 0, now=codec.now_ms())
        return await self.queue.scripts.run(call) is sc.Outcome.DONE

    async def set_state(self, state: str) -> Self:
        checked = check_state(state)
        call = sc.set_state(self.queue.keys, now=codec.now_ms(), job_id=self.id or 0, state=checked.value)
        if await self.queue.scripts.run(call) is not sc.Outcome.DONE:
            raise JobNotFoundError(self.id or 0)
        self.fields["state"] = checked.value
        return self

    # Kue's state shortcuts
    async def inactive(self) -> Self:
        return await self.set_state(State.INACTIVE)

    async def active(self) -> Self:
        return await self.set_state(State.ACTIVE)

    async def complete(self) -> Self:
        return await self.set_state(State.COMPLETE)

    async def failed(self) -> Self:
        return await self.set_state(State.FAILED)

    async def delayed(self) -> Self:
        return await self.set_state(State.DELAYED)

    async def retry(self, force: bool = False) -> Self:
        """The queue's retry() of this job: a failed job runs again, its attempts reset."""
        await self.queue.retry(self.id or 0, force)
        after_retry(self.fields)
        return self

    async def set_priority(self, level: int | str) -> Self:
        self.priority(level)
        call = sc.set_priority(self.queue.keys, now=codec.now_ms(), job_id=self.id or 0, priority=self.opts.priority)
        await self.queue.scripts.run(call)
        return self

    async def refresh(self) -> Self:
        fields = await self.queue._hgetall(self.id or 0)
        if not fields:
            raise JobNotFoundError(self.id or 0)
        self._load(fields)
        return self

    async def logs(self) -> list[str]:
        return await self.queue.job_logs(self.id or 0)

    async def wait(self, timeout: float | None = None) -> Any:
        """The job's result once it completes (at once if it already has); JobFailedError if it
        fails for good, WaitTimeoutError after `timeout` s, JobNotFoundError if removed.

        The waiter listens, and the subscription is confirmed, before the hash is read: an
        outcome written between the two is heard, so no wake-up is lost."""
        if self.id is None:
            raise InvalidJobError("save the job before waiting for it")
        waiter = AsyncWaiter()
        listeners = waiter.listeners()
        for event, fn in listeners.items():
            self.on(event, fn)
        try:
            await self.queue.listen()
            outcome = outcome_of(await self.queue._hgetall(self.id))
            if outcome is None:
                outcome = await waiter.wait(timeout)
        finally:
            for event, fn in listeners.items():
                self.off(event, fn)
            self.queue._unlisten(self)
        return settle(self.id, outcome, timeout)

    @classmethod
    async def get(cls, job_id: int | str, queue: AsyncQueueBase | None = None) -> AsyncJob:
        """Kue's Job.get: load a job by id (from the last queue created if none is given)."""
        return await (queue or default_queue(AsyncQueueBase)).get_job(job_id)


class AsyncQueueBase(QueueCore):
    """The queue operations that only read or write Redis (producers, readers, counts)."""

    client: redis.asyncio.Redis
    scripts: AsyncScripts

    def _remember(self) -> None:
        """The twin's constructor calls this last: a queue that failed to build is never the default."""
        remember(AsyncQueueBase, self)

    async def listen(self) -> None:
        """Subscribe to the events channel; returns once the subscription is confirmed."""
        raise NotImplementedError

    # -- producing --------------------------------------------------------------
    def create(self, job_type: str, data: Any = None, **options: Any) -> AsyncJob:
        """Kue's queue.create(type, data): a job to configure and save()."""
        return AsyncJob(self, job_type, data).apply(**options)

    async def save_many(self, jobs: Iterable[AsyncJob]) -> list[AsyncJob]:
        """Save many new jobs, one Lua call per 500; all are validated before any is written."""
        batch = list(jobs)
        await self._save(batch)
        return batch

    async def _save(self, jobs: Sequence[AsyncJob]) -> None:
        if self.test_mode.record(list(jobs)):
            return
        now = codec.now_ms()
        calls = [enqueue_args(self.keys, jobs[i : i + SAVE_CHUNK], now) for i in range(0, len(jobs), SAVE_CHUNK)]
        listening = any(job.has_listeners() for job in jobs)
        if listening or self.has_listeners():
            await self.listen()  # confirmed before the script publishes `enqueue`
        for i, (call, fields) in enumerate(calls):
            chunk = jobs[i * SAVE_CHUNK : (i + 1) * SAVE_CHUNK]
            await self._enqueue(chunk, call, fields, listening)

    async def _enqueue(self, jobs: Sequence[AsyncJob], call: sc.Call[list[Any]], fields: list[list[str]],
                       listening: bool) -> None:  # fmt: skip
        if listening:
            self._expect()
        ids: list[Any] = []
        try:
            ids, held = features.saved_ids(await self._run_enqueue(call))
            self._after_save(jobs, ids, fields)
            for job, dup in zip(jobs, held, strict=True):
                job.deduplicated = dup  # then it is the unfinished job holding its unique key
                if dup or job._after:  # a dependent's state is decided by enqueue.lua
                    await job.refresh()
        finally:
            if listening:
                self._settle([(job.id, job) for job in jobs if job.id is not None and job.has_listeners()])

    async def _run_enqueue(self, call: sc.Call[list[Any]]) -> list[Any]:
        """enqueue.lua, with its refusals as pykue's named errors (a full Redis stays
        RedisOutOfMemoryError). Sent on the queue's lane (_scripts.Lane)."""
        try:
            return await self.scripts.run(call, lane=self._lane)
        except RedisOutOfMemoryError:
            raise
        except ResponseError as exc:
            raise features.enqueue_error(exc) from None

    @cached_property
    def _lane(self) -> sc.Lane:
        """The connection this queue's saves keep (see _scripts.Lane); made on first use."""
        return sc.Lane()

    async def retry(self, job_id: int | str, force: bool = False) -> None:
        """Run a failed job again with its attempts reset (BullMQ's job.retry()); any other
        state raises JobStateError unless `force`. Forcing a running job revokes that run's
        owner token in the same call: its outcome is refused."""
        call = sc.retry(self.keys, now=codec.now_ms(), job_id=job_id, force=force)
        retry_outcome(job_id, await self.scripts.run(call))

    async def limit(self, job_type: str, max: int | None, per_ms: int = 1000) -> None:
        """At most `max` jobs of the type start per `per_ms` window across every pykue worker
        (None clears it); jobs over the limit stay inactive until the window reopens."""
        codec.check_type(job_type)
        spec = features.limit_spec(max, per_ms)
        async with self.client.pipeline(transaction=True) as p:
            if spec is None:
                p.hdel(self.keys.limits, job_type)
                p.delete(self.keys.limit_window(job_type))
            else:
                p.hset(self.keys.limits, job_type, spec)
            await p.execute()

    async def limits(self) -> dict[str, tuple[int, int]]:
        """The rate limits set: {type: (max, per_ms)}."""
        return features.parse_limits(await self.client.hgetall(self.keys.limits))

    async def _progress(self, job: AsyncJob, pct: int, data: Any) -> None:
        data_json = codec.js_dumps(data, "progress data") if data is not None else ""
        with best_effort("progress", job.id):
            call = sc.progress(self.keys, now=codec.now_ms(), job_id=job.id or 0, percent=pct, data_json=data_json)
            await self.scripts.run(call)

    async def _log(self, job: AsyncJob, line: str) -> None:
        with best_effort("log", job.id):  # a pipeline is reset by execute(): no context needed
            p = self.client.pipeline()
            p.rpush(self.keys.log(job.id or 0), line)
            p.hset(self.keys.job(job.id or 0), "updated_at", codec.now_ms())
            await p.execute()

    async def _hgetall(self, job_id: int | str) -> dict[str, str]:
        raw = await cast(Any, self.client).execute_command("HGETALL", self.keys.job(job_id), **codec.UNDECODED)
        return codec.decode_hash(raw)

    # -- reading ------------------------------------------------------------------
    async def get_job(self, job_id: int | str) -> AsyncJob:
        fields = await self._hgetall(job_id)
        if not fields or "type" not in fields:
            raise JobNotFoundError(job_id)
        return self._loaded(AsyncJob, job_id, fields)

    async def job_logs(self, job_id: int | str, start: int = 0, stop: int = -1) -> list[str]:
        key = self.keys.log(job_id)
        raw = await cast(Any, self.client).execute_command("LRANGE", key, start, stop, **codec.UNDECODED)
        return [codec.text(line) for line in raw]

    async def card(self, state: str | None = None, job_type: str | None = None) -> int:
        """How many jobs are in a state (of a type); all jobs when state is None."""
        return int(await self.client.zcard(self._range_args(state, job_type)))

    async def inactive_count(self, job_type: str | None = None) -> int:
        return await self.card(State.INACTIVE, job_type)

    async def active_count(self, job_type: str | None = None) -> int:
        return await self.card(State.ACTIVE, job_type)

    async def complete_count(self, job_type: str | None = None) -> int:
        return await self.card(State.COMPLETE, job_type)

    async def failed_count(self, job_type: str | None = None) -> int:
        return await self.card(State.FAILED, job_type)

    async def delayed_count(self, job_type: str | None = None) -> int:
        return await self.card(State.DELAYED, job_type)

    async def stats(self) -> dict[str, int | None]:
        """Kue's GET /stats: the count of each state and the total work time."""
        async with self.client.pipeline(transaction=False) as p:
            for name in STAT_NAMES:
                p.zcard(self.keys.state(name))
            p.get(self.keys.work_time)
            *counts, work = await p.execute()
        return stats_dict(counts, work)

    async def types(self) -> list[str]:
        return sorted(cast(set[str], await self.client.smembers(self.keys.types)))

    async def job_ids(self, state: str | None = None, job_type: str | None = None,
                      start: int = 0, stop: int = -1, order: str = "asc") -> list[int]:  # fmt: skip
        """Ids by rank range in a state's set (inclusive), sorted by id like Kue."""
        members = await self.client.zrange(self._range_args(state, job_type), start, stop)
        return self._ids(cast(list[str], members), order)

    async def jobs(self, state: str | None = None, job_type: str | None = None,
                   start: int = 0, stop: int = -1, order: str = "asc") -> list[AsyncJob]:  # fmt: skip
        ids = await self.job_ids(state, job_type, start, stop, order)
        async with self.client.pipeline(transaction=False) as p:
            for job_id in ids:
                cast(Any, p).execute_command("HGETALL", self.keys.job(job_id), **codec.UNDECODED)
            hashes = await p.execute()
        return self._loaded_many(AsyncJob, ids, hashes)

    # -- repeatable and cron jobs (see _schedule.py) -------------------------------
    async def repeat(self, job_type: str, data: Any = None, *, cron: str | None = None, every_ms: int | None = None,
                     key: str | None = None, tz: str | None = None, **options: Any) -> Schedule:  # fmt: skip
        """Enqueue a `job_type` job at every tick of `cron` (in `tz`, default UTC) or every
        `every_ms`, fired by whichever worker process sees it first, exactly once per tick.
        Saving the same key again replaces the schedule; an unchanged one keeps its next run."""
        sched = make_schedule(job_type, data, cron, every_ms, key, tz, options)
        spec = sched.to_json()
        nxt = sched.next_after(codec.now_ms())
        unchanged = await self.client.hget(schedules_key(self.keys), sched.key) == spec
        async with self.client.pipeline(transaction=True) as p:
            p.hset(schedules_key(self.keys), sched.key, spec)
            p.zadd(next_key(self.keys), {sched.key: nxt}, nx=unchanged)
            p.zscore(next_key(self.keys), sched.key)
            *_, score = await p.execute()
        return replace(sched, next_run_ms=int(score))

    async def schedules(self) -> list[Schedule]:
        """Every schedule, soonest next run first."""
        async with self.client.pipeline(transaction=True) as p:
            p.hgetall(schedules_key(self.keys))
            p.zrange(next_key(self.keys), 0, -1, withscores=True)
            specs, nexts = await p.execute()
        return [s for skey, score in nexts if (s := loaded_schedule(skey, specs.get(skey), int(score)))]

    async def unrepeat(self, key: str) -> bool:
        """Remove a schedule (jobs it already enqueued stay); False if there was none."""
        async with self.client.pipeline(transaction=True) as p:
            p.hdel(schedules_key(self.keys), key)
            p.zrem(next_key(self.keys), key)
            removed, _ = await p.execute()
        return bool(removed)

    # -- pausing a job type fleet-wide (see _pause.py) -------------------------------
    async def pause(self, job_type: str) -> None:
        """Every pykue worker stops claiming `job_type` (running jobs finish); Node Kue ones do not."""
        await self.client.sadd(paused_key(self.keys), codec.check_type(job_type))

    async def resume(self, job_type: str) -> None:
        """Workers take `job_type` again within their block_timeout."""
        await self.client.srem(paused_key(self.keys), codec.check_type(job_type))

    async def paused(self) -> list[str]:
        return sorted(cast(set[str], await self.client.smembers(paused_key(self.keys))))

    # -- cleaning -------------------------------------------------------------------
    async def clean(self, state: str, older_than_ms: int, limit: int = 1000) -> list[int]:
        """Remove up to `limit` jobs in a finished state (complete or failed) last updated more
        than `older_than_ms` ago; the ids removed. Each Lua call looks at a few hundred jobs
        only, so Redis is never blocked for long."""
        checked = check_state(state)
        if checked not in TERMINAL_STATES:
            raise InvalidJobError(f"clean removes finished jobs: state must be complete or failed; got {state!r}")
        for name, value, low in (("older_than_ms", older_than_ms, 0), ("limit", limit, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InvalidJobError(f"{name} must be an int >= {low}; got {value!r}")
        cutoff = codec.now_ms() - older_than_ms
        removed: list[int] = []
        start = 0
        while start >= 0 and len(removed) < limit:
            call = sc.clean(self.keys, state=checked.value, cutoff=cutoff, start=start, scan=CLEAN_SCAN,
                            limit=limit - len(removed))  # fmt: skip
            out = await self.scripts.run(call)
            start = out.next_start
            removed += out.removed
        return removed
