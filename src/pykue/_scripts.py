"""The Lua scripts: read once from `lua/*.lua`, registered per Redis client.

Each transition is one script call. `Scripts` (sync) and `AsyncScripts` hold the
registered objects; argument lists are built by the pure helpers below so both
front-ends send exactly the same calls.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

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
)


@cache
def source(name: str) -> str:
    lua = resources.files("pykue") / "lua"
    return (lua / "_lib.lua").read_text() + "\n" + (lua / f"{name}.lua").read_text()


class _Registry:
    def __init__(self, client: Any) -> None:
        self._s = {name: client.register_script(source(name)) for name in NAMES}

    def script(self, name: str) -> Any:
        return self._s[name]


class Scripts(_Registry):
    """Sync: `scripts.call("claim", keys.jobs, args)`."""

    def call(self, name: str, route_key: str, args: list[Any], client: Any = None) -> Any:
        return self._s[name](keys=[route_key], args=args, client=client)


class AsyncScripts(_Registry):
    async def call(self, name: str, route_key: str, args: list[Any], client: Any = None) -> Any:
        return await self._s[name](keys=[route_key], args=args, client=client)
