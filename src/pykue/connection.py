"""How pykue reaches Redis: one settings object from which every client it makes is built.

A queue may be given a URL or a ready client, and then needs more clients of its own (the
asyncio worker engine behind the sync queue, pub/sub). Rebuilding those from a URL lost the
password, the ACL user and TLS; `ConnectionSettings` keeps everything that decides *where*
and *as whom* a connection goes, and builds sync and asyncio clients alike from it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import redis
import redis.asyncio
import redis.asyncio.cluster as acluster
import redis.asyncio.connection as aconn
import redis.cluster as scluster
import redis.connection as sconn

DEFAULT_URL = "redis://127.0.0.1:6379/0"
Transport = Literal["tcp", "tls", "unix"]

# What decides where and as whom a connection goes; the rest (encoding, retries, ...) is pykue's choice.
_CARRIED = frozenset({
    "host", "port", "path", "db", "username", "password", "credential_provider", "client_name",
    "socket_connect_timeout", "protocol",
    "ssl_keyfile", "ssl_certfile", "ssl_cert_reqs", "ssl_ca_certs", "ssl_ca_data", "ssl_ca_path",
    "ssl_check_hostname", "ssl_min_version", "ssl_ciphers", "ssl_password",
})  # fmt: skip
_SYNC_CLASS: dict[Transport, type[Any]] = {
    "tcp": sconn.Connection,
    "tls": sconn.SSLConnection,
    "unix": sconn.UnixDomainSocketConnection,
}
_ASYNC_CLASS: dict[Transport, type[Any]] = {
    "tcp": aconn.Connection,
    "tls": aconn.SSLConnection,
    "unix": aconn.UnixDomainSocketConnection,
}


def redis_url(url: str | None) -> str:
    """The URL to use: the one given, else $REDIS_URL, else the local default."""
    return url or os.environ.get("REDIS_URL") or DEFAULT_URL


def _transport(connection_class: type) -> Transport:
    name = connection_class.__name__
    if "Unix" in name:
        return "unix"
    return "tls" if "SSL" in name else "tcp"


@dataclass(frozen=True)
class ConnectionSettings:
    """Where a queue's Redis is and how to log in: host/port or unix path, db, username,
    password, TLS options. Build it with `from_url` or `from_client`."""

    transport: Transport = "tcp"
    options: Mapping[str, Any] = field(default_factory=dict)
    cluster: bool = False  # a Redis Cluster: the URL names one node, the clients find the rest

    def __post_init__(self) -> None:
        if self.cluster and (self.transport == "unix" or self.options.get("db", 0) not in (0, "0")):
            raise ValueError("a Redis Cluster is reached over TCP or TLS and has only db 0; "
                             f"got {self.transport} db {self.options.get('db', 0)}")  # fmt: skip

    @classmethod
    def from_url(cls, url: str | None = None, cluster: bool = False) -> ConnectionSettings:
        """`redis://[user:pass@]host:port/db`, `rediss://...` (TLS) or `unix:///path?db=N`."""
        parsed: dict[str, Any] = sconn.parse_url(redis_url(url))  # type: ignore[no-untyped-call]
        connection_class = parsed.pop("connection_class", sconn.Connection)
        return cls(_transport(connection_class), _carried(parsed), cluster)

    @classmethod
    def of(cls, given: str | ConnectionSettings | None, cluster: bool = False) -> ConnectionSettings:
        if isinstance(given, ConnectionSettings):
            return given
        if given is not None and not isinstance(given, str):
            raise TypeError(f"expected a Redis URL, a client of this queue's kind or ConnectionSettings; got {given!r}")
        return cls.from_url(given, cluster)

    @classmethod
    def from_client(cls, client: redis.Redis | redis.asyncio.Redis) -> ConnectionSettings:
        """The settings of a client the caller made, credentials and TLS included."""
        pool = client.connection_pool
        return cls(_transport(pool.connection_class), _carried(pool.connection_kwargs))

    def sync_client(self, max_connections: int | None = None, decode: bool = True) -> redis.Redis:
        """max_connections: a pool that makes callers past it wait instead of raising."""
        if self.cluster:  # duck-typed as redis.Redis: pykue calls only commands both have
            return cast(redis.Redis, scluster.RedisCluster(decode_responses=decode, **self._cluster_options()))
        options = {"connection_class": _SYNC_CLASS[self.transport], "decode_responses": decode, **self._with_defaults()}
        if max_connections is None:
            return redis.Redis.from_pool(redis.ConnectionPool(**options))
        pool = redis.BlockingConnectionPool(max_connections=max_connections, **options)  # type: ignore[no-untyped-call]
        return redis.Redis.from_pool(pool)

    def async_client(self, max_connections: int = 64, decode: bool = True) -> redis.asyncio.Redis:
        """A pool that makes a burst of callers wait for a connection instead of failing
        with "Too many connections"; closing the client closes the pool."""
        if self.cluster:
            client = acluster.RedisCluster(decode_responses=decode, max_connections=max_connections,
                                           **self._cluster_options())  # fmt: skip
            client._pykue_settings = self  # type: ignore[attr-defined]  # for raw_client()
            return cast(redis.asyncio.Redis, client)
        pool = redis.asyncio.BlockingConnectionPool(
            connection_class=_ASYNC_CLASS[self.transport], max_connections=max_connections, timeout=10,
            decode_responses=decode, **self._with_defaults(),
        )  # fmt: skip
        return redis.asyncio.Redis.from_pool(pool)

    def _cluster_options(self) -> dict[str, Any]:
        """redis-py's cluster clients take the node as host/port, TLS as ssl=True, and no db."""
        options = {k: v for k, v in self._with_defaults().items() if k not in ("db", "path")}
        return {**options, "ssl": True} if self.transport == "tls" else options

    @property
    def url(self) -> str:
        """Where this goes, for messages: no password in it."""
        o = self.options
        if self.transport == "unix":
            return f"unix://{o.get('path')}?db={o.get('db', 0)}"
        user = f"{o['username']}@" if o.get("username") else ""
        scheme = "rediss" if self.transport == "tls" else "redis"
        return f"{scheme}://{user}{o.get('host', '127.0.0.1')}:{o.get('port', 6379)}/{o.get('db', 0)}"

    def _with_defaults(self) -> dict[str, Any]:
        return {"socket_connect_timeout": 2, **self.options}

    def __repr__(self) -> str:  # never print a password
        shown = {k: ("***" if k in ("password", "ssl_password") and v else v) for k, v in self.options.items()}
        return f"ConnectionSettings({self.transport!r}, {shown}{', cluster=True' if self.cluster else ''})"


def is_cluster(client: Any) -> bool:
    return isinstance(client, (scluster.RedisCluster, acluster.RedisCluster))


def raw_cluster_client(client: Any) -> Any:
    """An asyncio cluster client like `client` whose replies are not decoded."""
    settings = getattr(client, "_pykue_settings", None)
    if settings is None:  # a client the caller built: its first node and credentials
        node = next(iter(client.nodes_manager.startup_nodes.values()))
        options = {"host": node.host, "port": node.port, **_carried(client.connection_kwargs)}
        settings = ConnectionSettings("tcp", options, cluster=True)
    return settings.async_client(decode=False)


def _carried(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k in _CARRIED and v is not None}


def async_client(url: str | None = None, max_connections: int = 64) -> redis.asyncio.Redis:
    """An asyncio client for `url` (default $REDIS_URL), for services built on pykue."""
    return ConnectionSettings.from_url(url).async_client(max_connections)


def sync_client(url: str | None = None) -> redis.Redis:
    return ConnectionSettings.from_url(url).sync_client()
