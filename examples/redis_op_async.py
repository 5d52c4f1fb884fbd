"""Seed task 3 (2-redis_op_async.js): the same with asyncio (the seed's promisify + await)."""

from __future__ import annotations

import asyncio

import redis.asyncio

from _connect import REDIS_URL


async def main() -> None:
    client = redis.asyncio.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        await client.ping()
    except redis.ConnectionError as exc:
        print(f"Redis client not connected to the server: {exc}", flush=True)
        return
    print("Redis client connected to the server", flush=True)

    async def set_new_school(school_name: str, value: str) -> None:
        print(f"Reply: {'OK' if await client.set(school_name, value) else 'nil'}", flush=True)

    async def display_school_value(school_name: str) -> None:
        print(await client.get(school_name), flush=True)

    await display_school_value("Holberton")
    await set_new_school("HolbertonSanFrancisco", "100")
    await display_school_value("HolbertonSanFrancisco")
    await client.aclose()


if __name__ == "__main__":
    asyncio.run(main())
