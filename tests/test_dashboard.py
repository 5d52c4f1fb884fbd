"""The dashboard in a real browser (Debian's Chromium driven by Playwright), its metrics,
auth and read-only modes, all over a real Redis."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import pykue
from pykue import EmbeddedRedis
from tests.conftest import FAST, PY, ROOT, py_env
from tests.helpers import wait_for
from tests.services import Service

ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]  # fmt: skip


@pytest.fixture
def fresh() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as srv:
        yield srv


def metrics(base: str, **kw: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(base + "/metrics", timeout=10, **kw).text  # type: ignore[arg-type]
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_match_known_counts(fresh: EmbeddedRedis) -> None:
    svc = Service("dashboard", fresh.url)
    q = pykue.create_queue(fresh.url, settings=FAST)
    try:
        q.save_many(q.create("img", {"i": i}) for i in range(5))
        q.create("img", {}, delay=60000).save()
        q.create("mail", {}, attempts=1).save()
        q.process("mail", lambda j: 1 / 0)
        wait_for(lambda: q.failed_count("mail") == 1)
        q.process("img", 2, lambda j: "ok")
        wait_for(lambda: q.complete_count("img") == 5)
        m = wait_for(lambda: (m := metrics(svc.base))[("pykue_jobs_completed_total", (("type", "img"),))] == 5 and m,
                     what="completion totals in /metrics")  # fmt: skip
        assert m[("pykue_jobs", (("state", "complete"), ("type", "img")))] == 5
        assert m[("pykue_jobs", (("state", "delayed"), ("type", "img")))] == 1
        assert m[("pykue_jobs", (("state", "failed"), ("type", "mail")))] == 1
        assert m[("pykue_jobs_failed_total", (("type", "mail"),))] == 1
        assert m[("pykue_job_duration_seconds_count", (("type", "img"),))] == 5
        assert m[("pykue_workers", ())] == 2  # the two live workers of this process
    finally:
        q.shutdown()
        svc.stop()


def test_token_and_read_only(fresh: EmbeddedRedis) -> None:
    svc = Service("dashboard", fresh.url, "--token", "s3cret", "--read-only")
    try:
        assert httpx.get(svc.base + "/stats").status_code == 401
        assert httpx.get(svc.base + "/stats", headers={"Authorization": "Bearer nope"}).status_code == 401
        ok = httpx.get(svc.base + "/stats", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and ok.json()["inactiveCount"] == 0
        page = httpx.get(svc.base + "/?token=s3cret")
        assert page.status_code == 200 and "pykue_token" in page.headers["set-cookie"]
        auth = {"Authorization": "Bearer s3cret"}
        r = httpx.post(svc.base + "/job", json={"type": "x"}, headers=auth)
        assert (r.status_code, r.json()) == (403, {"error": "the dashboard is read-only"})
        assert httpx.delete(svc.base + "/job/1", headers=auth).status_code == 403
    finally:
        svc.stop()


def test_binding_beyond_loopback_needs_a_token() -> None:
    out = subprocess.run([PY, "-m", "pykue.cli", "dashboard", "--host", "0.0.0.0"], env=py_env(),
                         capture_output=True, text=True, timeout=30)  # fmt: skip
    assert out.returncode == 2 and "give --token" in out.stderr and "Traceback" not in out.stderr


def test_dashboard_in_a_real_browser(fresh: EmbeddedRedis) -> None:
    from playwright.sync_api import expect, sync_playwright

    svc = Service("dashboard", fresh.url)
    q = pykue.create_queue(fresh.url, settings=FAST)
    release = threading.Event()
    attempts: list[int] = []

    def work(job: pykue.Job) -> str:
        job.log("working on %s", job.data["name"])
        job.progress(1, 2)
        release.wait(20)
        return "done"

    def flaky(job: pykue.Job) -> str:
        attempts.append(job.id or 0)
        if len(attempts) == 1:
            raise RuntimeError("first try fails")
        return "second try works"

    ARTIFACTS.mkdir(exist_ok=True)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(svc.base + "/")
            expect(page.locator("#live.on")).to_be_visible(timeout=15000)

            # a job created after the page loaded appears, runs, and moves to complete
            q.process("render", work)
            job = q.create("render", {"name": "banner"}).save()
            expect(page.locator(f'#jobs tr[data-id="{job.id}"]')).to_be_visible(timeout=15000)  # active tab
            release.set()
            page.click('#states button[data-state="complete"]')
            row = page.locator(f'#jobs tr[data-id="{job.id}"]')
            expect(row).to_be_visible(timeout=15000)
            row.click()
            expect(page.locator("#d-state")).to_have_text("complete")
            expect(page.locator("#d-log li")).to_have_text(["working on banner"])
            expect(page.locator("#d-result")).to_have_text('"done"')

            # a failed job, retried by a click, completes
            bad = q.create("flaky", {"n": 1}).save()
            q.process("flaky", flaky)
            wait_for(lambda: q.failed_count("flaky") == 1)
            page.click('#states button[data-state="failed"]')
            page.locator(f'#jobs tr[data-id="{bad.id}"]').click()
            expect(page.locator("#d-error")).to_contain_text("RuntimeError: first try fails")
            page.click("#a-retry")
            wait_for(lambda: q.complete_count("flaky") == 1, what="retried job to complete")
            expect(page.locator("#d-state")).to_have_text("complete", timeout=15000)
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
            browser.close()
    finally:
        release.set()
        q.shutdown(1)
        svc.stop()
    assert Path(ARTIFACTS / "dashboard.png").stat().st_size > 10_000
    assert attempts == [bad.id, bad.id]


def test_dashboard_actions_find_and_redis_outage_in_a_browser(fresh: EmbeddedRedis) -> None:
    """Retry resets attempts and re-queue keeps them (two meanings, two buttons); finding an
    unknown id closes the open job; Redis down shows a banner and a grey dot, not a blank page."""
    from playwright.sync_api import expect, sync_playwright

    svc = Service("dashboard", fresh.url)
    q = pykue.create_queue(fresh.url, settings=FAST)
    errors: list[str] = []
    try:
        bad = q.create("flaky", {}, attempts=2).save()
        bad.failed()
        q.client.hset(q.keys.job(bad.id or 0), "attempts", 2)
        other = q.create("flaky", {}, attempts=2).save()
        other.failed()
        q.client.hset(q.keys.job(other.id or 0), "attempts", 2)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(svc.base + "/")
            expect(page.locator("#live.on")).to_be_visible(timeout=15000)
            page.click('#states button[data-state="failed"]')

            page.locator(f'#jobs tr[data-id="{bad.id}"]').click()
            expect(page.locator("#d-attempts")).to_have_text("2 made, 0 left of 2")
            page.click("#a-retry")
            expect(page.locator("#d-state")).to_have_text("inactive", timeout=15000)
            expect(page.locator("#d-attempts")).to_have_text("0 made, 2 left of 2")
            expect(page.locator("#a-retry")).to_be_hidden()

            page.locator(f'#jobs tr[data-id="{other.id}"]').click()
            page.click("#a-requeue")
            expect(page.locator("#d-state")).to_have_text("inactive", timeout=15000)
            expect(page.locator("#d-attempts")).to_have_text("2 made, 0 left of 2")  # Kue's re-queue keeps them

            page.fill("#find-id", "424242")
            page.click("#find button")
            expect(page.locator("#detail")).to_be_hidden()
            expect(page.locator("#find-message")).to_have_text('job "424242" doesnt exist')
            page.fill("#find-id", str(bad.id))
            page.click("#find button")
            expect(page.locator("#d-id")).to_have_text(str(bad.id))
            expect(page.locator("#find-message")).to_have_text("")

            fresh.close()
            expect(page.locator("#banner")).to_be_visible(timeout=15000)
            expect(page.locator("#banner")).to_contain_text("Redis is unavailable")
            expect(page.locator("#live")).not_to_have_class("live on")
            browser.close()
        assert not [e for e in errors if "Content Security Policy" in e], errors
        assert not any("Traceback" in line for line in svc.lines), "\n".join(svc.lines)
    finally:
        q.shutdown(1)
        svc.stop()
