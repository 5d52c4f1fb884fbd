"""Seed task 12 (9-stock.js): the stock service on port 1245.

    pykue stock [--port 1245] [--redis URL | --embedded]

Reserved quantities live in Redis under `item.ITEM_ID`; a reservation is one Lua call,
so concurrent requests never confirm more than the stock. The requests in flight share one
auto-pipelined Redis connection (AsyncSharedRedis), the answers that never change are rendered once.
Every error is JSON; a reservation is GET only (a HEAD, which clients and proxies send freely,
must not reserve).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from redis.exceptions import NoScriptError, RedisError, ResponseError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pykue import AsyncSharedRedis

from ._http import ERROR_HANDLERS, lua, parse_id

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
    """The seed's Redis functions on pykue's shared auto-pipelined client: the requests in flight
    share one connection and their commands go out together, one write per loop pass (a pooled
    redis-py call cost the server ~140 us per reservation, profiled)."""

    def __init__(self, client: AsyncSharedRedis) -> None:
        self.client = client
        # Not register_script: redis-py's Script wrapper cost ~8 us of the server's ~60 per
        # reservation (A/B with bench/bench_http.py); the EVALSHA and its NOSCRIPT fallback are here.
        self._script = lua("reserve_stock")
        self._sha = hashlib.sha1(self._script.encode()).hexdigest()

    async def reserve_stock_by_id(self, item_id: int, stock: int) -> None:
        await self.client.set(f"item.{item_id}", stock)

    async def get_current_reserved_stock_by_id(self, item_id: int) -> int:
        return int(await self.client.get(f"item.{item_id}") or 0)

    async def reserve_one(self, item: dict[str, Any]) -> int:
        """Atomically reserve one unit; the quantity left, or -1 if none was."""
        key, initial = f"item.{item['id']}", item["stock"]
        try:
            return int(await self.client.execute_command("EVALSHA", self._sha, 1, key, initial))
        except NoScriptError:  # Redis restarted or flushed its scripts: the script did not run
            return int(await self.client.execute_command("EVAL", self._script, 1, key, initial))


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


def json_bytes(body: bytes) -> Response:
    return Response(body, media_type="application/json")


def create_app(redis_url: str) -> Starlette:
    client = AsyncSharedRedis(redis_url)
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
        await client.aclose()

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
