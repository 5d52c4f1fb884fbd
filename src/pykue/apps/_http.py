"""What the seed's HTTP services share: JSON for every error, Redis outages as 503."""

from __future__ import annotations

from importlib import resources
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
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
