"""How a producer's enqueue command reaches Redis (issue 13: one round trip per save, and as
little client work around it as redis-py allows).

`Lane` (sync) and `AsyncLane` send one pre-packed command on a connection of the client's own
pool, retried as redis-py retries its commands (the connection's `Retry`, which reconnects).
The asyncio one keeps a connection of the pool for itself while no other save is using it
(checked before each use as the pool checks one it hands out): redis.asyncio's pool hand-out
(a condition, a timeout scope, observability hooks) and its send (a task per write, for the
write timeout) cost more CPU than the save's own work. A small command is written on that
connection directly: the transport takes it without blocking, and the reply is still read
under the connection's read timeout.
Anything that goes wrong on the kept connection (an error, a cancellation half-way)
disconnects it, as redis-py does, so no reply is left unread for the next save. A cluster
client, or one bound to a single connection, routes the command itself.
"""

from __future__ import annotations

from typing import Any

from redis.exceptions import ConnectionError, ResponseError, TimeoutError

try:
    import hiredis

    HIREDIS_PACK: Any = hiredis.pack_command
except ImportError:  # pragma: no cover - a dependency (redis[hiredis]); packing falls back
    HIREDIS_PACK = None

# Commands up to this size are written on the kept connection directly (a save is ~1 kB);
# bigger ones (save_many's batches) go through send_packed_command and its write timeout.
DIRECT_BYTES = 16 * 1024


def pack_command(conn: Any, command: tuple[Any, ...]) -> list[bytes]:
    """The command in Redis's protocol: by hiredis (C) when it is installed, as redis-py's
    sync client does; else by the connection (redis.asyncio packs in Python, per argument)."""
    if HIREDIS_PACK is None:
        return list(conn.pack_command(*command))
    return [HIREDIS_PACK(command)]


def _pool_of(client: Any) -> Any:
    if getattr(client, "connection", None) is not None:
        return None
    return getattr(client, "connection_pool", None)


class Lane:
    """Sync: a connection from the pool per command (the pool is shared by threads, and its
    hand-out is cheap next to redis.asyncio's; keeping one measured no better)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.pool = _pool_of(client)

    def run(self, command: tuple[Any, ...]) -> Any:
        if self.pool is None:
            return self.client.execute_command(*command)
        conn = self.pool.get_connection()
        try:
            packed = pack_command(conn, command)
            return conn.retry.call_with_retry(lambda: _round_trip(conn, packed), lambda _: conn.disconnect())
        finally:
            self.pool.release(conn)


def _round_trip(conn: Any, packed: list[bytes]) -> Any:
    conn.send_packed_command(packed)
    return conn.read_response()


class AsyncLane:
    """asyncio: a connection of the pool kept for saves, one save at a time on it; a save
    made while another is in flight takes a connection from the pool as usual."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.pool = _pool_of(client)
        self.kept: Any = None
        self.busy = False

    async def run(self, command: tuple[Any, ...]) -> Any:
        if self.pool is None:
            return await self.client.execute_command(*command)
        if self.busy:
            return await self._pooled(command)
        self.busy = True
        try:
            if self.kept is None:
                self.kept = await self.pool.get_connection()
            else:
                await _async_ready(self.kept)
            conn = self.kept
            packed = pack_command(conn, command)
            try:
                return await conn.retry.call_with_retry(lambda: _async_round_trip(conn, packed),
                                                        lambda _: conn.disconnect())  # fmt: skip
            except ResponseError:
                raise  # the reply was read whole: the connection is fine
            except BaseException:
                self.kept = None  # whatever it holds (half a command, a reply) goes with it
                await conn.disconnect(nowait=True)
                await self.pool.release(conn)
                raise
        finally:
            self.busy = False

    async def _pooled(self, command: tuple[Any, ...]) -> Any:
        conn = await self.pool.get_connection()
        try:
            packed = pack_command(conn, command)
            return await conn.retry.call_with_retry(lambda: _async_round_trip(conn, packed),
                                                    lambda _: conn.disconnect())  # fmt: skip
        finally:
            await self.pool.release(conn)


async def _async_ready(conn: Any) -> None:
    await conn.connect()
    try:
        if await conn.can_read():
            raise ConnectionError("Connection has data")
    except (ConnectionError, TimeoutError, OSError):
        await conn.disconnect()
        await conn.connect()
        if await conn.can_read():
            raise ConnectionError("Connection not ready") from None


async def _async_round_trip(conn: Any, packed: list[bytes]) -> Any:
    writer = getattr(conn, "_writer", None)
    if writer is None or not conn.is_connected or conn.health_check_interval or sum(map(len, packed)) > DIRECT_BYTES:
        await conn.send_packed_command(packed)
    else:
        try:
            writer.writelines(packed)
            await writer.drain()
        except OSError as exc:
            await conn.disconnect(nowait=True)
            raise ConnectionError(f"Error while writing to socket: {exc}") from exc
    return await conn.read_response()
