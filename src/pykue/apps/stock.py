"""Seed task 12 (9-stock.js): the stock service on port 1245.

    pykue stock [--port 1245] [--redis URL | --embedded]

Reserved quantities live in Redis under `item.ITEM_ID`; a reservation is one Lua call,
so concurrent requests never confirm more than the stock. Every error is JSON; a reservation
is GET only (a HEAD, which clients and proxies send freely, must not reserve).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio
from redis.exceptions import NoScriptError, RedisError, ResponseError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pykue.connection import async_client

from ._http import ERROR_HANDLERS, PipelinedRedis, lua, parse_id

list_products: list[dict[str, Any]] = [
    {"id": 1, "name": "Suitcase 250", "price": 50, "stock": 4},
    {"id": 2, "name": "Suitcase 450", "price": 100, "stock": 10},
    {"id": 3, "name": "Suitcase 650", "price": 350, "stock": 2},
    {"id": 4, "name": "Suitcase 1050", "price": 550, "stock": 5},
]
NOT_FOUND = {"status": "Product not found"}


def get_item_by_id(item_id: int | None) -> dict[str, Any] | None:
    return next((p for p in list_products if p["id"] == item_id), None)


def as_json(item: dict[str, Any]) -> dict[str, Any]:
    return {"itemId": item["id"], "itemName": item["name"], "price": item["price"],
            "initialAvailableQuantity": item["stock"]}  # fmt: skip


class Stock:
    """The seed's Redis functions. On a single Redis every call goes through one pipelined
    connection (PipelinedRedis); a cluster client is called as it is."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.client = client
        self._pipe = PipelinedRedis(client) if isinstance(client, redis.asyncio.Redis) else None
        self._script = lua("reserve_stock")
        self._sha = hashlib.sha1(self._script.encode()).hexdigest()

    async def _call(self, *args: str | int) -> Any:
        if self._pipe is None:
            return await self.client.execute_command(*args)
        return await self._pipe.execute(*args)

    async def reserve_stock_by_id(self, item_id: int, stock: int) -> None:
        await self._call("SET", f"item.{item_id}", stock)

    async def get_current_reserved_stock_by_id(self, item_id: int) -> int:
        return int(await self._call("GET", f"item.{item_id}") or 0)

    async def reserve_one(self, item: dict[str, Any]) -> int:
        """Atomically reserve one unit; the quantity left, or -1 if none was."""
        key, initial = f"item.{item['id']}", item["stock"]
        try:
            return int(await self._call("EVALSHA", self._sha, 1, key, initial))
        except NoScriptError:  # Redis restarted or flushed its scripts: the script did not run
            return int(await self._call("EVAL", self._script, 1, key, initial))

    async def aclose(self) -> None:
        if self._pipe is not None:
            await self._pipe.aclose()
        await self.client.aclose()


async def redis_failed(request: Request, exc: Exception) -> JSONResponse:
    """A Redis refusal (wrong type under item.N, out of memory, ...): JSON, never a traceback."""
    status = 500 if isinstance(exc, ResponseError) and "OOM" not in str(exc) else 503
    return JSONResponse({"status": f"Redis error: {exc}"}, status_code=status)


async def internal_error(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"status": f"Internal error: {type(exc).__name__}"}, status_code=500)


HANDLERS: dict[Any, Any] = {RedisError: redis_failed, **ERROR_HANDLERS, Exception: internal_error}


def rendered(content: Any) -> bytes:
    """Starlette's own JSON rendering, done once for the answers that never change."""
    return bytes(JSONResponse(content).body)


def json_bytes(body: bytes, status_code: int = 200) -> Response:
    return Response(body, status_code=status_code, media_type="application/json")


def create_app(redis_url: str) -> Starlette:
    client = async_client(redis_url)
    stock = Stock(client)
    listing = rendered([as_json(p) for p in list_products])
    confirmed = {p["id"]: rendered({"status": "Reservation confirmed", "itemId": p["id"]}) for p in list_products}
    sold_out = {p["id"]: rendered({"status": "Not enough stock available", "itemId": p["id"]}) for p in list_products}

    async def products(request: Request) -> Response:
        return json_bytes(listing)

    async def product(request: Request) -> JSONResponse:
        item = get_item_by_id(parse_id(request.path_params["item_id"]))
        if item is None:
            return JSONResponse(NOT_FOUND, status_code=404)
        reserved = await stock.get_current_reserved_stock_by_id(item["id"])
        return JSONResponse({**as_json(item), "currentQuantity": max(0, item["stock"] - reserved)})

    async def reserve(request: Request) -> Response:
        if request.method != "GET":  # Starlette answers HEAD with the GET handler: that would reserve
            return JSONResponse({"status": "Method not allowed"}, status_code=405, headers={"Allow": "GET"})
        item = get_item_by_id(parse_id(request.path_params["item_id"]))
        if item is None:
            return JSONResponse(NOT_FOUND, status_code=404)
        return json_bytes(sold_out[item["id"]] if await stock.reserve_one(item) < 0 else confirmed[item["id"]])

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await stock.aclose()

    app = Starlette(
        routes=[
            Route("/list_products", products),
            Route("/list_products/{item_id}", product),
            Route("/reserve_product/{item_id}", reserve),
        ],
        exception_handlers=HANDLERS,
        lifespan=lifespan,
    )
    app.state.stock = stock
    return app
