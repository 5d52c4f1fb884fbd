"""pykue as the watchdog of a mixed Node/Python fleet.

Node Kue leaves work behind that no Kue process ever picks up again: the active jobs of a
worker that died, jobs it popped but never marked active, TTL'd jobs whose worker is gone,
and (through kue.app or job.state()) pykue lease entries of jobs it moved. `Maintenance`
calls the passes here; each is one bounded Lua call (`watchdog.lua`, `expire_unowned.lua`).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from . import _codec as codec
from . import _scripts as sc
from ._events import decode
from ._keys import Keys
from ._scripts import AsyncScripts

log = logging.getLogger("pykue.watchdog")
_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h)?\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}


def parse_duration_ms(text: str) -> int:
    """Durations as operators write them (30s, 5m, 1h, 250ms); a bare number is milliseconds,
    the unit of every pykue setting."""
    m = _DURATION.match(text)
    if m is None:
        raise ValueError(f"a duration looks like 500, 250ms, 30s, 5m or 1h; got {text!r}")
    return int(m.group(1)) * _UNIT_MS[m.group(2) or "ms"]


@dataclass(frozen=True)
class WatchdogPass:
    owners_dropped: int
    marks_dropped: int
    requeued: int
    failed: int
    reindexed: int
    strays_dropped: int


async def watchdog_pass(scripts: AsyncScripts, keys: Keys, stuck_after_ms: int, max_stalled: int, batch: int,
                        orphan_after_ms: int) -> WatchdogPass:  # fmt: skip
    call = sc.watchdog(keys, now=codec.now_ms(), stuck_after_ms=stuck_after_ms, max_stalled=max_stalled, batch=batch,
                       orphan_after_ms=orphan_after_ms)  # fmt: skip
    done = WatchdogPass(*await scripts.run(call))
    if done.requeued or done.failed or done.reindexed or done.strays_dropped:
        log.warning("pykue watchdog: %d stuck job(s) back to inactive, %d failed (stalled too often), "
                    "%d orphan(s) indexed again, %d stale active entries dropped",
                    done.requeued, done.failed, done.reindexed, done.strays_dropped)  # fmt: skip
    return done


class AckLog:
    """The `ttl exceeded ack`s heard lately: a Kue worker that acked is failing its job itself
    (in several round trips), so pykue must not fail the same run a second time meanwhile."""

    def __init__(self, keep_s: float) -> None:
        self.keep_s = keep_s
        self._heard: dict[int, float] = {}

    def hear(self, message: str) -> None:
        if '"ttl exceeded ack"' not in message:  # cheap filter: most messages are not acks
            return
        decoded = decode(message)
        if decoded is not None and decoded[1] == "ttl exceeded ack":
            now = time.monotonic()
            if len(self._heard) > 10_000:
                self._heard = {k: t for k, t in self._heard.items() if now - t < self.keep_s}
            self._heard[decoded[0]] = now

    def recent(self, job_id: int) -> bool:
        heard = self._heard.get(job_id)
        return heard is not None and time.monotonic() - heard < self.keep_s


async def expire_unowned(client: Any, scripts: AsyncScripts, keys: Keys, ids: list[int], grace_ms: int,
                         acks: AckLog) -> list[int]:  # fmt: skip
    """Announce, then after `grace_ms` fail, TTL'd jobs no pykue worker owns. Returns the failed."""
    ids = [i for i in ids if not acks.recent(i)]
    if not ids:
        return []
    jobs: list[tuple[int, int]] = []
    for job_id in ids:
        raw = await client.hmget(keys.job(job_id), "backoff", "delay", "attempts")
        backoff, delay, made = (x.decode() if isinstance(x, bytes) else x for x in raw)
        ms, _ = codec.backoff_delay(backoff, int(made or 0) + 1, int(delay or 0))
        jobs.append((job_id, ms))
    out = await scripts.run(sc.expire_unowned(keys, now=codec.now_ms(), grace_ms=grace_ms, jobs=jobs))
    failed = [job_id for job_id, r in zip(ids, out, strict=True) if r == 2]
    if failed:
        log.warning('pykue: no Kue worker acked "ttl exceeded" for job(s) %s; failed them as Kue would', failed)
    return failed
