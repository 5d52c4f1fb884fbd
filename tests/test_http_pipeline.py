"""The stock service's pipelined Redis connection: every reply to its own request, losses surfaced."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from pykue.apps._http import PipelinedRedis
from pykue.apps.stock import Stock
from pykue.connection import async_client


def run(url: str, body: Callable[[PipelinedRedis], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        client = async_client(url)
        pipe = PipelinedRedis(client)
        try:
            return await body(pipe)
        finally:
            await pipe.aclose()
            await client.aclose()

    return asyncio.run(main())


def test_concurrent_commands_share_one_connection_and_each_gets_its_own_reply(url: str) -> None:
    async def body(pipe: PipelinedRedis) -> tuple[list[Any], set[Any]]:
        echoes = await asyncio.gather(*(pipe.execute("ECHO", str(i)) for i in range(500)))
        ids = await asyncio.gather(*(pipe.execute("CLIENT", "ID") for _ in range(50)))
        return echoes, set(ids)

    echoes, ids = run(url, body)
    assert echoes == [str(i).encode() for i in range(500)]
    assert len(ids) == 1


def test_an_error_reply_fails_only_its_own_command(url: str, prefix: str, r: redis.Redis) -> None:
    r.set(f"{prefix}:text", "not a number")

    async def outcome(call: Awaitable[Any]) -> tuple[str, Any]:
        try:
            return "ok", await call
        except ResponseError as exc:
            return "raised", str(exc)

    async def body(pipe: PipelinedRedis) -> list[tuple[str, Any]]:
        keys = [f"{prefix}:n" if i % 3 else f"{prefix}:text" for i in range(30)]
        return await asyncio.gather(*(outcome(pipe.execute("INCR", key)) for key in keys))

    replies = run(url, body)
    assert replies[::3] == [("raised", "value is not an integer or out of range")] * 10
    assert [x for i, x in enumerate(replies) if i % 3] == [("ok", n) for n in range(1, 21)]


def test_a_lost_connection_fails_the_commands_in_flight_and_the_next_one_reconnects(
    url: str, prefix: str, r: redis.Redis
) -> None:
    async def body(pipe: PipelinedRedis) -> tuple[list[Any], Any, Any]:
        first = await pipe.execute("CLIENT", "ID")
        blocked = asyncio.ensure_future(pipe.execute("BLPOP", f"{prefix}:never", 30))  # holds the connection
        behind = [asyncio.ensure_future(pipe.execute("ECHO", "x")) for _ in range(5)]
        await asyncio.sleep(0)  # let the batch be written
        while not any(c["id"] == str(first) and c["cmd"] == "blpop" for c in r.client_list()):
            await asyncio.sleep(0.01)
        r.client_kill_filter(_id=str(first))
        lost = await asyncio.wait_for(asyncio.gather(blocked, *behind, return_exceptions=True), 10)
        return lost, first, await pipe.execute("CLIENT", "ID")

    lost, first, again = run(url, body)
    assert all(isinstance(x, RedisConnectionError) for x in lost), lost
    assert again != first


def test_a_reservation_survives_a_script_flush(url: str, prefix: str, r: redis.Redis) -> None:
    item = {"id": prefix, "stock": 2}

    async def main() -> list[int]:
        stock = Stock(async_client(url))
        try:
            left = [await stock.reserve_one(item)]
            r.script_flush()
            left += [await stock.reserve_one(item), await stock.reserve_one(item)]
            return left
        finally:
            await stock.aclose()

    assert asyncio.run(main()) == [1, 0, -1]
    assert r.get(f"item.{prefix}") == "2"
