"""The stock service's Redis side: reservations in flight share one write, scripts survive a flush."""

from __future__ import annotations

import asyncio

import redis

from pykue import AsyncSharedRedis
from pykue.apps._http import lua
from pykue.apps.stock import Stock


def test_reservations_in_flight_go_out_in_one_write_and_each_gets_its_own_answer(
    url: str, prefix: str, r: redis.Redis
) -> None:
    item = {"id": prefix, "stock": 30}
    r.script_load(lua("reserve_stock"))  # else the first write's NOSCRIPT answers bring a second one

    async def main() -> tuple[list[int], int]:
        client = AsyncSharedRedis(url)
        try:
            left = await asyncio.gather(*(Stock(client).reserve_one(item) for _ in range(40)))
            return left, client.writes
        finally:
            await client.aclose()

    left, writes = asyncio.run(main())
    assert left == [*range(29, -1, -1), *[-1] * 10]
    assert writes == 1


def test_a_reservation_survives_a_script_flush(url: str, prefix: str, r: redis.Redis) -> None:
    item = {"id": prefix, "stock": 2}

    async def main() -> list[int]:
        client = AsyncSharedRedis(url)
        stock = Stock(client)
        try:
            left = [await stock.reserve_one(item)]
            r.script_flush()
            left += [await stock.reserve_one(item), await stock.reserve_one(item)]
            return left
        finally:
            await client.aclose()

    assert asyncio.run(main()) == [1, 0, -1]
    assert r.get(f"item.{prefix}") == "2"
