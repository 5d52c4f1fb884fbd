"""What the dashboard and `pykue api` protect (issue 10 items 11-13): read-only through every
route, writes only from the same origin (in real Chromium), Host names, headers, the api command."""

from __future__ import annotations

import http.server
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import redis
import uvicorn
from fastapi import FastAPI
from starlette.routing import BaseRoute

import pykue
from pykue import EmbeddedRedis
from pykue.server import free_port
from pykue.web.api import create_app
from pykue.web.dashboard import create_dashboard
from tests.conftest import PY, py_env
from tests.helpers import wait_for
from tests.services import Service

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-sync",
         "--disable-component-update", "--no-first-run", "--host-resolver-rules=MAP rebind.test 127.0.0.1"]  # fmt: skip
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
Factory = Callable[..., FastAPI]


@pytest.fixture
def fresh() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as srv:
        yield srv


@contextmanager
def served(app: FastAPI) -> Iterator[str]:
    """The app on a real port, in this process (so the test can enumerate its routes)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=20, what="the app to listen")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


def snapshot(url: str) -> dict[str, Any]:
    """Every key of the server with its exact serialized value."""
    client = redis.Redis.from_url(url)
    try:
        return {key: client.dump(key) for key in client.scan_iter(count=1000)}
    finally:
        client.close()


def jobs_in_every_state(url: str) -> list[int]:
    q = pykue.create_queue(url)
    try:
        ids = []
        for state in pykue.STATES:
            job = q.create("work", {"state": state}, attempts=2).save()
            job.progress(1, 2)
            job.set_state(state)
            ids.append(job.id or 0)
        return ids
    finally:
        q.shutdown()


def flat(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, BaseRoute]]:
    """Every route with its full path, included routers opened up."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from flat(inner.routes, prefix + route.include_context.prefix)  # type: ignore[attr-defined]
        else:
            yield prefix + getattr(route, "path"), route  # noqa: B009


def fill(path: str, route: BaseRoute, job_id: int) -> str:
    values = {"job_id": str(job_id), "state": "inactive", "priority": "-10", "path": "0..-1", "name": "app.js"}
    for name in getattr(route, "param_convertors", {}):
        path = path.replace("{" + name + ":path}", values[name]).replace("{" + name + "}", values[name])
    return path


def every_request(app: FastAPI, base: str, ids: list[int], headers: dict[str, str]) -> dict[tuple[str, str], int]:
    """Every method on every route of the app, for a job in each state; status by (method, path)."""
    seen: dict[tuple[str, str], int] = {}
    body = {"type": "work", "data": {"x": 1}, "options": {"attempts": 3}}
    with httpx.Client(base_url=base, timeout=10, headers=headers) as client:
        for template, route in flat(app.routes):
            for job_id in ids:
                path = fill(template, route, job_id)
                for method in METHODS:
                    if path == "/events" and method == "GET":
                        with client.stream("GET", path) as res:
                            seen[(method, path)] = res.status_code
                        continue
                    res = client.request(method, path + "?force=true", json=body)
                    seen[(method, path)] = res.status_code
                    if res.status_code >= 400 and method != "HEAD":
                        assert "error" in res.json(), (method, path, res.text)
    return seen


@pytest.mark.parametrize("factory", [create_app, create_dashboard], ids=["api", "dashboard"])
@pytest.mark.parametrize("browser", [{}, {"Sec-Fetch-Site": "same-origin"}], ids=["client", "browser"])
def test_read_only_changes_nothing_through_any_route(fresh: EmbeddedRedis, factory: Factory,
                                                     browser: dict[str, str]) -> None:  # fmt: skip
    ids = jobs_in_every_state(fresh.url)
    app = factory(fresh.url, read_only=True)
    before = snapshot(fresh.url)
    with served(app) as base:
        seen = every_request(app, base, ids, browser)
    assert snapshot(fresh.url) == before
    assert len(seen) > 100 and {path for _, path in seen} >= {"/stats", "/job", "/events", "/metrics", "/config"} - (
        set() if factory is create_dashboard else {"/events", "/metrics", "/config"}
    )
    assert seen[("GET", f"/inactive/{ids[3]}")] == 403  # the failed job: Kue's GET that re-queues
    assert seen[("GET", "/stats")] == 200


def test_writes_still_work_when_not_read_only(fresh: EmbeddedRedis) -> None:
    """The control for the test above: the same requests do change the queue without --read-only."""
    ids = jobs_in_every_state(fresh.url)
    app = create_app(fresh.url)
    before = snapshot(fresh.url)
    with served(app) as base:
        seen = every_request(app, base, ids, {"Sec-Fetch-Site": "same-origin"})
    assert snapshot(fresh.url) != before
    assert seen[("GET", f"/inactive/{ids[3]}")] == 200


def test_headers_and_host_names(fresh: EmbeddedRedis) -> None:
    app = create_dashboard(fresh.url)
    with served(app) as base:
        port = base.rsplit(":", 1)[1]
        for path in ("/", "/stats", "/static/app.js", "/no/such/route", "/job/999"):
            res = httpx.get(base + path)
            assert res.headers["x-frame-options"] == "DENY", path
            assert res.headers["x-content-type-options"] == "nosniff", path
            assert "frame-ancestors 'none'" in res.headers["content-security-policy"], path
            assert "script-src 'self'" in res.headers["content-security-policy"], path
        assert httpx.get(base + "/no/such/route").json() == {"error": "Not Found"}
        for host in (f"localhost:{port}", f"[::1]:{port}", f"127.0.0.1:{port}"):
            assert httpx.get(base + "/stats", headers={"Host": host}).status_code == 200, host
        for host in (f"rebind.test:{port}", "evil.example", f"127.0.0.1.evil.example:{port}"):
            res = httpx.get(base + "/stats", headers={"Host": host})
            assert res.status_code == 421 and "is not served here" in res.json()["error"], host
        assert httpx.get(base + "/docs").status_code == 404  # Swagger UI would come from a CDN
        assert httpx.get(base + "/openapi.json").json()["info"]["title"] == "pykue dashboard"


def test_cross_origin_requests(fresh: EmbeddedRedis) -> None:
    ids = jobs_in_every_state(fresh.url)
    failed = ids[3]
    app = create_dashboard(fresh.url, token="s3cret")
    with served(app) as base:
        host = base.removeprefix("http://")
        post = {"type": "x"}
        cases: list[tuple[dict[str, str], int]] = [
            ({"Origin": "http://127.0.0.1:1", "Cookie": "pykue_token=s3cret"}, 403),  # same site, other origin
            ({"Sec-Fetch-Site": "same-site", "Cookie": "pykue_token=s3cret"}, 403),
            ({"Sec-Fetch-Site": "cross-site", "Authorization": "Bearer s3cret"}, 200),  # the token itself
            ({"Sec-Fetch-Site": "same-origin", "Cookie": "pykue_token=s3cret"}, 200),
            ({"Origin": f"http://{host}", "Cookie": "pykue_token=s3cret"}, 200),
            ({"Authorization": "Bearer s3cret"}, 200),  # curl, a Kue client
            ({"Origin": f"http://{host}"}, 401),  # same origin, but no token
        ]
        for headers, status in cases:
            assert httpx.post(base + "/job", json=post, headers=headers).status_code == status, headers
        res = httpx.get(f"{base}/inactive/{failed}", headers={"Sec-Fetch-Site": "cross-site",
                                                              "Cookie": "pykue_token=s3cret"})  # fmt: skip
        assert res.status_code == 403 and "cross-site" in res.json()["error"]


class _Attacker(http.server.BaseHTTPRequestHandler):
    page = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(self.page)

    def log_message(self, *args: Any) -> None:
        pass


ATTACK = """<!doctype html><title>loading</title><body><script>
const target = %r;
const hits = [
  fetch(target + '/job', {method: 'POST', mode: 'no-cors', headers: {'Content-Type': 'text/plain'},
                          body: JSON.stringify({type: 'evil', data: {}})}).catch(() => 0),
  fetch(target + '/job/%d/retry', {method: 'POST', mode: 'no-cors'}).catch(() => 0),
  new Promise((done) => { const img = new Image(); img.onload = img.onerror = done;
                          img.src = target + '/inactive/%d'; }),
];
Promise.all(hits).then(() => { document.title = 'done'; });
</script>"""


@pytest.fixture
def attacker() -> Iterator[tuple[http.server.HTTPServer, type[_Attacker]]]:
    handler = type("Attacker", (_Attacker,), {})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, handler
    server.shutdown()
    server.server_close()


def test_a_page_on_another_origin_cannot_change_the_queue(fresh: EmbeddedRedis, attacker: Any) -> None:
    """In real Chromium: the default dashboard (no token, loopback), a page on another port."""
    from playwright.sync_api import sync_playwright

    server, handler = attacker
    ids = jobs_in_every_state(fresh.url)
    failed = ids[3]
    q = pykue.create_queue(fresh.url)
    with served(create_dashboard(fresh.url)) as base:
        handler.page = (ATTACK % (base, failed, failed)).encode()
        evil = f"http://localhost:{server.server_address[1]}/"
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
                page = browser.new_page()
                page.goto(evil)
                page.wait_for_function("document.title === 'done'", timeout=15000)
                assert q.card(None, None) == len(ids) and "evil" not in q.types()
                assert q.get_job(failed).state == "failed"

                # the dashboard's own page may write (the control), and DNS rebinding gets nothing
                page.goto(base + "/")
                status = page.evaluate("fetch('/job', {method: 'POST', headers: {'Content-Type': 'application/json'},"
                                       " body: JSON.stringify({type: 'mine'})}).then((r) => r.status)")  # fmt: skip
                assert status == 200 and "mine" in q.types()
                port = base.rsplit(":", 1)[1]
                res = page.goto(f"http://rebind.test:{port}/stats")
                assert res is not None and res.status == 421
                browser.close()
        finally:
            q.shutdown()


def test_api_command_has_the_dashboards_guards(fresh: EmbeddedRedis) -> None:
    out = subprocess.run([PY, "-m", "pykue.cli", "api", "--host", "0.0.0.0"], env=py_env(), capture_output=True,
                         text=True, timeout=30)  # fmt: skip
    assert out.returncode == 2 and "give --token" in out.stderr and "Traceback" not in out.stderr
    svc = Service("api", fresh.url, "--token", "t0k", "--read-only")
    try:
        assert httpx.get(svc.base + "/stats").status_code == 401
        auth = {"Authorization": "Bearer t0k"}
        assert httpx.get(svc.base + "/stats", headers=auth).json()["inactiveCount"] == 0
        res = httpx.post(svc.base + "/job", json={"type": "x"}, headers=auth)
        assert (res.status_code, res.json()) == (403, {"error": "the API is read-only"})
        assert httpx.get(svc.base + "/stats", headers=auth).json()["inactiveCount"] == 0
        # with a token any Host is answered (a proxy's name): a rebinding page has no token
        assert httpx.get(svc.base + "/stats", headers={**auth, "Host": "kue.example.com"}).status_code == 200
    finally:
        svc.stop()
    plain = Service("api", fresh.url)
    try:
        assert httpx.get(plain.base + "/stats", headers={"Host": "rebind.test"}).status_code == 421
        assert httpx.get(plain.base + "/stats", headers={"Host": "localhost"}).status_code == 200
    finally:
        plain.stop()
