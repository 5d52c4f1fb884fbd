"""Seed task 13 (100-seat.js): seat reservations through the queue, on port 1245.

    pykue seats [--port 1245] [--redis URL | --embedded] [--prefix q] [--reset]

The first server of a fleet (the servers on one Redis) sets `available_seats` to 50 and
enables reservations, as the seed's launch does; a server that joins a live fleet keeps the
count, so starting a third process never sells the seats again. Each server keeps a
heartbeat in `seat_servers`; `--reset` sets the seats anyway. Reservations are `reserve_seat`
jobs on the pykue queue (so Node Kue and the dashboard see them); /process works them.
Taking a seat is one Lua call, so never more than 50 reservations succeed, whatever the
number of workers or server processes; the "reservations enabled" flag lives in Redis too.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import redis.asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import pykue
from pykue.connection import async_client

from ._http import ERROR_HANDLERS, lua

SEATS_KEY = "available_seats"
ENABLED_KEY = "reservation_enabled"
SERVERS_KEY = "seat_servers"
JOB_TYPE = "reserve_seat"
INITIAL_SEATS = 50
HEARTBEAT_MS = 5000


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Seats:
    """The seed's Redis functions, on one client."""

    def __init__(self, client: redis.asyncio.Redis, heartbeat_ms: int = HEARTBEAT_MS) -> None:
        self.client = client
        self.server_id = uuid.uuid4().hex
        self.heartbeat_ms = heartbeat_ms
        self._take = client.register_script(lua("take_seat"))
        self._fleet = client.register_script(lua("seat_fleet"))

    async def reserve_seat(self, number: int) -> None:
        await self.client.set(SEATS_KEY, number)

    async def get_current_available_seats(self) -> str | None:
        return cast(str | None, await self.client.get(SEATS_KEY))

    async def reservation_enabled(self) -> bool:
        return await self.client.get(ENABLED_KEY) != "0"

    async def reset(self, seats: int = INITIAL_SEATS) -> None:
        await self.client.mset({SEATS_KEY: seats, ENABLED_KEY: "1"})

    async def join(self, seats: int = INITIAL_SEATS, force: bool = False) -> bool:
        """Join the fleet; the first server (or force) sets the seats. True when it did."""
        return await self._beat("reset" if force else "join", seats) == 1

    async def heartbeat(self) -> None:
        """Beat until cancelled, a third of the TTL apart; a missed beat (Redis down) is retried."""
        while True:
            await asyncio.sleep(self.heartbeat_ms / 3000)
            with contextlib.suppress(redis.RedisError):
                await self._beat("beat", 0)

    async def leave(self) -> None:
        with contextlib.suppress(redis.RedisError):
            await self.client.zrem(SERVERS_KEY, self.server_id)

    async def _beat(self, mode: str, seats: int) -> int:
        keys = [SERVERS_KEY, SEATS_KEY, ENABLED_KEY]
        return int(await self._fleet(keys=keys, args=[self.server_id, self.heartbeat_ms, seats, mode]))

    async def take_one(self) -> int:
        return int(await self._take(keys=[SEATS_KEY, ENABLED_KEY]))


def create_app(redis_url: str, prefix: str = "q", concurrency: int = 1, seats: int = INITIAL_SEATS,
               reset: bool = False, heartbeat_ms: int = HEARTBEAT_MS) -> Starlette:  # fmt: skip
    client = async_client(redis_url)
    store = Seats(client, heartbeat_ms)
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
        app.state.set_seats = await store.join(seats, force=reset)
        beating = asyncio.create_task(store.heartbeat())
        await queue.listen()
        yield
        beating.cancel()
        await store.leave()
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
