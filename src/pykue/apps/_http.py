"""What the seed's HTTP services share: JSON for every error, Redis outages as 503."""

from __future__ import annotations

import asyncio
from collections import deque
from importlib import resources
from typing import Any

import hiredis
import redis.asyncio
from redis._parsers.base import BaseParser
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse


def lua(name: str) -> str:
    return (resources.files("pykue.apps") / "lua" / f"{name}.lua").read_text()


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    status = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, exc.detail)
    return JSONResponse({"status": status}, status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def redis_down(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"status": f"Redis unavailable: {exc}"}, status_code=503)


ERROR_HANDLERS: dict[Any, Any] = {
    HTTPException: http_error,
    RedisConnectionError: redis_down,
    RedisTimeoutError: redis_down,
    ConnectionRefusedError: redis_down,
}


def parse_id(raw: str) -> int | None:
    """A product id from the path: a plain non-negative integer, or None."""
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 10 else None


class _Link:
    """One live connection: commands written together once per loop pass, replies taken in order."""

    def __init__(self, conn: AbstractConnection) -> None:
        assert conn._reader is not None and conn._writer is not None
        self.conn, self.writer = conn, conn._writer
        self.loop = asyncio.get_running_loop()
        self.parser = hiredis.Reader(protocolError=InvalidResponse, replyError=BaseParser.parse_error)
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.out: list[bytes] = []
        self.error: RedisConnectionError | None = None
        self.reading = asyncio.create_task(self._read(conn._reader))

    def send(self, packed: bytes) -> asyncio.Future[Any]:
        if self.error is not None:
            raise self.error
        if not self.out:
            self.loop.call_soon(self._flush)
        self.out.append(packed)
        fut = self.loop.create_future()
        self.waiting.append(fut)
        return fut

    def _flush(self) -> None:
        if self.error is None and self.out:
            self.writer.write(b"".join(self.out))
        self.out.clear()

    async def _read(self, stream: asyncio.StreamReader) -> None:
        try:
            while data := await stream.read(1 << 16):
                self.parser.feed(data)
                while (reply := self.parser.gets()) is not False:
                    self._answer(self.waiting.popleft(), reply)
            raise RedisConnectionError("Connection closed by server.")
        except RedisError as exc:
            self._fail(exc)
        except Exception as exc:  # a reset socket, or a reply nobody waits for: never leave a waiter hanging
            self._fail(RedisConnectionError(f"Error reading from Redis: {exc!r}"))
        await self.conn.disconnect(nowait=True)

    @staticmethod
    def _answer(fut: asyncio.Future[Any], reply: Any) -> None:
        if fut.done():  # its request was cancelled
            return
        if isinstance(reply, Exception):
            fut.set_exception(reply)
        else:
            fut.set_result(reply)

    def _fail(self, exc: RedisError) -> None:
        """Every command in flight fails: each may or may not have run, so none is sent again."""
        self.error = exc if isinstance(exc, RedisConnectionError) else RedisConnectionError(str(exc))
        while self.waiting:
            fut = self.waiting.popleft()
            if not fut.done():
                fut.set_exception(exc)
        self.out.clear()

    async def close(self) -> None:
        self.reading.cancel()
        await self.conn.disconnect()


class PipelinedRedis:
    """The commands of every request in flight on one connection, written together once per
    event-loop pass and answered in order, as ioredis does: one write and one read serve all of
    them, where a pooled redis-py call costs a connection checkout, a timeout and its own system
    calls (profiled: ~140 us of the stock service's CPU per reservation). redis-py makes the
    connection from the client's pool settings (TLS, AUTH, SELECT, unix socket). A lost connection
    fails the commands in flight with ConnectionError and retries none (a reservation whose reply
    was lost may have happened); the next command reconnects."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self._pool = client.connection_pool
        self._link: _Link | None = None
        self._connecting = asyncio.Lock()

    async def execute(self, *args: str | int | bytes) -> Any:
        link = self._link
        if link is None or link.error is not None:
            link = await self._connect()
        return await link.send(hiredis.pack_command(args))  # type: ignore[arg-type]  # its stub takes 1-tuples

    async def _connect(self) -> _Link:
        async with self._connecting:
            if self._link is None or self._link.error is not None:
                conn = self._pool.make_connection()  # type: ignore[no-untyped-call]
                await conn.connect()
                self._link = _Link(conn)
            return self._link

    async def aclose(self) -> None:
        if self._link is not None:
            await self._link.close()
            self._link = None
