"""The pure half of a queue, shared by both twins: settings, keys, job listeners, argument
building, handler adaptation. No I/O here (the twins' operations are in _api_async.py)."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, TypeVar

from . import _codec as codec
from ._codec import Failure
from ._errors import NoQueueError
from ._events import Emitter
from ._job import BaseJob, BoundJob, data_of, parse_fields
from ._keys import Keys, State, check_state, hash_tag
from ._listeners import JobListeners
from ._pause import WorkerContext
from ._testmode import TestMode
from ._worker import JobLease, RunFn, Settings, guarded
from .connection import DEFAULT_URL, ConnectionSettings, async_client, redis_url

Handler = Callable[..., Any]
Q = TypeVar("Q", bound="QueueCore")
J = TypeVar("J", bound=BoundJob)
_last_created: dict[type[QueueCore], QueueCore] = {}  # for Kue's Job.get without a queue

# Old homes of names the front (apps, web, cli) used; they live in pykue.connection now.
__all__ = ["DEFAULT_URL", "QueueCore", "async_client", "default_queue", "redis_url"]


def remember(kind: type[QueueCore], queue: QueueCore) -> None:
    _last_created[kind] = queue


def default_queue(kind: type[Q]) -> Q:
    """The last queue of this kind created in the process (Kue's Job.get uses it)."""
    queue = _last_created.get(kind)
    if not isinstance(queue, kind):
        raise NoQueueError(f"no {kind.__name__} has been created yet: create a queue first or pass one")
    return queue


class QueueCore(Emitter):
    def __init__(self, prefix: str, settings: Settings | None, cluster: bool = False) -> None:
        super().__init__()
        if not isinstance(prefix, str) or not prefix or any(c in prefix for c in " \n\r\t"):
            raise ValueError(f"prefix must be a non-empty string without spaces; got {prefix!r}")
        if cluster and hash_tag(prefix) is None:
            raise ValueError(f"on a Redis Cluster the prefix must carry a hash tag, such as {{{prefix}}}, so that "
                             f"all of the queue's keys share a slot; got {prefix!r}")  # fmt: skip
        self.keys = Keys(prefix, cluster)
        self.settings = settings or Settings()
        self.test_mode = TestMode()
        self.listeners = JobListeners(self)
        self.connection = ConnectionSettings()
        self._executors: list[ThreadPoolExecutor] = []

    @property
    def url(self) -> str:
        """Where this queue's Redis is (no password), for messages."""
        return self.connection.url

    # Where job listeners are called. Both twins run these on the thread that dispatches
    # events (the sync twin sends them to its dispatch thread), so they keep event order.
    def _expect(self) -> None:
        self.listeners.expect()

    def _settle(self, jobs: Sequence[tuple[int, Emitter]]) -> None:
        self.listeners.settle(jobs)

    def _listen_to(self, job: BaseJob) -> None:
        """A saved job got a listener: subscribe if needed and register it."""
        raise NotImplementedError

    def _unlisten(self, job: BaseJob) -> None:
        """A job whose last listener went (job.wait) leaves the registry of listening jobs."""
        if job.id is not None and not job.has_listeners() and self.listeners.jobs.get(job.id) is job:
            del self.listeners.jobs[job.id]

    @staticmethod
    def _after_save(jobs: Sequence[BaseJob], ids: Sequence[Any], all_fields: list[list[str]]) -> None:
        for job, raw, fields in zip(jobs, ids, all_fields, strict=True):
            job.id = int(raw)
            job.fields = dict(zip(fields[::2], fields[1::2], strict=True))

    def _range_args(self, state: str | None, job_type: str | None) -> str:
        if state is None:
            return self.keys.jobs
        return self.keys.state(check_state(state), job_type)

    def _loaded(self, cls: type[J], job_id: int | str, fields: dict[str, str]) -> J:
        """A job read from Redis; corrupt `data` JSON is shown as stored rather than raised."""
        job = cls(self, fields["type"], job_id=int(job_id), fields=fields)
        try:
            job.data = codec.loads_field(fields, "data")
        except ValueError:
            job.data = fields.get("data")
        return job

    def _loaded_many(self, cls: type[J], ids: Sequence[int], hashes: Sequence[Any]) -> list[J]:
        loaded = ((i, parse_fields(h)) for i, h in zip(ids, hashes, strict=True))
        return [self._loaded(cls, i, fields) for i, fields in loaded if fields.get("type")]

    @staticmethod
    def _ids(members: Sequence[str], order: str) -> list[int]:
        """Kue sorts a rank range by id, and `desc` reverses it; a member that is not a job's
        (hand-written, corrupt) is skipped rather than failing the whole listing."""
        ids = sorted(i for i in map(codec.id_of_member, members) if i is not None)
        return ids[::-1] if order == "desc" else ids

    def _runner(self, job_cls: Any, job_type: str, concurrency: int | Handler,
                handler: Handler | None) -> tuple[int, RunFn, WorkerContext]:  # fmt: skip
        """What both process() need: the checked arguments, the engine's run function,
        which builds a `job_cls` for each claimed job and runs the handler on it, and the
        Kue `ctx` that 3-argument handlers get (bound once the engine has started)."""
        n, fn = self._handler_args(concurrency, handler)
        codec.check_type(job_type)
        executor = ThreadPoolExecutor(max_workers=n, thread_name_prefix=f"pykue-{job_type}")
        self._executors.append(executor)
        ctx = WorkerContext(job_type)
        call = invoker(fn, executor, ctx)

        def run(lease: JobLease) -> Awaitable[Any]:
            fields = lease.fields
            job = job_cls(self, fields.get("type") or job_type, job_id=lease.job_id, fields=fields)
            job.token, job.lease = lease.token, lease
            return call(job)

        return n, run, ctx

    def _handler_args(self, concurrency: int | Handler, handler: Handler | None) -> tuple[int, Handler]:
        if handler is None and callable(concurrency):
            return 1, concurrency
        if handler is None or not isinstance(concurrency, int) or isinstance(concurrency, bool):
            raise TypeError("use process(type, handler) or process(type, concurrency, handler)")
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1; got {concurrency}")
        return concurrency, handler


def positional_count(handler: Handler) -> int:
    """Kue's `(job, done)` handlers take two positional parameters, `(job, ctx, done)` three;
    plain ones take one."""
    try:
        params = [p for p in inspect.signature(handler).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]  # fmt: skip
    except (TypeError, ValueError):
        return 1
    return len(params)


def kue_style(handler: Handler) -> bool:
    return positional_count(handler) >= 2


def make_done(fut: asyncio.Future[Any], loop: asyncio.AbstractEventLoop) -> Callable[..., None]:
    """Kue's done(err, result): thread-safe, and a second call changes nothing."""

    def settle(err: Any, result: Any) -> None:
        if fut.done():
            return
        if err is None or err is False:
            fut.set_result(result)
        else:
            fut.set_exception(err if isinstance(err, BaseException) else Failure(str(err)))

    def done(err: Any = None, result: Any = None) -> None:
        loop.call_soon_threadsafe(settle, err, result)

    return done


def invoker(handler: Handler, executor: Executor | None, ctx: Any = None) -> Callable[[BaseJob], Awaitable[Any]]:
    """How to run a handler of any style (coroutine or plain function, Kue's (job, done)
    or (job, ctx, done) or not), decided once rather than per job."""
    is_coro = inspect.iscoroutinefunction(handler)
    lead: tuple[Any, ...] = (ctx,) if positional_count(handler) >= 3 else ()
    kue = kue_style(handler)
    if is_coro and not kue:
        return _plain_coroutine(handler)
    handler = guarded(handler, is_coro)

    if kue:

        async def with_done(job: BaseJob) -> Any:
            job.data = data_of(job.fields)
            loop = asyncio.get_running_loop()
            fut: asyncio.Future[Any] = loop.create_future()
            done = make_done(fut, loop)
            if is_coro:
                await handler(job, *lead, done)
            else:
                await loop.run_in_executor(executor, functools.partial(handler, job, *lead), done)
            return await fut

        return with_done

    async def plain(job: BaseJob) -> Any:
        job.data = data_of(job.fields)
        return await asyncio.get_running_loop().run_in_executor(executor, handler, job)

    return plain


def _plain_coroutine(handler: Handler) -> Callable[[BaseJob], Awaitable[Any]]:
    """The common handler, `async def handler(job)`, in one coroutine per job (the general
    path nests three): data decoded (corrupt JSON fails the job before the handler), and
    the lease checked as late as possible, as `guarded` does."""

    async def run(job: BaseJob) -> Any:
        job.data = data_of(job.fields)
        lease = job.lease
        if lease is not None and not lease.ready():
            await lease.aenter()
        return await handler(job)

    return run


STAT_NAMES = (State.INACTIVE, State.COMPLETE, State.ACTIVE, State.FAILED, State.DELAYED)  # Kue's /stats order


def stats_dict(counts: Sequence[Any], work_time: Any) -> dict[str, int | None]:
    """Kue's GET /stats body (workTime is null until a job has completed, as in Kue)."""
    out: dict[str, int | None] = {f"{name}Count": int(c or 0) for name, c in zip(STAT_NAMES, counts, strict=True)}
    out["workTime"] = None if work_time is None else int(work_time)
    return out
