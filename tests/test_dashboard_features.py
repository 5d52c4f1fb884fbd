"""The dashboard's deep links, bulk actions, search in the data and throughput chart: over
HTTP against a real dashboard process and Redis, and in Chromium."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import httpx
import pytest

import pykue
from pykue import EmbeddedRedis
from pykue.web import extras
from tests.conftest import FAST
from tests.helpers import wait_for
from tests.services import Service
from tests.test_dashboard import CHROMIUM, FLAGS


@pytest.fixture
def fresh() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as srv:
        yield srv


def failed_jobs(q: pykue.Queue, job_type: str, n: int, data: object = None) -> list[int]:
    jobs = q.save_many(q.create(job_type, data or {}) for _ in range(n))
    for job in jobs:
        job.failed()
    return [job.id or 0 for job in jobs]


def test_bulk_actions_work_in_batches_and_are_guarded(fresh: EmbeddedRedis) -> None:
    q = pykue.create_queue(fresh.url)
    svc = Service("dashboard", fresh.url)
    ro = Service("dashboard", fresh.url, "--read-only")
    try:
        failed_jobs(q, "mail", 2 * extras.BATCH + 50)  # three batches
        failed_jobs(q, "sms", 3)
        r = httpx.post(svc.base + "/bulk/retry?type=mail", timeout=30)
        assert r.json() == {"retried": 2 * extras.BATCH + 50, "skipped": 0, "more": False}
        assert (q.failed_count("mail"), q.inactive_count("mail"), q.failed_count("sms")) == (
            0,
            2 * extras.BATCH + 50,
            3,
        )
        assert {j.attempts_made for j in q.jobs("inactive", "mail", 0, 9)} == {0}  # retried: attempts reset

        done = q.save_many(q.create("mail", {}) for _ in range(4))
        for job in done:
            job.complete()
        q.create("sms", {}).save().complete()
        assert httpx.post(ro.base + "/bulk/remove?state=complete").status_code == 403  # read-only
        assert httpx.post(ro.base + "/bulk/retry").json() == {"error": "the dashboard is read-only"}
        cross = httpx.post(svc.base + "/bulk/remove?state=complete", headers={"Origin": "http://evil.example"})
        assert cross.status_code == 403 and q.complete_count() == 5
        assert httpx.post(svc.base + "/bulk/remove?state=running").status_code == 400
        assert httpx.post(svc.base + "/bulk/remove?state=active").status_code == 400
        r = httpx.post(svc.base + "/bulk/remove?state=complete&type=mail", timeout=30)
        assert r.json() == {"removed": 4, "more": False}
        assert (q.complete_count("mail"), q.complete_count("sms")) == (0, 1)
        assert all(not q.client.exists(q.keys.job(j.id or 0)) for j in done)
        assert q.failed_count("sms") == 3  # untouched by both
    finally:
        svc.stop()
        ro.stop()
        q.shutdown()


def test_bulk_retry_stops_after_its_bound_and_resumes(url: str, prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extras, "BATCH", 3)
    monkeypatch.setattr(extras, "MAX_PER_CALL", 5)
    q = pykue.create_queue(url, prefix=prefix)
    ids = failed_jobs(q, "t", 8)
    q.client.hset(q.keys.job(ids[0]), "state", "complete")  # in the failed set, but not failed: refused

    async def run() -> list[dict[str, object]]:
        aq = pykue.create_async_queue(url, prefix=prefix)
        try:
            return [await extras.retry_all(aq, "t"), await extras.retry_all(aq, "t")]
        finally:
            await aq.shutdown()

    try:
        first, second = asyncio.run(run())
        assert first == {"retried": 5, "skipped": 1, "more": True}
        assert second == {"retried": 2, "skipped": 1, "more": False}
        assert q.inactive_count("t") == 7
    finally:
        q.shutdown()


def test_search_in_data_is_bounded_and_says_so(fresh: EmbeddedRedis) -> None:
    q = pykue.create_queue(fresh.url)
    svc = Service("dashboard", fresh.url)
    try:
        jobs = q.save_many(q.create("mail", {"to": f"user{i}@example.com"}) for i in range(10))
        q.create("sms", {"to": "user3@example.com"}).save()
        r = svc.get("/search/data?q=user3%40&state=inactive&type=mail").json()
        assert (r["scanned"], r["limit"], [j["id"] for j in r["jobs"]]) == (10, 1000, [jobs[3].id])
        everyone = svc.get("/search/data?q=user3%40&state=inactive").json()
        assert sorted(j["type"] for j in everyone["jobs"]) == ["mail", "sms"]
        last = svc.get("/search/data?q=example&state=inactive&type=mail&limit=4").json()
        assert last["scanned"] == 4 and [j["id"] for j in last["jobs"]] == [j.id for j in jobs[-4:]][::-1]
        assert svc.get("/search/data?q=x&limit=0").status_code == 400
        assert svc.get("/search/data?q=x&state=nope").status_code == 400
        assert svc.get("/search/data?q=").status_code == 400
    finally:
        svc.stop()
        q.shutdown()


def test_history_counts_outcomes_per_minute_from_events(fresh: EmbeddedRedis) -> None:
    svc = Service("dashboard", fresh.url)
    q = pykue.create_queue(fresh.url, settings=FAST)
    try:
        q.save_many(q.create("ok", {}) for _ in range(3))
        q.save_many(q.create("bad", {}, attempts=2) for _ in range(2))
        q.process("ok", lambda j: 1)
        q.process("bad", lambda j: 1 / 0)
        wait_for(lambda: q.complete_count() == 3 and q.failed_count() == 2)

        def totals() -> tuple[int, int]:
            h = svc.get("/history").json()
            return sum(m["complete"] for m in h["minutes"]), sum(m["failed"] for m in h["minutes"])

        wait_for(lambda: totals() == (3, 4), what="3 completions and 4 failed runs in /history")
        h = svc.get("/history").json()
        assert len(h["minutes"]) == 60 and h["minutes"][-1]["at"] >= h["minutes"][0]["at"] + 59 * 60_000
    finally:
        q.shutdown(1)
        svc.stop()


def test_history_ring_keeps_an_hour() -> None:
    now = [3600.0 * 100]
    h = extras.History(clock=lambda: now[0])
    h.count("complete")
    h.count("failed attempt")
    h.count("progress")
    now[0] += 60 * 30
    h.count("complete")
    assert [(m["complete"], m["failed"]) for m in h.series()["minutes"] if m["complete"] or m["failed"]] == [
        (1, 1), (1, 0)]  # fmt: skip
    now[0] += 60 * 31
    assert [m["complete"] for m in h.series()["minutes"] if m["complete"]] == [1]
    assert len(h.buckets) <= 2


def test_deep_links_bulk_retry_search_and_chart_in_a_browser(fresh: EmbeddedRedis) -> None:
    from playwright.sync_api import expect, sync_playwright

    svc = Service("dashboard", fresh.url)
    q = pykue.create_queue(fresh.url, settings=FAST)
    errors: list[str] = []
    try:
        mail = failed_jobs(q, "mail", 25, {"to": "ann@example.com"})
        other = failed_jobs(q, "sms", 2, {"to": "bob@example.com"})
        target = mail[-3]
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("dialog", lambda d: d.accept())

            # a deep link opens state, type, page and job; the next page's URL says so; reload restores it
            page.goto(f"{svc.base}/?state=failed&type=mail&size=10&job={target}")
            expect(page.locator('#states button[data-state="failed"]')).to_have_class("on")
            expect(page.locator("#type")).to_have_value("mail")
            expect(page.locator("#d-id")).to_have_text(str(target))
            expect(page.locator("#jobs tbody tr")).to_have_count(10)
            page.click("#next")
            page.click("#next")
            expect(page).to_have_url(re.compile(r"page=3"))
            expect(page.locator("#jobs tbody tr")).to_have_count(5)
            page.reload()
            expect(page.locator("#type")).to_have_value("mail")
            expect(page.locator("#page")).to_have_text(" 21–25 ")
            expect(page.locator("#d-id")).to_have_text(str(target))
            expect(page.locator('#states button[data-state="failed"]')).to_have_class("on")
            page.go_back()
            expect(page).to_have_url(re.compile(r"page=2"))
            expect(page.locator("#page")).to_have_text(" 11–20 ")

            # search the data of the failed jobs shown
            page.fill("#search-text", "bob@")
            page.click("#search button")
            expect(page.locator("#search-results li")).to_have_count(0)  # type mail is selected
            page.select_option("#type", "")
            page.click("#search button")
            expect(page.locator("#search-results li")).to_have_count(2)
            expect(page.locator("#search-note")).to_contain_text("only the last 1000 of a state are searched")
            page.locator(f'#search-results li[data-id="{other[0]}"]').click()
            expect(page.locator("#d-id")).to_have_text(str(other[0]))
            expect(page).to_have_url(re.compile(f"job={other[0]}"))

            # bulk: retry all failed of type mail (sms stays failed), then the chart shows them completing
            page.select_option("#type", "mail")
            page.click("#b-retry")
            expect(page.locator("#bulk-message")).to_have_text("retried 25 failed job(s)", timeout=15000)
            assert (q.failed_count("mail"), q.failed_count("sms")) == (0, 2)
            q.process("mail", 5, lambda j: "sent")
            wait_for(lambda: q.complete_count("mail") == 25)
            expect(page.locator("#chart")).to_have_attribute("data-complete", "25", timeout=15000)
            assert page.locator("#chart rect.complete").count() >= 1
            page.click('#states button[data-state="complete"]')
            page.click("#b-remove")
            expect(page.locator("#bulk-message")).to_have_text("removed 25 complete job(s)", timeout=15000)
            assert q.complete_count() == 0
            expect(page.locator("#empty")).to_be_visible()
            browser.close()
        assert not errors, errors
    finally:
        q.shutdown(1)
        svc.stop()


def test_read_only_page_hides_bulk_buttons(fresh: EmbeddedRedis) -> None:
    from playwright.sync_api import expect, sync_playwright

    svc = Service("dashboard", fresh.url, "--read-only")
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page()
            page.goto(svc.base + "/?state=complete")
            expect(page.locator("body.read-only")).to_have_count(1)
            expect(page.locator("#b-retry")).to_be_hidden()
            expect(page.locator("#b-remove")).to_be_hidden()
            expect(page.locator("#search button")).to_be_visible()  # reading is allowed
            browser.close()
    finally:
        svc.stop()
