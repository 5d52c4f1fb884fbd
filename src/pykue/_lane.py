"""How a producer's enqueue call reaches Redis (issue 13: one round trip per save, and as
little client work around it as redis-py allows).

`Lane` (sync) runs it as every script call runs (`Scripts.run`: one EVALSHA packed by
hiredis on a pooled connection). `AsyncLane` keeps a connection of the pool for the queue's
saves while no other save is using it (a save made meanwhile runs as any script call):
redis.asyncio's pool hand-out (a condition, a timeout scope, observability hooks) and its
send (a task per write, for the write timeout) cost more CPU than the save's own work. The
kept connection is checked before each use as the pool checks one it hands out (a
connection the server closed is replaced before anything is sent on it); a small command is
written on it directly (the transport takes it without blocking) and the reply is read
under the connection's read timeout. Anything that goes wrong on it (an error, a
cancellation half-way) disconnects it, as redis-py does, so no reply is left unread for the
next save. The EVALSHA is packed by `_scripts._packed`, the one packer.
"""

from __future__ import annotations

from typing import Any, TypeVar

from redis.exceptions import ConnectionError, NoScriptError, ResponseError, TimeoutError

from . import _scripts as sc

T = TypeVar("T")

# Commands up to this size are written on the kept connection directly (a save is ~1 kB);
# bigger ones (save_many's batches) go through send_packed_command and its write timeout.
DIRECT_BYTES = 16 * 1024


class Lane:
    """Sync: as every script call (the sync pool's hand-out is cheap; keeping a connection
    measured no better)."""

    def run(self, scripts: sc.Scripts, call: sc.Call[T]) -> T:
        return scripts.run(call)


class AsyncLane:
    def __init__(self) -> None:
        self.kept: Any = None
        self.busy = False

    async def run(self, scripts: sc.AsyncScripts, call: sc.Call[T]) -> T:
        script = scripts._s[call.script]
        client = script.registered_client
        if self.busy or not sc._direct(client):
            return await scripts.run(call)
        self.busy = True
        try:
            raw = await self._kept_call(client.connection_pool, script, call)
        finally:
            self.busy = False
        return sc._outcome(call, raw)

    async def _kept_call(self, pool: Any, script: Any, call: sc.Call[Any]) -> Any:
        if self.kept is None:
            self.kept = await pool.get_connection()
        else:
            await _ready(self.kept)
        conn = self.kept
        try:
            return await conn.retry.call_with_retry(lambda: _send(conn, script, call), lambda _: conn.disconnect())
        except ResponseError as exc:
            sc._raise_oom(exc)  # the reply was read whole: the connection is fine
            raise
        except BaseException:
            self.kept = None  # whatever it holds (half a command, a reply) goes with it
            await conn.disconnect(nowait=True)
            await pool.release(conn)
            raise


async def _ready(conn: Any) -> None:
    """What the pool checks when it hands a connection out: connected, and nothing to read
    (a reply left over, or the server's close), else connected again."""
    await conn.connect()
    try:
        if await conn.can_read():
            raise ConnectionError("Connection has data")
    except (ConnectionError, TimeoutError, OSError):
        await conn.disconnect()
        await conn.connect()
        if await conn.can_read():
            raise ConnectionError("Connection not ready") from None


async def _send(conn: Any, script: Any, call: sc.Call[Any]) -> Any:
    """As _scripts' async send, NOSCRIPT included (load, send again: the script ran not at
    all), with the direct write."""
    await _write(conn, sc._packed(conn, script.sha, call))
    try:
        return await conn.read_response()
    except NoScriptError:
        await conn.send_command("SCRIPT", "LOAD", script.script)
        script.sha = sc._loaded_sha(await conn.read_response())
        await _write(conn, sc._packed(conn, script.sha, call))
        return await conn.read_response()


async def _write(conn: Any, packed: bytes) -> None:
    writer = getattr(conn, "_writer", None)
    if writer is None or not conn.is_connected or conn.health_check_interval or len(packed) > DIRECT_BYTES:
        await conn.send_packed_command([packed])
        return
    try:
        writer.write(packed)
        await writer.drain()
    except OSError as exc:
        await conn.disconnect(nowait=True)
        raise ConnectionError(f"Error while writing to socket: {exc}") from exc
