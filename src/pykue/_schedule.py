"""Repeatable and cron jobs, the pure half: a schedule's spec, its next run, its job's hash.

A schedule lives in two pykue keys: `P:pykue:repeat` (hash: key -> spec JSON) and
`P:pykue:repeat:next` (zset: key -> next run, ms). Every worker process's Maintenance
looks for due keys and fires each with `repeat.lua`, which moves the next-run score
forward and enqueues an ordinary Kue job in one script, only if the score is still the
one it read: so a tick fires once however many processes race for it. The next run is
computed from *now*, not from the missed tick, so an outage is never replayed in a burst.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from . import _codec as codec
from . import _scripts as sc
from ._errors import InvalidJobError
from ._job import BaseJob
from ._keys import Keys
from ._scripts import AsyncScripts

MIN_EVERY_MS = 10
FIRE_BATCH = 100  # due schedules looked at per Maintenance pass
log = logging.getLogger("pykue.worker")


def schedules_key(keys: Keys) -> str:
    return keys.key("pykue:repeat")


def next_key(keys: Keys) -> str:
    return keys.key("pykue:repeat:next")


@dataclass(frozen=True)
class Schedule:
    """One repeatable job: what to enqueue (type, data, options) and when (cron or every_ms)."""

    key: str
    type: str
    data: Any = None
    cron: str | None = None
    every_ms: int | None = None
    tz: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    next_run_ms: int | None = None

    def to_json(self) -> str:
        spec = asdict(self)
        spec.pop("next_run_ms")
        return codec.js_dumps(spec, "schedule")

    @classmethod
    def from_json(cls, text: str, next_run_ms: int | None = None) -> Schedule:
        spec = json.loads(text)
        if not isinstance(spec, dict):
            raise InvalidJobError("a stored schedule is not a JSON object")
        return cls(str(spec["key"]), str(spec["type"]), spec.get("data"), spec.get("cron"), spec.get("every_ms"),
                   spec.get("tz"), dict(spec.get("options") or {}), next_run_ms)  # fmt: skip

    def next_after(self, now_ms: int) -> int:
        """The first run strictly after now_ms: every_ms runs are aligned to multiples of
        the period (so restarts do not shift them), cron runs follow the expression in tz."""
        if self.every_ms is not None:
            return (now_ms // self.every_ms + 1) * self.every_ms
        assert self.cron is not None
        start = datetime.fromtimestamp(now_ms / 1000, ZoneInfo(self.tz or "UTC"))
        nxt = croniter(self.cron, start).get_next(float)
        return int(nxt * 1000)

    def job_fields(self, now_ms: int, tick_ms: int) -> tuple[int, list[str]]:
        """(priority, the Kue hash) of the job one tick enqueues, tagged with the schedule and tick."""
        job = BaseJob(self.type, self.data).apply(**self.options)
        return job.opts.priority, [*job._new_fields(now_ms), "pykue_repeat", self.key, "pykue_tick", str(tick_ms)]


def loaded_schedule(skey: str, spec: str | None, next_run_ms: int) -> Schedule | None:
    """A stored schedule, or None (and a warning) when it is missing or corrupt."""
    if spec is None:
        return None
    try:
        return Schedule.from_json(spec, next_run_ms)
    except (ValueError, TypeError, KeyError, InvalidJobError) as exc:
        log.warning("pykue: schedule %r is corrupt (%s); left as is", skey, exc)
        return None


def make_schedule(job_type: str, data: Any, cron: str | None, every_ms: int | None, key: str | None,
                  tz: str | None, options: dict[str, Any]) -> Schedule:  # fmt: skip
    """A validated schedule: every error is an InvalidJobError before anything is written."""
    codec.check_type(job_type)
    if (cron is None) == (every_ms is None):
        raise InvalidJobError("give exactly one of cron= or every_ms=")
    if every_ms is not None and (isinstance(every_ms, bool) or not isinstance(every_ms, int)
                                 or every_ms < MIN_EVERY_MS):  # fmt: skip
        raise InvalidJobError(f"every_ms must be an int >= {MIN_EVERY_MS}; got {every_ms!r}")
    if cron is not None and (not isinstance(cron, str) or not croniter.is_valid(cron)):
        raise InvalidJobError(f"not a valid cron expression: {cron!r}")
    if tz is not None:
        if cron is None:
            raise InvalidJobError("tz= applies to cron= schedules only")
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidJobError(f"unknown time zone: {tz!r}") from None
    if "delay" in options:
        raise InvalidJobError("a repeated job runs at its tick: the delay option does not apply")
    BaseJob(job_type, data).apply(**options)._new_fields(0)  # options and data validated now
    if key is None:
        key = f"{job_type}:{cron if cron is not None else f'every {every_ms}'}:{tz or ''}"
    if not isinstance(key, str) or not key:
        raise InvalidJobError(f"key must be a non-empty string; got {key!r}")
    return Schedule(key, job_type, data, cron, every_ms, tz, dict(options))


async def fire_due(client: Any, scripts: AsyncScripts, keys: Keys, now: int | None = None) -> list[int]:
    """Fire every due schedule once (a Maintenance task in every worker process); the ids
    of the jobs this process enqueued. A tick another process fired first is skipped."""
    now = codec.now_ms() if now is None else now
    due = await client.zrangebyscore(next_key(keys), "-inf", now, start=0, num=FIRE_BATCH, withscores=True)
    if not due:
        return []
    specs = await client.hmget(schedules_key(keys), [skey for skey, _ in due])
    ids = []
    for (skey, score), spec in zip(due, specs, strict=True):
        call = _fire_call(keys, skey, int(score), spec, now)
        if call is not None and (job_id := await scripts.run(call)):
            ids.append(job_id)
    return ids


def _fire_call(keys: Keys, skey: str, tick: int, spec: str | None, now: int) -> sc.Call[int] | None:
    """repeat.lua's call for one due tick; None (and a warning) for a corrupt record.
    A missing spec still gets a call, which drops the orphaned next-run entry."""
    try:
        sched = Schedule.from_json(spec) if spec is not None else None
        priority, fields = sched.job_fields(now, tick) if sched else (0, [])
        nxt = sched.next_after(now) if sched else now
    except (ValueError, TypeError, KeyError, InvalidJobError) as exc:
        log.warning("pykue: schedule %r is corrupt (%s); left as is", skey, exc)
        return None
    return sc.repeat(keys, now=now, schedule=skey, expected=tick, next_run=nxt, job_type=sched.type if sched else "",
                     priority=priority, fields=fields)  # fmt: skip
