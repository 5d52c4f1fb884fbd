"""Seed task 13 (100-seat.js): seat reservations through the queue, on port 1245.

    pykue seats [--port 1245] [--redis URL | --embedded] [--prefix q]

`available_seats` is set to 50 at start-up. Reservations are `reserve_seat` jobs on the
pykue queue (so Node Kue and the dashboard see them); /process works them. Taking a seat
is one Lua call, so never more than 50 reservations succeed, whatever the number of
workers or server processes; the "reservations enabled" flag lives in Redis too.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import redis.asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import pykue
from pykue._core import async_client

from ._http import ERROR_HANDLERS, lua

SEATS_KEY = "available_seats"
ENABLED_KEY = "reservation_enabled"
JOB_TYPE = "reserve_seat"
INITIAL_SEATS = 50


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Seats:
    """The seed's Redis functions, on one client."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.client = client
        self._take = client.register_script(lua("take_seat"))

    async def reserve_seat(self, number: int) -> None:
        await self.client.set(SEATS_KEY, number)

    async def get_current_available_seats(self) -> str | None:
        return cast(str | None, await self.client.get(SEATS_KEY))

    async def reservation_enabled(self) -> bool:
        return await self.client.get(ENABLED_KEY) != "0"

    async def reset(self, seats: int = INITIAL_SEATS) -> None:
        await self.client.mset({SEATS_KEY: seats, ENABLED_KEY: "1"})

    async def take_one(self) -> int:
        return int(await self._take(keys=[SEATS_KEY, ENABLED_KEY]))


def create_app(redis_url: str, prefix: str = "q", concurrency: int = 1, seats: int = INITIAL_SEATS) -> Starlette:
    client = async_client(redis_url)
    store = Seats(client)
    queue = pykue.create_async_queue(redis_url, prefix=prefix)
    processing: list[Any] = []

    async def available(request: Request) -> JSONResponse:
        return JSONResponse({"numberOfAvailableSeats": await store.get_current_available_seats()})

    async def reserve(request: Request) -> JSONResponse:
        if not await store.reservation_enabled():
            return JSONResponse({"status": "Reservation are blocked"})
        job = queue.create(JOB_TYPE, {})
        job.on("complete", lambda: say(f"Seat reservation job {job.id} completed"))
        job.on("failed", lambda err: say(f"Seat reservation job {job.id} failed: {err}"))
        try:
            await job.save()
        except Exception as exc:  # the seed answers, whatever went wrong
            say(f"Seat reservation job could not be saved: {exc}")
            return JSONResponse({"status": "Reservation failed"})
        return JSONResponse({"status": "Reservation in process"})

    async def reserve_one_seat(job: pykue.AsyncJob) -> None:
        if await store.take_one() < 0:
            raise pykue.PykueError("Not enough seats available")

    async def process(request: Request) -> JSONResponse:
        if not processing:
            processing.append(await queue.process(JOB_TYPE, concurrency, reserve_one_seat))
        return JSONResponse({"status": "Queue processing"})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.reset(seats)
        await queue.listen()
        yield
        await queue.shutdown()
        await client.aclose()

    app = Starlette(
        routes=[
            Route("/available_seats", available),
            Route("/reserve_seat", reserve),
            Route("/process", process),
        ],
        exception_handlers=ERROR_HANDLERS,
        lifespan=lifespan,
    )
    app.state.seats, app.state.queue = store, queue
    return app
