"""remove_on_complete / remove_on_fail with an age or a count to keep (BullMQ's {age, count}).

`True` on remove_on_complete is Kue's own removeOnComplete (gone at once, Node Kue honours
it too). An int or {"age": ms, "count": n} is pykue's: the job hash carries the policy as
`pykue_keep_complete` / `pykue_keep_failed` = "<age ms>,<count>" ("" for no bound), and
complete.lua / fail.lua's `retain` keeps the finished jobs of that type that carry a policy
in `P:pykue:kept:<state>:<type>` (zset by finish time) and, in the same script, removes
those beyond the count or older than the age (at most 100 per finish, so a call stays short).
Trimming happens when a job with a policy finishes, as in BullMQ; `queue.clean` does the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._errors import InvalidJobError

KEEP_FIELDS = {"complete": "pykue_keep_complete", "failed": "pykue_keep_failed"}


def _bound(value: Any, what: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidJobError(f"{what} must be an int >= 0; got {value!r}")
    return str(value)


def check_retention(value: Any, option: str) -> tuple[bool, str | None]:
    """(remove at once, "<age>,<count>" policy or None) for an option's value: a bool, a
    count to keep, or {"age": ms, "count": n}; anything else is an InvalidJobError."""
    if value is None or isinstance(value, bool):
        return bool(value), None
    if isinstance(value, int):
        return False, f",{_bound(value, f'{option} count')}"
    if isinstance(value, Mapping):
        unknown = set(value) - {"age", "count"}
        if unknown or not value:
            raise InvalidJobError(f'{option} takes {{"age": ms, "count": n}}; got {dict(value)!r}')
        return False, f"{_bound(value.get('age'), f'{option} age')},{_bound(value.get('count'), f'{option} count')}"
    raise InvalidJobError(f'{option} must be a bool, a count or {{"age": ms, "count": n}}; got {value!r}')


def policy_of(text: str | None) -> dict[str, int] | None:
    """A stored policy back as {"age": ms, "count": n} (the bounds it has)."""
    if not text:
        return None
    age, _, count = text.partition(",")
    out = {}
    if age.isdigit():
        out["age"] = int(age)
    if count.isdigit():
        out["count"] = int(count)
    return out
