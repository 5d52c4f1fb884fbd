"""Issue 12's rate limits, unique jobs and dependencies: the pure parts (checks, argument
and reply shapes) that the queues, the worker and the CLI share. The atomic parts are in
lua/claim.lua (limits), lua/enqueue.lua (unique keys, dependencies) and _lib.lua's
release_dependents (run by complete, fail and remove)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ._errors import InvalidJobError

LIMIT_MARK = "#limit"  # claim.lua's last triple when the rate limit window is used up
ON_FAILURE = ("fail", "run")


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 2**53 - 1:
        raise InvalidJobError(f"{what} must be a positive integer; got {value!r}")
    return value


def limit_spec(max_jobs: int | None, per_ms: int) -> str | None:
    """The stored form "<max>:<per_ms>" of a rate limit, or None to clear it."""
    if max_jobs is None:
        return None
    return f"{_positive_int(max_jobs, 'max')}:{_positive_int(per_ms, 'per_ms')}"


def parse_limits(raw: Mapping[Any, Any]) -> dict[str, tuple[int, int]]:
    """pykue:limits as {type: (max, per_ms)}; a value that is not ours is left out."""
    out: dict[str, tuple[int, int]] = {}
    for key, value in raw.items():
        k = key.decode() if isinstance(key, bytes) else str(key)
        v = value.decode() if isinstance(value, bytes) else str(value)
        m = re.fullmatch(r"(\d+):(\d+)", v)
        if m:
            out[k] = (int(m[1]), int(m[2]))
    return out


def split_limit(out: Sequence[Any]) -> tuple[list[Any], float | None]:
    """A claim reply without its rate limit triple, and the seconds to wait (None: not limited)."""
    if len(out) >= 3 and _text(out[-3]) == LIMIT_MARK and not _text(out[-2]):
        return list(out[:-3]), max(0.001, int(out[-1]) / 1000)
    return list(out), None


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def unique_key(key: Any) -> str:
    if not isinstance(key, str) or not key or len(key) > 1024:
        raise InvalidJobError(f"a unique key must be a non-empty string (at most 1024 characters); got {key!r}")
    return key


def parent_ids(jobs: Iterable[Any]) -> list[int]:
    """The ids of saved jobs (or ids) a job waits for; an unsaved job is an error."""
    ids: list[int] = []
    for job in jobs:
        job_id = job if isinstance(job, int) and not isinstance(job, bool) else getattr(job, "id", None)
        if not isinstance(job_id, int) or isinstance(job_id, bool) or job_id < 1:
            raise InvalidJobError(f"after() takes saved jobs or their ids; got {job!r}")
        ids.append(job_id)
    if not ids:
        raise InvalidJobError("after() needs at least one job")
    return ids


def check_on_failure(value: Any) -> str:
    if value not in ON_FAILURE:
        raise InvalidJobError(f"on_failure must be 'fail' or 'run'; got {value!r}")
    return str(value)


def feature_fields(unique: str | None, after: Sequence[int], on_failure: str) -> list[str]:
    """The job hash fields enqueue.lua reads (Kue ignores fields it does not know)."""
    out: list[str] = []
    if unique is not None:
        out += ("pykue_unique", unique)
    if after:
        out += ("pykue_after", ",".join(map(str, after)), "pykue_on_failure", on_failure)
    return out


def saved_ids(raw: Sequence[Any]) -> tuple[list[int], list[bool]]:
    """enqueue.lua's reply as ids, and which are an existing job holding the unique key."""
    texts = [_text(x) for x in raw]
    return [int(t.lstrip("-")) for t in texts], [t.startswith("-") for t in texts]


def enqueue_error(exc: Exception) -> Exception:
    """enqueue.lua's refusal of a dependency that does not exist, as a named error."""
    text = str(exc)
    if "pykue: dependency job" in text:
        return InvalidJobError("after(): " + text.split("pykue: ", 1)[1])
    return exc
