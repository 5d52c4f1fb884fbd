"""One test body for both twins (SAQ runs one suite over every backend).

The `twin` fixture is "sync" or "async". `twin.queue(...)` gives a `pykue.Queue`, or an
`AsyncQueue` behind a facade that makes each call in a private event loop (in its own
thread), awaits what it returns and hands back the result, so a body written once, in blocking style,
drives the asyncio twin through its real coroutines. Handlers given to `process` get the
job behind the same facade; listeners are called as the twin calls them.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

import pykue
from tests.conftest import FAST

_PRIMITIVE = (str, bytes, int, float, bool, type(None), dict, set, frozenset)


class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="twin-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class Facade:
    """Blocking view of an asyncio object: awaitables returned by its methods are run."""

    def __init__(self, target: Any, loop: LoopThread) -> None:
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_loop", loop)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not callable(attr) or isinstance(attr, type):
            return self._wrap(attr)

        def call(*args: Any, **kwargs: Any) -> Any:
            args = tuple(self._unwrap(a, name) for a in args)
            kwargs = {k: self._unwrap(v, name) for k, v in kwargs.items()}
            return self._wrap(self._loop.run(_on_loop(attr, args, kwargs)))

        return call

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._target, name, value)

    def __repr__(self) -> str:
        return f"Facade({self._target!r})"

    @property
    def unwrapped(self) -> Any:
        return self._target

    def _wrap(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self._wrap(v) for v in value]
        if isinstance(value, _PRIMITIVE) or not type(value).__module__.startswith(("pykue", "redis")):
            return value
        return Facade(value, self._loop)

    def _unwrap(self, value: Any, method: str) -> Any:
        if isinstance(value, Facade):
            return value._target
        if isinstance(value, (list, tuple)) or inspect.isgenerator(value):
            return [self._unwrap(v, method) for v in value]
        if method == "process" and callable(value):
            return self._job_facade_for(value)
        return value

    def _job_facade_for(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        """A plain handler that sees the job through the facade (it runs in the pool's thread)."""

        @functools.wraps(handler)
        def wrapped(job: Any, *rest: Any) -> Any:
            return handler(Facade(job, self._loop), *rest)

        return wrapped


async def _on_loop(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Every call is made in the loop, as asyncio code would make it, and awaited if need be."""
    out = fn(*args, **kwargs)
    if inspect.isawaitable(out):
        out = await out
    return out


class Twin:
    def __init__(self, kind: str, url: str) -> None:
        self.kind, self.url = kind, url
        self._loop = LoopThread() if kind == "async" else None
        self._queues: list[Any] = []

    @property
    def is_async(self) -> bool:
        return self._loop is not None

    def queue(self, prefix: str, settings: pykue.Settings | None = FAST, url: Any = None) -> Any:
        target = url or self.url
        if self._loop is None:
            q: Any = pykue.create_queue(target, prefix=prefix, settings=settings)
        else:
            q = Facade(self._loop.run(_make_async(target, prefix, settings)), self._loop)
        self._queues.append(q)
        return q

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run a coroutine on the async twin's loop (async-only checks)."""
        assert self._loop is not None
        return self._loop.run(coro)

    def close(self) -> None:
        for q in self._queues:
            q.shutdown(1)
        if self._loop is not None:
            self._loop.close()


async def _make_async(url: Any, prefix: str, settings: pykue.Settings | None) -> pykue.AsyncQueue:
    return pykue.create_async_queue(url, prefix=prefix, settings=settings)


@pytest.fixture(params=["sync", "async"])
def twin(request: pytest.FixtureRequest, url: str) -> Iterator[Twin]:
    t = Twin(request.param, url)
    yield t
    t.close()


@pytest.fixture
def tq(twin: Twin, prefix: str) -> Any:
    """The queue of the twin under test, on the test's prefix."""
    return twin.queue(prefix)
