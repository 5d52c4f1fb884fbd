"""Handlers for the CLI worker tests."""

from __future__ import annotations

import pykue


def double(job: pykue.Job) -> int:
    return int(job.data["n"]) * 2


def explode(job: pykue.Job) -> None:
    raise RuntimeError(f"no luck for {job.id}")


def flaky(job: pykue.Job) -> str:
    """Fails its first attempt: with a backoff, the retry waits in `delayed`."""
    if job.attempts_made == 0:
        raise RuntimeError("first attempt fails")
    return "second attempt"
