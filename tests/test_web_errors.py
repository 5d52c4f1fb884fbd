"""Every error is JSON (issue 10 item 14): Redis down, malformed bodies, bounds, the stock service."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import httpx
import pytest
import redis

import pykue
from pykue import EmbeddedRedis
from pykue.web.api import create_app
from tests.helpers import wait_for
from tests.services import Service
from tests.test_web_security import served

SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}


@pytest.fixture
def fresh() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as srv:
        yield srv


def test_redis_down_answers_503_json_without_tracebacks(fresh: EmbeddedRedis) -> None:
    api, dash = Service("api", fresh.url), Service("dashboard", fresh.url)
    try:
        assert httpx.post(api.base + "/job", json={"type": "t"}).status_code == 200
        fresh.close()
        requests = [("GET", "/stats"), ("GET", "/job/1"), ("GET", "/job/1/log"), ("GET", "/jobs/0..-1"),
                    ("GET", "/job/types"), ("GET", "/jobs/t/inactive/stats"), ("POST", "/job"),
                    ("PUT", "/job/1/state/inactive"), ("PUT", "/job/1/priority/3"), ("DELETE", "/job/1"),
                    ("GET", "/inactive/1"), ("POST", "/job/1/retry")]  # fmt: skip
        for svc, extra in ((api, []), (dash, [("GET", "/metrics")])):
            for method, path in requests + extra:
                res = httpx.request(method, svc.base + path, json={"type": "t"}, headers=SAME_ORIGIN, timeout=30)
                assert res.status_code == 503, (method, path, res.text)
                assert res.headers["content-type"] == "application/json", (method, path)
                assert res.json()["error"].startswith("Redis unavailable"), (method, path)
        for svc in (api, dash):
            assert not any("Traceback" in line for line in svc.lines), "\n".join(svc.lines)
    finally:
        api.stop()
        dash.stop()


MALFORMED = [
    (b"{nope", "not valid JSON"),
    (b'{"type": "x", "options": {"delay": Infinity}}', "Infinity is not JSON"),
    (b'{"type": "x", "data": NaN}', "NaN is not JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b'{"type": 5}', "job type must be a non-empty string"),
    (b'{"type": ["a"]}', "job type must be a non-empty string"),
    (b'{"type": "x", "options": [1]}', "options must be an object"),
    (b'{"type": "x", "options": "fast"}', "options must be an object"),
    (b'{"type": "x", "options": {"attempts": "many"}}', "attempts must be an integer"),
    (b'{"type": "x", "options": {"attempts": 2.5}}', "attempts must be an integer"),
    (b'{"type": "x", "options": {"attempts": 99999999999999999999999}}', "attempts must lie within"),
    (b'{"type": "x", "options": {"priority": 9223372036854775808}}', "priority must lie within"),
    (b'{"type": "x", "options": {"priority": 1e400}}', "priority must be an integer"),
    (b'{"type": "x", "options": {"delay": -5}}', "delay must be an integer >= 0"),
    (b'{"type": "x", "options": {"ttl": {"ms": 5}}}', "ttl must be an integer"),
    (b'{"type": "x", "options": {"removeOnComplete": "yes"}}', "removeOnComplete must be true or false"),
    (b'{"type": "x", "options": {"backoff": "function(){}"}}', "backoff must be True"),
    (b'{"type": "x", "options": {"retries": 3}}', "unknown job option 'retries'"),
    (b'"just a string"', "Must provide job type"),
    (b"[1, 2]", "Must provide job type"),
    (b"42", "Must provide job type"),
    (b"false", "Must provide job type"),
]


@pytest.mark.parametrize(("body", "message"), MALFORMED, ids=[m for _, m in MALFORMED])
def test_malformed_job_bodies_answer_400_and_write_nothing(fresh: EmbeddedRedis, body: bytes, message: str) -> None:
    with served(create_app(fresh.url)) as base:
        res = httpx.post(base + "/job", content=body, headers={"Content-Type": "application/json"})
        assert res.status_code == 400, res.text
        errors = res.json() if isinstance(res.json(), list) else [res.json()]
        assert any(message in e["error"] for e in errors), res.text
    assert redis.Redis.from_url(fresh.url).dbsize() == 0


def test_bounds_and_routes_answer_json(fresh: EmbeddedRedis) -> None:
    q = pykue.create_queue(fresh.url)
    job = q.create("x", {}).save()
    try:
        with served(create_app(fresh.url)) as base:
            for path in ("/jobs/0..99999999999999999999", "/jobs/inactive/0..9223372036854775808/asc",
                         "/jobs/x/inactive/-9223372036854775809..0", "/jobs/inactive/0..5/sideways"):  # fmt: skip
                res = httpx.get(base + path)
                assert res.status_code == 400 and "bad range" in res.json()["error"], path
            assert httpx.get(base + "/jobs/x/inactive/0..9223372036854775807").json()[0]["id"] == job.id
            res = httpx.put(f"{base}/job/{job.id}/priority/99999999999999999999")
            assert res.status_code == 400 and "priority must lie within" in res.json()["error"]
            assert q.get_job(job.id or 0).opts.priority == 0
            assert httpx.get(base + "/no/such/route").json() == {"error": "Not Found"}
            assert httpx.patch(base + "/stats").json() == {"error": "Method Not Allowed"}
            assert httpx.post(base + "/job", content=b"").status_code == 204  # Kue: an empty body
            assert httpx.post(base + "/job", json={}).status_code == 204
    finally:
        q.shutdown()


def test_stock_service_errors_are_json_and_head_does_not_reserve(fresh: EmbeddedRedis) -> None:
    svc = Service("stock", fresh.url)
    client = redis.Redis.from_url(fresh.url, decode_responses=True)
    try:
        for _ in range(3):
            assert httpx.head(svc.base + "/reserve_product/1").status_code == 405
        assert client.get("item.1") is None
        assert httpx.get(svc.base + "/list_products/1").json()["currentQuantity"] == 4
        assert httpx.get(svc.base + "/reserve_product/1").json()["status"] == "Reservation confirmed"
        assert client.get("item.1") == "1"

        client.hset("item.2", "oops", 1)  # a wrong type under the item's key
        for path in ("/list_products/2", "/reserve_product/2"):
            res = httpx.get(svc.base + path)
            assert res.status_code == 500 and "WRONGTYPE" in res.json()["status"], path
        fresh.close()
        res = httpx.get(svc.base + "/reserve_product/1", timeout=30)
        assert res.status_code == 503 and res.json()["status"].startswith("Redis"), res.text
        wait_for(lambda: svc.proc.poll() is None)
        assert not any("Traceback" in line for line in svc.lines), "\n".join(svc.lines)
    finally:
        client.close()
        svc.stop()


def test_a_hung_redis_answers_503_in_bounded_time_then_recovers(fresh: EmbeddedRedis) -> None:
    """SIGSTOP the Redis server: the process accepts connections and never answers."""
    assert fresh.proc is not None
    with served(create_app(fresh.url, timeout=1.0)) as base:
        assert httpx.get(base + "/stats").status_code == 200
        fresh.proc.send_signal(signal.SIGSTOP)
        try:
            for method, path in (("GET", "/stats"), ("POST", "/job"), ("GET", "/jobs/0..-1")):
                res = httpx.request(method, base + path, json={"type": "t"}, timeout=30)
                assert res.status_code == 503 and "no answer within 1 s" in res.json()["error"], (path, res.text)
        finally:
            fresh.proc.send_signal(signal.SIGCONT)
        wait_for(lambda: httpx.get(base + "/stats").status_code == 200, what="answers once Redis runs again")
        assert httpx.post(base + "/job", json={"type": "t"}).status_code == 200
