"""The handlers' own Redis client: one connection per queue, shared by every handler, its
commands auto-pipelined (what ioredis's `enableAutoPipelining` does for BullMQ's handlers).

Why: a handler's one redis-py call cost the worker 60-95 µs (pool checkout and its locks, an
`asyncio.timeout` per call, pure-Python argument filtering; bench/PROFILE.md), more than all of
pykue's own work per job. Here a command is packed by hiredis, joins the batch of its event-loop
iteration, goes out with that batch in one write, and its reply resolves its future in order.

What a caller can rely on:
- Each command gets its own reply or error: an error reply fails that caller only.
- Commands written on a connection that drops fail with `ConnectionLostError` (they may or may
  not have run); none is sent again. Commands not written yet go out on the next connection.
- No connection limit to hit: the shared connection is one; what cannot share it (blocking
  commands, `pipeline()`, `pubsub()`) uses a redis-py pool that waits for a free connection
  rather than raising `MaxConnectionsError`. Commands that would change the shared
  connection's state (SELECT, MULTI, WATCH, SUBSCRIBE, ...) are refused.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Literal

import hiredis
import redis
import redis.asyncio
from redis._parsers.base import BaseParser
from redis._parsers.encoders import Encoder
from redis._parsers.response_callbacks import get_response_callbacks
from redis.asyncio.client import Pipeline as AsyncPipeline
from redis.asyncio.client import PubSub as AsyncPubSub
from redis.asyncio.connection import RedisSSLContext
from redis.client import EMPTY_RESPONSE, NEVER_DECODE, Pipeline, PubSub
from redis.commands.core import AsyncCoreCommands, CoreCommands
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, InvalidResponse

from ._errors import LoopThreadError
from .connection import ConnectionSettings

# Commands that hold their connection until something happens: they get one of the pool's.
_BLOCKING = frozenset({"BLPOP", "BRPOP", "BRPOPLPUSH", "BLMOVE", "BLMPOP", "BZPOPMIN", "BZPOPMAX", "BZMPOP",
                       "WAIT", "WAITAOF"})  # fmt: skip
_BLOCKING_IF_ASKED = frozenset({"XREAD", "XREADGROUP"})  # with a BLOCK argument
# Commands whose effect is on the connection: on the shared one they would change every handler's.
_REFUSED = frozenset({"SELECT", "AUTH", "HELLO", "MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH", "SUBSCRIBE",
                      "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE", "MONITOR",
                      "QUIT", "RESET", "CLIENT REPLY", "CLIENT TRACKING", "CLIENT SETNAME", "READONLY",
                      "READWRITE"})  # fmt: skip
_SPECIAL = _BLOCKING | _BLOCKING_IF_ASKED | _REFUSED
POOL_SIZE = 1024  # connections the waiting pool may open for blocking commands, pipelines, pub/sub
_PUSH = getattr(hiredis, "PushNotification", None)
_CLOSED = "the shared Redis client was closed (its queue shut down)"
_CLOSED_UNANSWERED = "the shared Redis client was closed before this command's reply came; it may or may not have run"


class ConnectionLostError(RedisConnectionError):
    """The connection dropped while this command was written and unanswered: it may or may not
    have run. pykue did not send it again; the next command opens a new connection."""


class ClientClosedError(RedisConnectionError):
    """The shared client was closed (its queue shut down)."""


class Waiter:
    """What a command's caller waits on: an asyncio future, or `ThreadWaiter` for a thread."""

    def done(self) -> bool:
        raise NotImplementedError

    def set_result(self, value: Any) -> None:
        raise NotImplementedError

    def set_exception(self, exc: BaseException) -> None:
        raise NotImplementedError


class ThreadWaiter(Waiter):
    """A one-shot hand-over to a blocked thread: a bare lock is cheaper than a
    concurrent.futures.Future (no condition, no callbacks, never cancelled)."""

    __slots__ = ("_error", "_lock", "_value")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self._value: Any = None
        self._error: BaseException | None = None

    def done(self) -> bool:
        return False

    def set_result(self, value: Any) -> None:
        self._value = value
        self._lock.release()

    def set_exception(self, exc: BaseException) -> None:
        self._error = exc
        self._lock.release()

    def wait(self) -> Any:
        self._lock.acquire()
        if self._error is not None:
            raise self._error
        return self._value


Entry = tuple[Any, str, dict[str, Any] | None]  # (waiter, COMMAND NAME, the command's options)


def pack(args: tuple[Any, ...]) -> bytes:
    """One command in RESP, as redis-py sends it ("CONFIG GET" is two words on the wire)."""
    name = args[0]
    if (isinstance(name, str) and " " in name) or (isinstance(name, bytes) and b" " in name):
        args = (*name.split(), *args[1:])
    try:
        packed: bytes = hiredis.pack_command(args)
        return packed
    except TypeError:
        pass
    args = tuple(bytes(a) if isinstance(a, (bytearray, memoryview)) else a for a in args)
    try:
        packed = hiredis.pack_command(args)
        return packed
    except TypeError as exc:
        raise DataError(f"{exc} (command {_name(args)})") from None


def _name(args: tuple[Any, ...]) -> str:
    name = args[0]
    return (name.decode() if isinstance(name, bytes) else str(name)).upper()


def _routed(name: str, args: tuple[Any, ...], options: Mapping[str, Any]) -> bool:
    """Whether the command must run on a connection of its own (pool) rather than the shared one."""
    if name in _REFUSED:
        raise DataError(f"{name} changes the state of the connection every handler shares; use "
                        "pipeline() for MULTI/EXEC and WATCH, pubsub() to subscribe")  # fmt: skip
    if name in _BLOCKING or NEVER_DECODE in options:
        return True
    return name in _BLOCKING_IF_ASKED and any(a in ("BLOCK", b"BLOCK") for a in args)


class _Connection(asyncio.Protocol):
    """One connection: each reply settles the oldest unanswered command written on it."""

    def __init__(self, owner: AsyncSharedRedis, reader: Any) -> None:
        self.owner = owner
        self.reader = reader
        self.inflight: deque[Entry] = deque()
        self.transport: Any = None  # asyncio's or uvloop's (which is no asyncio.Transport)
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        reader, inflight, settle = self.reader, self.inflight, self.owner.settle
        reader.feed(data)
        while True:
            try:
                reply = reader.gets()
            except InvalidResponse:  # the stream cannot be trusted past this: drop the connection
                self.close()
                return
            except Exception as exc:  # one reply could not be decoded: its caller's error only
                if inflight:
                    _fail(inflight.popleft()[0], exc)
                continue
            if reply is False:
                return
            if inflight and (_PUSH is None or type(reply) is not _PUSH):
                settle(inflight.popleft(), reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.owner.lost(self, exc)

    def write(self, data: bytes, entries: list[Entry]) -> None:
        self.inflight.extend(entries)
        self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


def _fail(waiter: Any, exc: BaseException) -> None:
    if not waiter.done():
        waiter.set_exception(exc)


class AsyncSharedRedis(AsyncCoreCommands):
    """redis-py's asyncio command API (`await r.incr("k")`, `hset`, `get`, scripts, ...) on one
    auto-pipelined connection: the commands that many handlers issue in the same event-loop
    iteration go out in one write. Replies are decoded to str unless `decode_responses=False`.

    Get the queue's with `queue.redis`, or make one: `AsyncSharedRedis("redis://...")`.
    Bound to the event loop it is first used in."""

    _is_async_client: Literal[True] = True
    _event_dispatcher: Any = None  # redis-py's clients' observability hook; none here

    def __init__(self, connection: str | ConnectionSettings | None = None, *, decode_responses: bool = True,
                 loop: asyncio.AbstractEventLoop | None = None) -> None:  # fmt: skip
        self.settings = ConnectionSettings.of(connection)
        self._cluster = self.settings.cluster  # its commands go to redis-py's cluster client
        self.decode_responses = decode_responses
        protocol = self.settings.options.get("protocol")
        self._callbacks = {k.upper(): v for k, v in get_response_callbacks(protocol or 2, True).items()}
        self._loop = loop
        self._pending: list[bytes] = []
        self._waiting: list[Entry] = []
        self._flush_soon = False
        self._conn: _Connection | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._pool: redis.asyncio.Redis | None = None
        self.closed = False
        self.writes = 0  # batches written: commands / writes is the auto-pipelining's effect

    def __repr__(self) -> str:
        return f"<AsyncSharedRedis {self.settings.url}>"

    async def __aenter__(self) -> AsyncSharedRedis:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- the command API's one entry point ----------------------------------------------
    def execute_command(self, *args: Any, **options: Any) -> Any:
        """Queue the command for this loop iteration's write; returns a coroutine of its reply."""
        name = args[0].upper() if isinstance(args[0], str) else _name(args)
        if self._cluster or ((name in _SPECIAL or options) and _routed(name, args, options)):
            return self._on_pool(args, options)
        packed = pack(args)
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._bind(loop)
        fut = loop.create_future()
        self.enqueue(packed, name, options or None, fut)
        return _reply(fut)

    def get_encoder(self) -> Encoder:
        """How str arguments become bytes (register_script hashes scripts with it)."""
        return Encoder("utf-8", "strict", self.decode_responses)  # type: ignore[no-untyped-call]

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> AsyncPipeline:
        """A redis-py pipeline (MULTI/EXEC, WATCH) on a connection of its own from the pool."""
        return self._pool_client().pipeline(transaction, shard_hint)

    def pubsub(self, **kwargs: Any) -> AsyncPubSub:
        return self._pool_client().pubsub(**kwargs)

    async def aclose(self) -> None:
        """Fail what is queued or unanswered with ClientClosedError and close the connections."""
        self.close_now()
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None

    # -- on the loop ----------------------------------------------------------------------
    def enqueue(self, packed: bytes, name: str, options: dict[str, Any] | None, waiter: Any) -> None:
        if self.closed:
            _fail(waiter, ClientClosedError(_CLOSED))
            return
        self._pending.append(packed)
        self._waiting.append((waiter, name, options))
        if not self._flush_soon:
            self._flush_soon = True
            assert self._loop is not None
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write everything queued since the last write, in one write."""
        self._flush_soon = False
        if not self._pending:
            return
        conn = self._conn
        if conn is None or conn.lost:
            if self._connecting is None and not self.closed:
                assert self._loop is not None
                self._connecting = self._loop.create_task(self._connect())
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        waiting = self._waiting
        self._pending, self._waiting = [], []
        self.writes += 1
        try:
            conn.write(data, waiting)
        except Exception as exc:  # a transport that takes no write: its callers must not wait forever
            self.lost(conn, exc)
            conn.close()

    def settle(self, entry: Entry, reply: Any) -> None:
        waiter, name, options = entry
        if waiter.done():  # its caller was cancelled; the reply is consumed all the same
            return
        if isinstance(reply, Exception):
            if options and EMPTY_RESPONSE in options:
                waiter.set_result(options[EMPTY_RESPONSE])
            else:
                waiter.set_exception(reply)
            return
        callback = self._callbacks.get(name)
        if callback is None:
            waiter.set_result(reply)
            return
        try:
            value = callback(reply, **_callback_options(options)) if options else callback(reply)
        except Exception as exc:
            waiter.set_exception(exc)
            return
        waiter.set_result(value)

    def lost(self, conn: _Connection, exc: BaseException | None) -> None:
        conn.lost = True
        if self._conn is conn:
            self._conn = None
        why = f": {exc}" if exc else ""
        while conn.inflight:
            _fail(conn.inflight.popleft()[0], ConnectionLostError(
                f"the connection to Redis at {self.settings.url} was lost{why} before this command's reply came; "
                "it may or may not have run, and it was not sent again"))  # fmt: skip
        if self._pending and not self._flush_soon and not self.closed and self._loop is not None:
            self._flush_soon = True
            self._loop.call_soon(self.flush)

    def close_now(self) -> None:
        self.closed = True
        if self._connecting is not None:
            self._connecting.cancel()
            self._connecting = None
        self._fail_pending(ClientClosedError, _CLOSED)
        conn, self._conn = self._conn, None
        if conn is not None:
            unanswered = (
                "the shared Redis client was closed before this command's reply came; it may or may not have run"
            )
            while conn.inflight:
                _fail(conn.inflight.popleft()[0], ClientClosedError(unanswered))
            conn.close()

    # -- connecting -----------------------------------------------------------------------
    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """First use, or the loop it was bound to is gone (asyncio.run per test): start afresh."""
        if self._loop is not None and not self._loop.is_closed():
            raise RuntimeError(f"{self!r} is in use in another event loop; make one per loop")
        self._loop, self._conn, self._connecting = loop, None, None
        self._pending, self._waiting, self._flush_soon = [], [], False

    async def _connect(self) -> None:
        try:
            conn = await self._open()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._connecting = None
            self._fail_pending(RedisConnectionError, f"could not connect to Redis at {self.settings.url}: {exc}")
            return
        self._connecting = None
        if self.closed:
            conn.close()
            return
        self._conn = conn
        self.flush()

    def _fail_pending(self, error: Callable[[str], BaseException], message: str) -> None:
        waiting, self._pending, self._waiting = self._waiting, [], []
        for waiter, _, _ in waiting:
            _fail(waiter, error(message))

    async def _open(self) -> _Connection:
        o = self.settings.options
        assert self._loop is not None
        reader_options: dict[str, Any] = {"protocolError": InvalidResponse, "replyError": BaseParser.parse_error}
        if self.decode_responses:
            reader_options.update(encoding="utf-8", errors="strict")
        reader = hiredis.Reader(**reader_options)

        def factory() -> _Connection:
            return _Connection(self, reader)

        async with asyncio.timeout(o.get("socket_connect_timeout") or 2):
            if self.settings.transport == "unix":
                _, conn = await self._loop.create_unix_connection(factory, o["path"])
            else:
                ssl = _ssl_context(o) if self.settings.transport == "tls" else None
                _, conn = await self._loop.create_connection(factory, o.get("host", "127.0.0.1"),
                                                             int(o.get("port", 6379)), ssl=ssl)  # fmt: skip
            try:
                await self._handshake(conn)
            except BaseException:
                conn.close()
                raise
        return conn

    async def _handshake(self, conn: _Connection) -> None:
        """Log in and choose the db before any handler's command is written (as redis-py does)."""
        assert self._loop is not None
        commands = handshake(self.settings.options)
        if not commands:
            return
        waiters = [self._loop.create_future() for _ in commands]
        conn.write(b"".join(pack(c) for c in commands), [(w, "HANDSHAKE", None) for w in waiters])
        for waiter in waiters:
            await waiter

    # -- what does not share the connection --------------------------------------------------
    def _pool_client(self) -> redis.asyncio.Redis:
        if self._pool is None:
            self._pool = self.settings.async_client(max_connections=POOL_SIZE, decode=self.decode_responses)
        return self._pool

    async def _on_pool(self, args: tuple[Any, ...], options: dict[str, Any]) -> Any:
        if self.closed:
            raise ClientClosedError(_CLOSED)
        return await self._pool_client().execute_command(*args, **options)  # type: ignore[no-untyped-call]


async def _reply(fut: asyncio.Future[Any]) -> Any:
    """A coroutine, as redis-py's calls return (asyncio.create_task takes only those); the
    command was queued when called, so the calls' order is the order they were made in."""
    return await fut


def _callback_options(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k not in ("keys", EMPTY_RESPONSE)}


def handshake(o: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """The commands redis-py sends on connect: HELLO or AUTH, CLIENT SETNAME, SELECT."""
    username, password = o.get("username"), o.get("password")
    provider = o.get("credential_provider")
    if provider is not None:
        creds = provider.get_credentials()
        username, password = (None, creds[0]) if len(creds) == 1 else (creds[0], creds[1])
    commands: list[tuple[Any, ...]] = []
    if str(o.get("protocol") or 2) == "3":
        commands.append(("HELLO", 3, "AUTH", username or "default", password) if password else ("HELLO", 3))
    elif password:
        commands.append(("AUTH", username, password) if username else ("AUTH", password))
    if o.get("client_name"):
        commands.append(("CLIENT", "SETNAME", o["client_name"]))
    if int(o.get("db") or 0):
        commands.append(("SELECT", int(o["db"])))
    return commands


def _ssl_context(o: Mapping[str, Any]) -> Any:
    return RedisSSLContext(keyfile=o.get("ssl_keyfile"), certfile=o.get("ssl_certfile"),
                           cert_reqs=o.get("ssl_cert_reqs"), ca_certs=o.get("ssl_ca_certs"),
                           ca_data=o.get("ssl_ca_data"), ca_path=o.get("ssl_ca_path"),
                           check_hostname=bool(o.get("ssl_check_hostname", False)),
                           min_version=o.get("ssl_min_version"), ciphers=o.get("ssl_ciphers"),
                           password=o.get("ssl_password")).get()  # fmt: skip


class _LoopThread:
    """The event loop a standalone SharedRedis runs its connection on."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="pykue-shared-redis", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.thread.is_alive():
            self.loop.close()


class SharedRedis(CoreCommands):
    """The sync twin for handlers that run in threads: redis-py's command API (`r.incr("k")`),
    thread-safe, every thread's commands auto-pipelined on one connection that lives on an
    event loop (the sync queue's own; a private one when made standalone).

    Get the queue's with `queue.redis`, or make one: `SharedRedis("redis://...")`."""

    _is_async_client: Literal[False] = False
    _event_dispatcher: Any = None

    def __init__(self, connection: str | ConnectionSettings | None = None, *, decode_responses: bool = True,
                 loop: asyncio.AbstractEventLoop | None = None) -> None:  # fmt: skip
        self._own_thread = _LoopThread() if loop is None else None
        self._loop = loop or self._own_thread.loop  # type: ignore[union-attr]
        self.settings = ConnectionSettings.of(connection)
        self._cluster = self.settings.cluster  # its commands go to redis-py's cluster client
        self.decode_responses = decode_responses
        self._shared = AsyncSharedRedis(self.settings, decode_responses=decode_responses, loop=self._loop)
        self._lock = threading.Lock()
        self._inbox: list[tuple[bytes, str, dict[str, Any] | None, ThreadWaiter]] = []
        self._wake_queued = False
        self._pool: redis.Redis | None = None
        self.closed = False

    def __repr__(self) -> str:
        return f"<SharedRedis {self.settings.url}>"

    def __enter__(self) -> SharedRedis:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def execute_command(self, *args: Any, **options: Any) -> Any:
        """Hand the command to the loop (one wake-up for every thread's commands queued
        meanwhile) and block until its reply."""
        name = args[0].upper() if isinstance(args[0], str) else _name(args)
        if self._cluster or ((name in _SPECIAL or options) and _routed(name, args, options)):
            return self._pool_client().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        if asyncio._get_running_loop() is self._loop:
            raise LoopThreadError("a SharedRedis call was made on its own event loop; it would wait for itself "
                                  "(in async code use the AsyncSharedRedis)")  # fmt: skip
        packed = pack(args)
        waiter = ThreadWaiter()
        with self._lock:
            if self.closed:
                raise ClientClosedError(_CLOSED)
            self._inbox.append((packed, name, options or None, waiter))
            wake, self._wake_queued = not self._wake_queued, True
        if wake:
            self._loop.call_soon_threadsafe(self._drain)
        return waiter.wait()

    def _drain(self) -> None:
        with self._lock:
            inbox, self._inbox, self._wake_queued = self._inbox, [], False
        enqueue = self._shared.enqueue
        for packed, name, options, waiter in inbox:
            enqueue(packed, name, options, waiter)

    def get_encoder(self) -> Encoder:
        return Encoder("utf-8", "strict", self.decode_responses)  # type: ignore[no-untyped-call]

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Pipeline:
        """A redis-py pipeline (MULTI/EXEC, WATCH) on a connection of its own from the pool."""
        return self._pool_client().pipeline(transaction, shard_hint)

    def pubsub(self, **kwargs: Any) -> PubSub:
        pubsub: PubSub = self._pool_client().pubsub(**kwargs)  # type: ignore[no-untyped-call]
        return pubsub

    def _pool_client(self) -> redis.Redis:
        if self._pool is None:
            self._pool = self.settings.sync_client(max_connections=POOL_SIZE, decode=self.decode_responses)
        return self._pool

    def close(self) -> None:
        """Fail what is queued or unanswered with ClientClosedError and close the connection.
        Call it from a thread other than the loop's (the queue's shutdown() does)."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            inbox, self._inbox = self._inbox, []
        for *_, waiter in inbox:
            waiter.set_exception(ClientClosedError(_CLOSED))
        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self._shared.aclose(), self._loop).result(10)
        if self._pool is not None:
            self._pool.close()
        if self._own_thread is not None:
            self._own_thread.stop()
