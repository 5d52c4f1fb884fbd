"""Fixtures: one private real Redis for the session, a fresh key prefix per test."""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

import pykue
from pykue import EmbeddedRedis, Settings

ROOT = Path(__file__).resolve().parent.parent
FAST = Settings(lease_ms=1000, promote_interval=0.05, ttl_interval=0.1, reap_interval=0.1,
                repair_interval=0.5, block_timeout=0.2, shutdown_timeout=2.0)  # fmt: skip
_n = itertools.count()


@pytest.fixture(scope="session")
def server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as srv:
        yield srv


@pytest.fixture
def url(server: EmbeddedRedis) -> str:
    return server.url


@pytest.fixture
def prefix() -> str:
    return f"t{os.getpid()}x{next(_n)}"


@pytest.fixture
def r(url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def queue(url: str, prefix: str) -> Iterator[pykue.Queue]:
    q = pykue.create_queue(url, prefix=prefix, settings=FAST)
    yield q
    q.shutdown(1)


def py_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT / "examples"), str(ROOT / "tests")])
    env["PYTHONUNBUFFERED"] = "1"
    return env


PY = sys.executable


from tests.twins import tq, twin  # noqa: E402  (fixtures: one body for both twins)

__all__ = ["tq", "twin"]


@pytest.fixture(autouse=True, scope="session")
def _patient_browser() -> None:
    """Browser assertions poll the page up to 15 s (Playwright's default is 5 s), as
    `wait_for` does for Redis: on a loaded 2-core machine a render can take longer."""
    from playwright.sync_api import expect

    expect.set_options(timeout=15_000)
