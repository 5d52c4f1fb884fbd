"""The asyncio queue: the same features as `Queue`, every I/O call awaited."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterable, Sequence
from typing import Any, cast

import redis.asyncio

from . import _codec as codec
from ._core import STAT_NAMES, Handler, QueueCore, async_client, redis_url, stats_dict
from ._errors import JobNotFoundError, ShutdownError
from ._job import AsyncJob
from ._scripts import best_effort
from ._worker import Runtime, Settings, WorkerEngine
from .server import EmbeddedRedis


class AsyncQueue(QueueCore):
    """A Kue queue for asyncio code. Make one with `pykue.create_async_queue()`."""

    def __init__(self, redis_url_or_client: str | redis.asyncio.Redis | None = None, *, prefix: str = "q",
                 settings: Settings | None = None, embedded: bool = False) -> None:  # fmt: skip
        super().__init__(prefix, settings)
        self.server = EmbeddedRedis().start() if embedded else None
        if isinstance(redis_url_or_client, redis.asyncio.Redis):
            self.client = redis_url_or_client
        else:
            url = self.server.url if self.server else redis_url(redis_url_or_client)
            self.client = async_client(url)
        self.runtime = Runtime(self.client, self.keys, self.settings)
        self.scripts = self.runtime.scripts
        self._closed = False
        self._listening = False

    async def __aenter__(self) -> AsyncQueue:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    async def _call(self, name: str, args: list[Any]) -> Any:
        return await self.scripts.call(name, self.keys.jobs, [self.keys.prefix, *args])

    def _listen_to(self, job: AsyncJob) -> None:
        """Registers the job; call `await queue.listen()` first so no event is missed."""
        if job.id is not None:
            self.registry.add(job.id, job)

    async def listen(self) -> None:
        """Subscribe to the events channel (done for you by save() of a job with listeners)."""
        if self._closed:
            raise ShutdownError("the queue was shut down")
        if not self._listening:
            self._listening = True
            await self.runtime.subscribe(lambda m: self.registry.dispatch(m, self))

    def create(self, job_type: str, data: Any = None, **options: Any) -> AsyncJob:
        return AsyncJob(self, job_type, data).apply(**options)

    async def _save(self, jobs: Sequence[AsyncJob], chunk: int = 500) -> None:
        if self.test_mode.record(list(jobs)):
            return
        now = codec.now_ms()
        calls = [self._enqueue_args(jobs[i : i + chunk], now) for i in range(0, len(jobs), chunk)]
        if any(job.has_listeners() for job in jobs) or self.has_listeners():
            await self.listen()
        for i, (args, fields) in enumerate(calls):
            ids = await self.scripts.call("enqueue", self.keys.jobs, args)
            self._after_save(jobs[i * chunk : (i + 1) * chunk], ids, fields)
        for job in jobs:
            if job.has_listeners():
                self._listen_to(job)

    async def save_many(self, jobs: Iterable[AsyncJob]) -> list[AsyncJob]:
        batch = list(jobs)
        await self._save(batch)
        return batch

    async def _progress(self, job: AsyncJob, pct: int, data: Any) -> None:
        data_json = codec.js_dumps(data, "progress data") if data is not None else ""
        with best_effort("progress", job.id):
            await self._call("progress", [codec.now_ms(), job.id, pct, data_json])

    async def _log(self, job: AsyncJob, line: str) -> None:
        with best_effort("log", job.id):
            async with self.client.pipeline() as p:
                p.rpush(self.keys.log(job.id or 0), line)
                p.hset(self.keys.job(job.id or 0), "updated_at", codec.now_ms())
                await p.execute()

    async def _hgetall(self, job_id: int | str) -> dict[str, str]:
        return cast(dict[str, str], await self.client.hgetall(self.keys.job(job_id)))

    async def get_job(self, job_id: int | str) -> AsyncJob:
        fields = await self._hgetall(job_id)
        if not fields or "type" not in fields:
            raise JobNotFoundError(job_id)
        return self._loaded(AsyncJob, job_id, fields)  # type: ignore[no-any-return]

    async def job_logs(self, job_id: int | str, start: int = 0, stop: int = -1) -> list[str]:
        return cast(list[str], await self.client.lrange(self.keys.log(job_id), start, stop))

    async def card(self, state: str | None = None, job_type: str | None = None) -> int:
        return int(await self.client.zcard(self._range_args(state, job_type)))

    async def stats(self) -> dict[str, int | None]:
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
        members = await self.client.zrange(self._range_args(state, job_type), start, stop)
        return self._ids(cast(list[str], members), order)

    async def jobs(self, state: str | None = None, job_type: str | None = None,
                   start: int = 0, stop: int = -1, order: str = "asc") -> list[AsyncJob]:  # fmt: skip
        ids = await self.job_ids(state, job_type, start, stop, order)
        async with self.client.pipeline(transaction=False) as p:
            for job_id in ids:
                p.hgetall(self.keys.job(job_id))
            hashes = await p.execute()
        return self._loaded_many(AsyncJob, ids, hashes)

    async def process(self, job_type: str, concurrency: int | Handler, handler: Handler | None = None) -> WorkerEngine:
        """Start a worker in this event loop. Async handlers run in the loop; plain
        functions run in a thread pool of `concurrency` threads."""
        if self._closed:
            raise ShutdownError("the queue was shut down")
        n, run = self._runner(AsyncJob, job_type, concurrency, handler)
        return await self.runtime.start_engine(job_type, n, run)

    async def run_forever(self, timeout: float | None = None) -> None:
        """Wait for SIGINT or SIGTERM, then shut down gracefully (the asyncio worker runner)."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            await self.shutdown(timeout)

    async def shutdown(self, timeout: float | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        await self.runtime.shutdown(self.settings.shutdown_timeout if timeout is None else timeout)
        for ex in self._executors:
            ex.shutdown(wait=False, cancel_futures=True)
        if self.server is not None:
            self.server.close()


def create_async_queue(redis: str | Any = None, *, prefix: str = "q", settings: Settings | None = None,
                       embedded: bool = False) -> AsyncQueue:  # fmt: skip
    """The asyncio twin of create_queue()."""
    return AsyncQueue(redis, prefix=prefix, settings=settings, embedded=embedded)
