"""Handlers for the worker-logging and many-types CLI tests (imported by the worker under test)."""

from __future__ import annotations

from typing import Any

import redis

import pykue


def hold(job: pykue.Job) -> str:
    """Runs until the test pushes a token on the job's `release` list, then passes it on."""
    client = redis.Redis.from_url(job.data["url"])
    try:
        got = client.blpop([job.data["release"]], timeout=30)
        if got is None:
            raise RuntimeError("never released")
        client.rpush(job.data["release"], "go")
    finally:
        client.close()
    return job.type


def ok(job: pykue.Job) -> str:
    return "ok"


def fail_first(job: pykue.Job) -> str:
    if job.attempts_made == 0:
        raise ValueError(f"first attempt of {job.id} fails")
    return "second"


def always_fails(job: pykue.Job) -> None:
    raise RuntimeError("card declined")


HANDLERS: dict[str, Any] = {"small": hold, "big": (3, hold)}
MIXED: dict[str, Any] = {"good": ok, "flaky": fail_first, "bad": always_fails}
BROKEN: dict[str, Any] = {"good": ok, "bad": (0, ok)}
NOT_A_DICT = [ok]
