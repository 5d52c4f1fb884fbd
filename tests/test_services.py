"""Seed tasks 12 and 13 as real HTTP services over a real Redis: bodies, atomicity, outages."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
import redis

from pykue import EmbeddedRedis
from tests.helpers import wait_for
from tests.services import Service

PRODUCTS = ('[{"itemId":1,"itemName":"Suitcase 250","price":50,"initialAvailableQuantity":4},'
            '{"itemId":2,"itemName":"Suitcase 450","price":100,"initialAvailableQuantity":10},'
            '{"itemId":3,"itemName":"Suitcase 650","price":350,"initialAvailableQuantity":2},'
            '{"itemId":4,"itemName":"Suitcase 1050","price":550,"initialAvailableQuantity":5}]')  # fmt: skip


@pytest.fixture
def fresh() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as srv:
        yield srv


@pytest.fixture
def stock(fresh: EmbeddedRedis) -> Iterator[Service]:
    svc = Service("stock", fresh.url)
    yield svc
    svc.stop()


def test_stock_bodies_exactly_as_the_seed(stock: Service) -> None:
    assert stock.get("/list_products").text == PRODUCTS
    r = stock.get("/list_products/1")
    assert r.text == ('{"itemId":1,"itemName":"Suitcase 250","price":50,"initialAvailableQuantity":4,'
                      '"currentQuantity":4}')  # fmt: skip
    assert r.headers["content-type"] == "application/json"
    for path in ("/list_products/12", "/reserve_product/12", "/list_products/abc", "/list_products/-1",
                 "/reserve_product/1.5"):  # fmt: skip
        resp = stock.get(path)
        assert (resp.status_code, resp.text) == (404, '{"status":"Product not found"}'), path
    assert stock.get("/reserve_product/3").text == '{"status":"Reservation confirmed","itemId":3}'
    assert stock.get("/reserve_product/3").text == '{"status":"Reservation confirmed","itemId":3}'
    assert stock.get("/reserve_product/3").text == '{"status":"Not enough stock available","itemId":3}'
    assert stock.get("/list_products/3").json()["currentQuantity"] == 0


def test_stock_errors_are_json(stock: Service) -> None:
    r = stock.get("/nope")
    assert (r.status_code, r.json()) == (404, {"status": "Not found"})
    r = httpx.post(stock.base + "/list_products")
    assert (r.status_code, r.json()) == (405, {"status": "Method not allowed"})


def test_two_hundred_concurrent_reservations_confirm_exactly_the_stock(stock: Service, fresh: EmbeddedRedis) -> None:
    async def hammer() -> list[str]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(base_url=stock.base, limits=limits, timeout=30) as client:
            replies = await asyncio.gather(*(client.get("/reserve_product/1") for _ in range(200)))
        return [r.json()["status"] for r in replies]

    counts = Counter(asyncio.run(hammer()))
    assert counts == {"Reservation confirmed": 4, "Not enough stock available": 196}
    assert stock.get("/list_products/1").json()["currentQuantity"] == 0
    assert redis.Redis.from_url(fresh.url).get("item.1") == b"4"


def test_stock_says_503_while_redis_is_down_and_recovers() -> None:
    srv = EmbeddedRedis(persist=True).start()
    svc = Service("stock", srv.url)
    try:
        assert svc.get("/reserve_product/2").json()["status"] == "Reservation confirmed"
        srv.stop(save=True)
        r = svc.get("/list_products/2")
        assert r.status_code == 503 and r.json()["status"].startswith("Redis unavailable")
        assert svc.get("/list_products").status_code == 200  # needs no Redis
        srv.start()
        wait_for(lambda: svc.get("/list_products/2").status_code == 200, what="recovery")
        assert svc.get("/list_products/2").json()["currentQuantity"] == 9
    finally:
        svc.stop()
        srv.close()


def test_seat_flow_never_sells_more_than_fifty(fresh: EmbeddedRedis) -> None:
    a = Service("seats", fresh.url)
    b = Service("seats", fresh.url)  # a second server process on the same Redis
    try:
        assert a.get("/available_seats").text == '{"numberOfAvailableSeats":"50"}'
        for i in range(60):
            assert (a if i % 2 else b).get("/reserve_seat").text == '{"status":"Reservation in process"}'
        assert a.get("/process").text == '{"status":"Queue processing"}'
        assert b.get("/process").text == '{"status":"Queue processing"}'  # two workers now
        q = redis.Redis.from_url(fresh.url, decode_responses=True)
        wait_for(lambda: q.zcard("q:jobs:reserve_seat:complete") + q.zcard("q:jobs:reserve_seat:failed") == 60,
                 timeout=30, what="all 60 jobs settled")  # fmt: skip
        assert q.zcard("q:jobs:reserve_seat:complete") == 50 and q.zcard("q:jobs:reserve_seat:failed") == 10
        assert a.get("/available_seats").json() == {"numberOfAvailableSeats": "0"}
        for svc in (a, b):
            assert svc.get("/reserve_seat").text == '{"status":"Reservation are blocked"}'
        wait_for(lambda: len([ln for ln in a.lines + b.lines if ln.startswith("Seat reservation job")]) == 60,
                 what="console lines")  # fmt: skip
    finally:
        a.stop()
        b.stop()
    lines = [ln for ln in a.lines + b.lines if ln.startswith("Seat reservation job")]
    assert sum(ln.endswith(" completed") for ln in lines) == 50
    assert sum(ln.endswith(" failed: Not enough seats available") for ln in lines) == 10
    failed_ids = sorted(int(ln.split()[3]) for ln in lines if "failed" in ln)
    assert all(json.loads(q.hget(f"q:job:{i}", "attempts") or "0") == 1 for i in failed_ids)


BLOCKED = '{"status":"Reservation are blocked"}'


def settled(r: redis.Redis) -> int:
    return int(r.zcard("q:jobs:reserve_seat:complete")) + int(r.zcard("q:jobs:reserve_seat:failed"))


def test_a_third_seat_server_joining_a_live_fleet_never_sells_the_seats_again(fresh: EmbeddedRedis) -> None:
    """Every start used to reset the seats to 50: a third process let 100 reservations complete."""
    r = redis.Redis.from_url(fresh.url, decode_responses=True)
    a, b = Service("seats", fresh.url), Service("seats", fresh.url)
    servers = [a, b]
    try:
        for i in range(60):
            assert (a if i % 2 else b).get("/reserve_seat").text == '{"status":"Reservation in process"}'
        a.get("/process")
        b.get("/process")
        wait_for(lambda: settled(r) == 60, timeout=30, what="the first 60 reservations settled")
        c = Service("seats", fresh.url)  # joins the live fleet: must not put 50 seats back
        servers.append(c)
        assert c.get("/available_seats").json() == {"numberOfAvailableSeats": "0"}
        assert [c.get("/reserve_seat").text for _ in range(20)] == [BLOCKED] * 20
        assert c.get("/process").text == '{"status":"Queue processing"}'
        assert settled(r) == 60 and r.zcard("q:jobs:reserve_seat:complete") == 50
    finally:
        for svc in servers:
            svc.stop()
    assert r.zcard("seat_servers") == 0  # each server left the fleet on its way out


def test_the_first_server_of_a_fleet_sets_fifty_and_reset_forces_it(fresh: EmbeddedRedis) -> None:
    r = redis.Redis.from_url(fresh.url, decode_responses=True)
    r.mset({"available_seats": 3, "reservation_enabled": "0"})  # left by an earlier, stopped fleet
    servers = [Service("seats", fresh.url)]
    try:
        assert servers[0].get("/available_seats").json() == {"numberOfAvailableSeats": "50"}  # the seed's rule
        r.mset({"available_seats": 7, "reservation_enabled": "0"})
        servers.append(Service("seats", fresh.url))
        assert servers[1].get("/available_seats").json() == {"numberOfAvailableSeats": "7"}
        servers.append(Service("seats", fresh.url, "--reset"))
        assert servers[2].get("/available_seats").json() == {"numberOfAvailableSeats": "50"}
        assert servers[2].get("/reserve_seat").text == '{"status":"Reservation in process"}'
    finally:
        for svc in servers:
            svc.stop()


def test_a_dead_servers_heartbeat_expires_so_the_next_launch_is_first_again(fresh: EmbeddedRedis) -> None:
    """A server killed without leaving stops beating: once its heartbeat is gone, a launch sets 50 again."""
    from pykue.apps.seats import Seats
    from pykue.connection import async_client

    async def scenario() -> None:
        client = async_client(fresh.url)
        dead, joiner = Seats(client, heartbeat_ms=300), Seats(client, heartbeat_ms=300)
        assert await dead.join(seats=50)
        await client.set("available_seats", 0)
        assert not await joiner.join(seats=50)  # dead's heartbeat is still live
        assert await client.get("available_seats") == "0"
        while await client.exists("seat_servers"):  # neither beats: both heartbeats lapse
            await asyncio.sleep(0.02)
        assert await Seats(client).join(seats=50)
        assert await client.get("available_seats") == "50"
        await client.aclose()

    asyncio.run(asyncio.wait_for(scenario(), 10))
