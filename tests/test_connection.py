"""Credentials survive into every client pykue makes (the worker engine's, pub/sub), on both
twins, against a private Redis with `requirepass` and with an ACL user."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio

import pykue
from pykue import ConnectionSettings, EmbeddedRedis
from tests.twins import Twin


@pytest.fixture(scope="module")
def locked() -> Iterator[EmbeddedRedis]:
    """A server where the default user needs a password and `worker` is an ACL user."""
    with EmbeddedRedis() as srv:
        with redis.Redis.from_url(srv.url) as admin:
            admin.acl_setuser("worker", enabled=True, passwords=["+wpass"], keys=["*"], channels=["*"],
                              commands=["+@all"])  # fmt: skip
            admin.config_set("requirepass", "secret")
        with pytest.raises(redis.AuthenticationError), redis.Redis.from_url(srv.url) as anonymous:
            anonymous.ping()
        yield srv


def _roundtrip(q: Any) -> None:
    """Save (producer client), process (engine client) and hear the job's events (pub/sub)."""
    done = threading.Event()
    heard: list[Any] = []
    job = q.create("auth", {"n": 1})
    job.on("complete", lambda result: (heard.append(result), done.set()))
    job.save()
    q.process("auth", lambda j: j.data["n"] + 1)
    assert done.wait(10)
    assert heard == [2] and q.get_job(job.id or 0).state == "complete"


def _client(twin: Twin, srv: EmbeddedRedis, **kw: Any) -> Any:
    cls = redis.asyncio.Redis if twin.is_async else redis.Redis
    return cls(host="127.0.0.1", port=srv.port, decode_responses=True, **kw)


def test_a_password_client_survives_into_workers_and_events(twin: Twin, locked: EmbeddedRedis, prefix: str) -> None:
    _roundtrip(twin.queue(prefix, url=_client(twin, locked, password="secret", db=3)))
    with redis.Redis(port=locked.port, password="secret", db=3, decode_responses=True) as check:
        assert check.hget(f"{prefix}:job:1", "state") == "complete"  # and db 3 was kept


def test_an_acl_user_client_survives_into_workers_and_events(twin: Twin, locked: EmbeddedRedis, prefix: str) -> None:
    _roundtrip(twin.queue(prefix, url=_client(twin, locked, username="worker", password="wpass")))


def test_an_acl_user_url(twin: Twin, locked: EmbeddedRedis, prefix: str) -> None:
    q = twin.queue(prefix, url=f"redis://worker:wpass@127.0.0.1:{locked.port}/2")
    _roundtrip(q)
    assert q.url == f"redis://worker@127.0.0.1:{locked.port}/2"  # shown without the password


def test_settings_object(twin: Twin, locked: EmbeddedRedis, prefix: str) -> None:
    settings = ConnectionSettings.from_url(f"redis://:secret@127.0.0.1:{locked.port}/0")
    _roundtrip(twin.queue(prefix, url=settings))


def test_tls_unix_and_db_are_kept_in_both_kinds_of_client() -> None:
    tls = ConnectionSettings.from_url("rediss://u:p@example.test:6380/4?ssl_cert_reqs=none")
    for client in (redis.Redis.from_url("rediss://u:p@example.test:6380/4", ssl_cert_reqs="none"),
                   redis.asyncio.Redis.from_url("rediss://u:p@example.test:6380/4", ssl_cert_reqs="none")):  # fmt: skip
        assert ConnectionSettings.from_client(client).transport == "tls"
        assert ConnectionSettings.from_client(client).options["password"] == "p"
    assert tls.transport == "tls"
    sync, aio = tls.sync_client(), tls.async_client()
    for pool in (sync.connection_pool, aio.connection_pool):
        assert "SSL" in pool.connection_class.__name__
        kw = pool.connection_kwargs
        assert (kw["host"], kw["port"], kw["db"], kw["username"], kw["password"]) == ("example.test", 6380, 4, "u", "p")
        assert kw["ssl_cert_reqs"] in ("none", ssl.CERT_NONE)
    sync.close()
    unix = ConnectionSettings.from_url("unix:///tmp/r.sock?db=5")
    pool = unix.async_client().connection_pool
    assert "Unix" in pool.connection_class.__name__ and pool.connection_kwargs["path"] == "/tmp/r.sock"
    assert pool.connection_kwargs["db"] == 5 and unix.url == "unix:///tmp/r.sock?db=5"
    assert "p'" not in repr(tls) and "***" in repr(tls)


def test_the_front_has_public_connection_helpers() -> None:
    from pykue import _core, connection

    assert _core.redis_url is connection.redis_url and _core.async_client is connection.async_client
    assert connection.redis_url("redis://h:1/0") == "redis://h:1/0"
    assert isinstance(pykue.connection.async_client("redis://:pw@h:1/0"), redis.asyncio.Redis)


def test_a_client_of_the_other_kind_is_refused_by_name(queue: pykue.Queue) -> None:
    job = queue.create("x", {}).save()
    with pytest.raises(TypeError, match="client of this queue's kind"):
        pykue.create_queue(redis.asyncio.Redis())
    with pytest.raises(TypeError, match="client of this queue's kind"):
        pykue.create_async_queue(redis.Redis())
    assert pykue.Job.get(job.id or 0).queue is queue  # the queue that failed to build is not the default
