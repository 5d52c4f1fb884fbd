"""Retry, shared by both twins: the arguments of one retry.lua call and the meaning of its answer."""

from __future__ import annotations

from typing import Any

from . import _codec as codec
from ._errors import JobNotFoundError, JobStateError


def retry_args(job_id: int | str, force: bool) -> list[Any]:
    """retry.lua's ARGV after the prefix."""
    return [codec.now_ms(), job_id, "1" if force else "0"]


def retry_outcome(job_id: int | str, raw: Any) -> None:
    """Raise the named error for a refused retry; the queue was left unchanged in both cases."""
    if raw == 1:
        return
    if raw == 0:
        raise JobNotFoundError(job_id)
    state = raw.decode() if isinstance(raw, bytes) else str(raw)
    raise JobStateError(job_id, state, "only failed jobs are retried (force=True retries any job)")


def after_retry(fields: dict[str, str]) -> None:
    """What a retried job's in-memory fields look like now (as retry.lua left the hash)."""
    fields.update(state="inactive", attempts="0", progress="0")
