"""pykue's Kue JSON API beside Node's kue.app on one Redis: the same answers, route by route."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from pykue import EmbeddedRedis
from pykue.server import free_port
from tests.interop.conftest import Kue, stop
from tests.services import Service


@pytest.fixture
def apis(kue: Kue, kue_redis: EmbeddedRedis) -> Iterator[tuple[str, str]]:
    port = free_port()
    node_app = kue.spawn("app", str(port))
    py_app = Service("api", kue_redis.url)
    try:
        yield f"http://127.0.0.1:{port}", py_app.base
    finally:
        stop(node_app)
        py_app.stop()


def both(apis: tuple[str, str], method: str, path: str, **kw: Any) -> tuple[httpx.Response, httpx.Response]:
    node, py = (httpx.request(method, base + path, timeout=10, **kw) for base in apis)
    return node, py


def same(apis: tuple[str, str], path: str) -> Any:
    node, py = both(apis, "GET", path)
    assert (py.status_code, py.json()) == (node.status_code, node.json()), path
    return py.json()


def test_routes_answer_as_kue_app_does(apis: tuple[str, str]) -> None:
    node_base, py_base = apis
    body = {"type": "email", "data": {"to": "a@b", "n": 1}, "options": {"priority": "high", "attempts": 3}}
    created = [httpx.post(base + "/job", json=body).json() for base in (node_base, py_base)]
    assert created == [{"message": "job created", "id": 1}, {"message": "job created", "id": 2}]
    httpx.post(py_base + "/job", json={"type": "sms", "data": {}, "options": {"delay": 60000}})
    httpx.post(node_base + "/job", json=[{"type": "sms", "data": {"k": 1}}, {"type": "email"}])

    for path in ("/job/1", "/job/2", "/job/3", "/stats", "/jobs/0..10", "/jobs/0..2/desc",
                 "/jobs/inactive/0..10", "/jobs/inactive/1..2/desc", "/jobs/email/inactive/0..10",
                 "/jobs/email/inactive/stats", "/jobs/sms/delayed/stats", "/job/1/log", "/job/999"):  # fmt: skip
        same(apis, path)
    node_types, py_types = both(apis, "GET", "/job/types")
    assert sorted(node_types.json()) == sorted(py_types.json()) == ["email", "sms"]

    # each side changes a job; both then see the same result
    for i, base in enumerate(apis):
        assert httpx.put(f"{base}/job/{1 + i}/priority/-5").json() == {"message": "updated priority"}
        assert httpx.put(f"{base}/job/{3 + i}/state/complete").json() == {"message": "updated state"}
        assert httpx.get(f"{base}/inactive/{3 + i}").json() == {"message": f"job {3 + i} inactive"}
    for path in ("/job/1", "/job/2", "/job/3", "/job/4", "/stats", "/jobs/inactive/0..10"):
        same(apis, path)
    assert httpx.delete(node_base + "/job/5").json() == {"message": "job 5 removed"}
    assert httpx.delete(py_base + "/job/4").json() == {"message": "job 4 removed"}
    same(apis, "/stats")
    same(apis, "/jobs/0..10")

    # errors
    node, py = both(apis, "PUT", "/job/1/priority/abc")
    assert py.json() == node.json() == {"error": "invalid priority"}
    node, py = both(apis, "POST", "/job", json={"data": {}})
    assert (py.status_code, py.json()) == (node.status_code, node.json()) == (400, {"error": "Must provide job type"})
    node, py = both(apis, "DELETE", "/job/999")
    assert py.json() == node.json() == {"error": 'job "999" doesnt exist'}
    node, py = both(apis, "POST", "/job", json={})
    assert py.status_code == node.status_code == 204


def test_pykue_refuses_what_kue_would_store(apis: tuple[str, str]) -> None:
    _, py = apis
    r = httpx.post(py + "/job", json={"type": "x", "options": {"priority": "urgent"}})
    assert r.status_code == 400 and "priority must be" in r.json()["error"]
    r = httpx.post(py + "/job", json={"type": "x", "options": {"backoff": "function(){ process.exit() }"}})
    assert r.status_code == 400 and "backoff must be True" in r.json()["error"]
    r = httpx.put(py + "/job/1/state/bogus")
    assert r.status_code == 400 and "unknown state" in r.json()["error"]
    r = httpx.get(py + "/jobs/inactive/a..b")  # Kue: a Redis error for zrange(NaN, NaN)
    assert (r.status_code, r.json()) == (404, {"error": "no such route: /jobs/inactive/a..b"})
    assert httpx.get(py + "/openapi.json").json()["info"]["title"] == "pykue: Kue JSON API"
    assert httpx.get(py + "/stats").json()["inactiveCount"] == 0


def test_edge_cases_answer_as_kue_app_does(apis: tuple[str, str], kue_redis: EmbeddedRedis) -> None:
    """Issue 10 item 10: open ranges (`..-1`) list every job; a state set by PUT keeps the progress."""
    node_base, py_base = apis
    for i in range(4):
        httpx.post((node_base, py_base)[i % 2] + "/job", json={"type": "email", "data": {"i": i}})
    import redis

    client = redis.Redis.from_url(kue_redis.url, decode_responses=True)
    for job_id in (1, 2):
        client.hset(f"q:job:{job_id}", "progress", 37)
    client.close()
    assert httpx.put(node_base + "/job/1/state/complete").json() == {"message": "updated state"}
    assert httpx.put(py_base + "/job/2/state/complete").json() == {"message": "updated state"}
    assert httpx.put(py_base + "/job/3/state/failed").json() == {"message": "updated state"}
    assert httpx.put(node_base + "/job/4/state/failed").json() == {"message": "updated state"}
    one, two = same(apis, "/job/1"), same(apis, "/job/2")
    assert one["progress"] == two["progress"] == "37"
    three, four = same(apis, "/job/3"), same(apis, "/job/4")
    assert ("failed_at" in three) == ("failed_at" in four)
    for path in ("/jobs/0..-1", "/jobs/complete/0..-1/asc", "/jobs/failed/0..-1/desc", "/jobs/email/complete/0..-1",
                 "/jobs/-2..-1", "/jobs/email/failed/-1..-1/desc"):  # fmt: skip
        got = same(apis, path)
        assert got, path
    assert len(same(apis, "/jobs/complete/0..-1/asc")) == 2 and len(same(apis, "/jobs/0..-1")) == 4
