"""The sync queue: producer calls on a plain redis-py client; workers and event
listeners run on a private asyncio loop in a daemon thread (handlers in threads)."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any, TypeVar, cast

import redis
import redis.asyncio

from . import _codec as codec
from ._core import STAT_NAMES, Handler, QueueCore, async_client, redis_url, stats_dict
from ._errors import JobNotFoundError, ShutdownError
from ._job import Job
from ._scripts import Scripts, best_effort
from ._worker import Runtime, Settings, WorkerEngine
from .server import EmbeddedRedis

T = TypeVar("T")
_default: Queue | None = None


def default_queue() -> Queue:
    if _default is None:
        raise ShutdownError("no queue has been created yet: call pykue.create_queue() first")
    return _default


class _LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="pykue-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.thread.is_alive():
            self.loop.close()


class Queue(QueueCore):
    """A Kue queue, sync flavour. Make one with `pykue.create_queue()`."""

    def __init__(self, redis_url_or_client: str | redis.Redis | None = None, *, prefix: str = "q",
                 settings: Settings | None = None, embedded: bool = False) -> None:  # fmt: skip
        global _default
        super().__init__(prefix, settings)
        self.server = EmbeddedRedis().start() if embedded else None
        if isinstance(redis_url_or_client, redis.Redis):
            self.client = redis_url_or_client
            kw = self.client.connection_pool.connection_kwargs
            self.url = f"redis://{kw.get('host', '127.0.0.1')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"
            if kw.get("path"):
                self.url = f"unix://{kw['path']}?db={kw.get('db', 0)}"
        else:
            self.url = self.server.url if self.server else redis_url(redis_url_or_client)
            self.client = redis.Redis.from_url(self.url, decode_responses=True)
        self.scripts = Scripts(self.client)
        self._bg: _LoopThread | None = None
        self._runtime: Runtime | None = None
        self._closed = False
        self._listening = False
        _default = self

    def __enter__(self) -> Queue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # -- plumbing ---------------------------------------------------------------
    def _call(self, name: str, args: list[Any]) -> Any:
        return self.scripts.call(name, self.keys.jobs, [self.keys.prefix, *args])

    def _background(self) -> Runtime:
        if self._closed:
            raise ShutdownError("the queue was shut down")
        if self._runtime is None:
            self._bg = _LoopThread()
            client = async_client(self.url)
            self._runtime = Runtime(client, self.keys, self.settings)
        return self._runtime

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = 30) -> T:
        assert self._bg is not None
        return self._bg.run(coro, timeout)

    def _listen_to(self, job: Job) -> None:
        if self.test_mode.active and not self.test_mode.process:
            return
        self._ensure_listening()
        if job.id is not None:
            self.registry.add(job.id, job)

    def _ensure_listening(self) -> None:
        """Subscribe this queue's listeners to the events channel, once."""
        if not self._listening:
            self._listening = True
            self._run(self._background().subscribe(lambda m: self.registry.dispatch(m, self)))

    def on(self, event: str, listener: Any) -> Queue:
        """Queue-level events: "job complete", "job failed", ... (id first), as in Kue."""
        super().on(event, listener)
        if event.startswith("job "):
            self._ensure_listening()
        return self

    # -- producing --------------------------------------------------------------
    def create(self, job_type: str, data: Any = None, **options: Any) -> Job:
        """Kue's queue.create(type, data): a Job to configure and save()."""
        return Job(self, job_type, data).apply(**options)

    def _save(self, jobs: Sequence[Job], chunk: int = 500) -> None:
        if self.test_mode.record(list(jobs)):
            return
        now = codec.now_ms()
        calls = [self._enqueue_args(jobs[i : i + chunk], now) for i in range(0, len(jobs), chunk)]
        for i, (args, fields) in enumerate(calls):
            ids = self.scripts.call("enqueue", self.keys.jobs, args)
            self._after_save(jobs[i * chunk : (i + 1) * chunk], ids, fields)
        for job in jobs:
            if job.has_listeners():
                self._listen_to(job)

    def save_many(self, jobs: Iterable[Job]) -> list[Job]:
        """Save many new jobs, one Lua call per 500; all are validated before any is written."""
        batch = list(jobs)
        self._save(batch)
        return batch

    def _progress(self, job: Job, pct: int, data: Any) -> None:
        data_json = codec.js_dumps(data, "progress data") if data is not None else ""
        with best_effort("progress", job.id):
            self._call("progress", [codec.now_ms(), job.id, pct, data_json])

    def _log(self, job: Job, line: str) -> None:
        with best_effort("log", job.id), self.client.pipeline() as p:
            p.rpush(self.keys.log(job.id or 0), line)
            p.hset(self.keys.job(job.id or 0), "updated_at", codec.now_ms())
            p.execute()

    def _hgetall(self, job_id: int | str) -> dict[str, str]:
        return cast(dict[str, str], self.client.hgetall(self.keys.job(job_id)))

    # -- reading ------------------------------------------------------------------
    def get_job(self, job_id: int | str) -> Job:
        fields = self._hgetall(job_id)
        if not fields or "type" not in fields:
            raise JobNotFoundError(job_id)
        return self._loaded(Job, job_id, fields)  # type: ignore[no-any-return]

    def job_logs(self, job_id: int | str, start: int = 0, stop: int = -1) -> list[str]:
        return cast(list[str], self.client.lrange(self.keys.log(job_id), start, stop))

    def card(self, state: str | None = None, job_type: str | None = None) -> int:
        """How many jobs are in a state (of a type); all jobs when state is None."""
        return int(self.client.zcard(self._range_args(state, job_type)))

    def inactive_count(self, job_type: str | None = None) -> int:
        return self.card("inactive", job_type)

    def active_count(self, job_type: str | None = None) -> int:
        return self.card("active", job_type)

    def complete_count(self, job_type: str | None = None) -> int:
        return self.card("complete", job_type)

    def failed_count(self, job_type: str | None = None) -> int:
        return self.card("failed", job_type)

    def delayed_count(self, job_type: str | None = None) -> int:
        return self.card("delayed", job_type)

    def stats(self) -> dict[str, int | None]:
        with self.client.pipeline(transaction=False) as p:
            for name in STAT_NAMES:
                p.zcard(self.keys.state(name))
            p.get(self.keys.work_time)
            *counts, work = p.execute()
        return stats_dict(counts, work)

    def types(self) -> list[str]:
        return sorted(cast(set[str], self.client.smembers(self.keys.types)))

    def job_ids(self, state: str | None = None, job_type: str | None = None,
                start: int = 0, stop: int = -1, order: str = "asc") -> list[int]:  # fmt: skip
        """Ids by rank range in a state's set (inclusive), sorted by id like Kue."""
        members = self.client.zrange(self._range_args(state, job_type), start, stop)
        return self._ids(cast(list[str], members), order)

    def jobs(self, state: str | None = None, job_type: str | None = None,
             start: int = 0, stop: int = -1, order: str = "asc") -> list[Job]:  # fmt: skip
        ids = self.job_ids(state, job_type, start, stop, order)
        with self.client.pipeline(transaction=False) as p:
            for job_id in ids:
                p.hgetall(self.keys.job(job_id))
            hashes = p.execute()
        return self._loaded_many(Job, ids, hashes)

    # -- processing ---------------------------------------------------------------
    def process(self, job_type: str, concurrency: int | Handler, handler: Handler | None = None) -> WorkerEngine:
        """Kue's queue.process(type, [n], fn): run `fn` on jobs of `type`, n at a time.

        `fn(job)` returns the result or raises; Kue's `fn(job, done)` calls done(err, result).
        Returns at once; jobs run in background threads until shutdown().
        """
        n, run = self._runner(Job, job_type, concurrency, handler)
        return self._run(self._background().start_engine(job_type, n, run))

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
            self._bg.stop()
        for ex in self._executors:
            ex.shutdown(wait=False, cancel_futures=True)
        self.client.close()
        if self.server is not None:
            self.server.close()


def create_queue(redis: str | Any = None, *, prefix: str = "q", settings: Settings | None = None,
                 embedded: bool = False) -> Queue:  # fmt: skip
    """Kue's kue.createQueue(): a queue on `redis` (URL or client; default $REDIS_URL or
    redis://127.0.0.1:6379/0), or on a private embedded server with embedded=True."""
    return Queue(redis, prefix=prefix, settings=settings, embedded=embedded)
