"""Retry, shared by both twins: the meaning of retry.lua's answer."""

from __future__ import annotations

from ._errors import JobNotFoundError, JobStateError
from ._scripts import Outcome


def retry_outcome(job_id: int | str, out: Outcome | str) -> None:
    """Raise the named error for a refused retry; the queue was left unchanged in both cases."""
    if out is Outcome.DONE:
        return
    if out is Outcome.NOT_FOUND:
        raise JobNotFoundError(job_id)
    raise JobStateError(job_id, str(out), "only failed jobs are retried (force=True retries any job)")


def after_retry(fields: dict[str, str]) -> None:
    """What a retried job's in-memory fields look like now (as retry.lua left the hash)."""
    fields.update(state="inactive", attempts="0", progress="0")
