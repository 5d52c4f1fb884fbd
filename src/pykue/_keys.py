"""Kue 0.11's key layout, built in this one place."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property

from ._errors import InvalidJobError


class State(StrEnum):
    """Kue's five job states; a State is its own string, so it compares equal to Kue's."""

    INACTIVE = "inactive"
    ACTIVE = "active"
    COMPLETE = "complete"
    FAILED = "failed"
    DELAYED = "delayed"


STATES = tuple(s.value for s in State)  # Kue's order, the one its dashboard and stats use
TERMINAL_STATES = frozenset({State.COMPLETE, State.FAILED})
WAITING_STATES = frozenset({State.INACTIVE, State.DELAYED})


def check_state(state: str) -> State:
    """The one place a state name from a caller is validated."""
    try:
        return State(state)
    except ValueError:
        raise InvalidJobError(f"state must be one of {', '.join(STATES)}; got {state!r}") from None


# Locks shared with Node Kue processes; Kue does not prefix them.
PROMOTION_LOCK = "promotion:lock"
TTL_LOCK = "activeJobsTTL:lock"


def zid(job_id: int | str) -> str:
    """Sorted-set member for a job: width-prefixed so equal scores sort by id (FIFO)."""
    s = str(job_id)
    return f"{len(s):02d}|{s}"


def id_from_zid(member: str) -> int:
    return int(member.split("|", 1)[1])


# The queue's fixed keys, by name after the prefix, in the order every script receives them
# as KEYS (lua/_lib.lua's DECLARED lists the same names; tests/test_cluster.py checks).
# Per-job and per-type keys (job:ID, jobs:TYPE:STATE, pykue:held:WORKER, ...) are derived in
# Lua from the prefix: on Redis Cluster the prefix carries a {hash tag}, so they share the slot.
DECLARED = (
    "jobs", "ids", "job:types", "stats:work-time",
    "jobs:inactive", "jobs:active", "jobs:complete", "jobs:failed", "jobs:delayed",
    "pykue:owners", "pykue:workers", "pykue:stalls", "pykue:watchdog", "pykue:ttl", "pykue:orphans",
    "pykue:paused", "pykue:repeat", "pykue:repeat:next", "pykue:limits", "pykue:unique",
)  # fmt: skip


def hash_tag(prefix: str) -> str | None:
    """The {tag} Redis Cluster hashes a key by (its first non-empty {...}), or None."""
    start = prefix.find("{")
    end = prefix.find("}", start + 1) if start >= 0 else -1
    return prefix[start + 1 : end] if end > start + 1 else None


@dataclass(frozen=True)
class Keys:
    prefix: str = "q"
    cluster: bool = False  # on a Redis Cluster Kue's unprefixed locks would sit in another slot

    @property
    def promotion_lock(self) -> str:
        """Kue's delayed-job promotion lock: shared with Node Kue, so unprefixed as Kue has it,
        except on a cluster (which Kue 0.11.6 cannot use), where it joins the queue's slot."""
        return self.key(PROMOTION_LOCK) if self.cluster else PROMOTION_LOCK

    @property
    def ttl_lock(self) -> str:
        return self.key(TTL_LOCK) if self.cluster else TTL_LOCK

    @cached_property
    def declared(self) -> tuple[str, ...]:
        """Every fixed key a script may touch, passed as its KEYS (built once: every call sends it)."""
        return tuple(self.key(name) for name in DECLARED)

    def key(self, name: str) -> str:
        return f"{self.prefix}:{name}"

    @property
    def ids(self) -> str:
        return self.key("ids")

    @property
    def jobs(self) -> str:
        return self.key("jobs")

    @property
    def types(self) -> str:
        return self.key("job:types")

    @property
    def events(self) -> str:
        return self.key("events")

    @property
    def work_time(self) -> str:
        return self.key("stats:work-time")

    def job(self, job_id: int | str) -> str:
        return self.key(f"job:{job_id}")

    def log(self, job_id: int | str) -> str:
        return self.key(f"job:{job_id}:log")

    def state(self, state: str, job_type: str | None = None) -> str:
        return self.key(f"jobs:{job_type}:{state}" if job_type else f"jobs:{state}")

    def tokens(self, job_type: str) -> str:
        return self.key(f"{job_type}:jobs")

    # pykue's own bookkeeping; Kue never reads these.
    @property
    def owners(self) -> str:
        return self.key("pykue:owners")

    @property
    def workers(self) -> str:
        """zset: worker -> lease expiry (ms); one lease per worker, renewed while it runs."""
        return self.key("pykue:workers")

    def held(self, worker: str) -> str:
        """set: the ids of the jobs a worker holds."""
        return self.key(f"pykue:held:{worker}")

    @property
    def stalls(self) -> str:
        return self.key("pykue:stalls")

    # The fleet watchdog's (lua/watchdog.lua, lua/expire_unowned.lua).
    @property
    def watchdog(self) -> str:
        """hash: the SCAN/ZSCAN/HSCAN cursors its passes resume from."""
        return self.key("pykue:watchdog")

    @property
    def ttl_marks(self) -> str:
        """hash: id -> "<started_at>@<first ttl exceeded announcement ms>" of unowned TTL'd jobs."""
        return self.key("pykue:ttl")

    @property
    def orphans(self) -> str:
        """hash: id -> "<state>@<updated_at>@<first seen ms>" of jobs seen in no set of their state."""
        return self.key("pykue:orphans")

    # Issue 12's (lua/claim.lua, lua/enqueue.lua, _lib.lua's release_dependents).
    @property
    def limits(self) -> str:
        """hash: job type -> "<max>:<per_ms>", the rate limits."""
        return self.key("pykue:limits")

    def limit_window(self, job_type: str) -> str:
        """string: jobs of the type claimed in the current window; expires with it."""
        return self.key(f"pykue:limit:{job_type}")

    @property
    def unique(self) -> str:
        """hash: unique key -> id of the job holding it."""
        return self.key("pykue:unique")

    def dependents(self, job_id: int | str) -> str:
        """set: the jobs waiting for this one."""
        return self.key(f"pykue:dependents:{job_id}")

    def deps(self, job_id: int | str) -> str:
        """set: the jobs this one still waits for."""
        return self.key(f"pykue:deps:{job_id}")
