"""The Lua scripts: read once from `lua/*.lua`, registered per Redis client.

Each transition is one script call. `Scripts` (sync) and `AsyncScripts` hold the
registered objects; argument lists are built by the pure helpers below so both
front-ends send exactly the same calls.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from functools import cache
from importlib import resources
from typing import Any

from redis.exceptions import RedisError, ResponseError

from ._errors import RedisOutOfMemoryError

log = logging.getLogger("pykue")
_warned: set[str] = set()

NAMES = (
    "enqueue",
    "claim",
    "complete",
    "fail",
    "progress",
    "promote",
    "renew",
    "reap",
    "remove",
    "set_state",
    "set_priority",
    "repair_tokens",
    "unlock",
    "retry",
    "watchdog",
    "expire_unowned",
    "repeat",  # feata: repeatable jobs (_schedule.py)
    "clean",  # feata: queue.clean
    "set_aside",
)
# Scripts whose reply carries job hashes as stored: registered on a client that does not
# decode, so a byte that is not UTF-8 reaches _codec.claimed_record instead of raising
# inside redis-py (which would lose the reply and the jobs it claimed).
UNDECODED = frozenset({"claim"})


@cache
def source(name: str) -> str:
    lua = resources.files("pykue") / "lua"
    return (lua / "_lib.lua").read_text() + "\n" + (lua / f"{name}.lua").read_text()


class _Registry:
    def __init__(self, client: Any, raw_client: Any = None) -> None:
        raw = raw_client or client
        self._s = {name: (raw if name in UNDECODED else client).register_script(source(name)) for name in NAMES}

    def script(self, name: str) -> Any:
        return self._s[name]


def _oom(exc: ResponseError) -> RedisOutOfMemoryError | None:
    """A script's write refused by a full Redis arrives as Lua error text; name it."""
    text = str(exc)
    if "OOM command not allowed" not in text and not text.startswith("command not allowed when used memory"):
        return None
    return RedisOutOfMemoryError(
        "Redis is out of memory (maxmemory reached, policy noeviction) and refused the write; "
        f"free memory or raise maxmemory. Redis said: {text}"
    )


class Scripts(_Registry):
    """Sync: `scripts.call("claim", keys.jobs, args)`."""

    def call(self, name: str, route_key: str, args: list[Any], client: Any = None) -> Any:
        try:
            return self._s[name](keys=[route_key], args=args, client=client)
        except ResponseError as exc:
            oom = _oom(exc)
            if oom is None:
                raise
            raise oom from exc


class AsyncScripts(_Registry):
    async def call(self, name: str, route_key: str, args: list[Any], client: Any = None) -> Any:
        try:
            return await self._s[name](keys=[route_key], args=args, client=client)
        except ResponseError as exc:
            oom = _oom(exc)
            if oom is None:
                raise
            raise oom from exc


@contextlib.contextmanager
def best_effort(what: str, job_id: Any) -> Iterator[None]:
    """job.log() and job.progress() are reports, not transitions: a full or unreachable
    Redis must neither fail nor stall the handler, so the write is dropped with a warning
    (once per process and kind; later ones at debug level)."""
    try:
        yield
    except (RedisError, OSError) as exc:
        level = logging.DEBUG if what in _warned else logging.WARNING
        _warned.add(what)
        log.log(level, "pykue: job %s: %s not recorded (%s); the handler goes on", job_id, what, exc)
