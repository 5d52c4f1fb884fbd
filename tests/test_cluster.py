"""pykue on a real 3-master Redis Cluster (issue 11 item 3): several queues, each in its own
{hash tag} slot, spread across the shards, running everything pykue does."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import pykue
from pykue._keys import DECLARED, Keys
from pykue.web.api import create_app
from tests.cluster import LocalCluster
from tests.conftest import FAST
from tests.helpers import wait_for

PREFIXES = ("{a}", "{b}", "{c}")  # hash to three different shards of a 3-master cluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    c = LocalCluster().start()
    try:
        yield c
    finally:
        c.stop()


def layout(prefix: str) -> re.Pattern[str]:
    """Every key a queue may leave behind: the declared ones and those derived per job, type, worker."""
    p = re.escape(prefix)
    fixed = "|".join(re.escape(name) for name in DECLARED)
    derived = [
        r"job:\d+", r"job:\d+:log", r"jobs:[^:]+:(inactive|active|complete|failed|delayed)", r"[^:]+:jobs",
        r"pykue:held:[^:]+", r"pykue:kept:(complete|failed):[^:]+", "promotion:lock", "activeJobsTTL:lock",
        r"pykue:limit:[^:]+", r"pykue:dependents:\d+", r"pykue:deps:\d+",
    ]  # fmt: skip
    return re.compile(rf"{p}:(?:{fixed}|{'|'.join(derived)})")


def outside_layout(keys: list[str]) -> list[str]:
    patterns = [layout(p) for p in PREFIXES]
    return sorted(k for k in keys if not any(pat.fullmatch(k) for pat in patterns))


def test_the_queues_sit_on_different_shards(cluster: LocalCluster) -> None:
    nodes = {cluster.node_of(f"{p}:jobs") for p in PREFIXES}
    assert len(nodes) == 3
    for p in PREFIXES:  # every key a script is given, and Kue's locks, in the queue's one slot
        keys = Keys(p, cluster=True)
        slots = {cluster.slot_of(k) for k in (*keys.declared, keys.promotion_lock, keys.ttl_lock)}
        assert slots == {cluster.slot_of(f"{p}:jobs")}


def test_a_prefix_without_a_hash_tag_is_refused(cluster: LocalCluster) -> None:
    with pytest.raises(ValueError, match="hash tag"):
        pykue.create_queue(cluster.url, prefix="q", cluster=True)


def _lifecycle(q: pykue.Queue) -> dict[str, Any]:
    """Everything a sync queue does, on one prefix: what happened, for the caller to check."""
    seen: list[str] = []
    q.on("job complete", lambda job_id, result: seen.append(f"complete {job_id}"))
    runs: dict[int, int] = {}

    def handler(job: pykue.Job) -> Any:
        runs[job.id or 0] = runs.get(job.id or 0, 0) + 1
        if job.data.get("fail"):
            raise RuntimeError("boom")
        job.log("ran %s", job.id)
        job.progress(1, 1)
        return {"n": job.data["n"]}

    q.process("work", 2, handler)
    done = q.create("work", {"n": 1}).save()
    delayed = q.create("work", {"n": 2}).delay(50).save()
    retried = q.create("work", {"n": 3}).attempts(2).backoff({"delay": 10, "type": "fixed"}).save()
    failing = q.create("work", {"n": 4, "fail": True}).save()
    gone = q.create("other", {"n": 5}).save()
    wait_for(lambda: q.complete_count() == 3 and q.failed_count() == 1, what="the jobs to finish")
    assert gone.remove() and q.inactive_count("other") == 0
    q.pause("other")  # a type paused fleet-wide, and a schedule: pipelines in the queue's slot
    sched = q.repeat("other", {"n": 6}, every_ms=60_000)
    assert q.paused() == ["other"] and [s.key for s in q.schedules()] == [sched.key]
    assert q.unrepeat(sched.key) and q.schedules() == []
    q.resume("other")
    q.retry(failing.id or 0)  # again, it fails again
    wait_for(lambda: runs.get(failing.id or 0) == 2 and q.failed_count() == 1, what="the retried job to fail")
    wait_for(lambda: f"complete {done.id}" in seen, what="the complete event")
    return {"stats": q.stats(), "ids": (done.id, delayed.id, retried.id), "log": q.get_job(done.id or 0)}


def test_every_operation_on_three_queues_across_the_shards(
    cluster: LocalCluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="pykue")
    queues = [pykue.create_queue(cluster.url, prefix=p, settings=FAST, cluster=True) for p in PREFIXES]
    try:
        results: dict[str, dict[str, Any]] = {}
        threads = [threading.Thread(target=lambda q=q: results.__setitem__(q.keys.prefix, _lifecycle(q)))
                   for q in queues]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(results) == sorted(PREFIXES)
        for prefix, out in results.items():
            assert out["stats"]["completeCount"] == 3 and out["stats"]["failedCount"] == 1, prefix
            assert out["stats"]["inactiveCount"] == out["stats"]["activeCount"] == out["stats"]["delayedCount"] == 0
            assert out["ids"] == (1, 2, 3)  # each queue its own ids, on its own shard
            job = out["log"]
            assert job.state == "complete" and job.result == {"n": 1} and job.fields["progress"] == "100"
        for q in queues:
            assert q.clean("complete", 0) == [1, 2, 3]
    finally:
        for q in queues:
            q.shutdown(2)
    # maintenance (promotion, TTL, reaper, token repair, the watchdog's SCAN) ran without a script error
    assert [r.getMessage() for r in caplog.records if " failed (" in r.getMessage()] == []
    keys = cluster.all_keys()
    assert keys and outside_layout(keys) == []
    assert outside_layout([*keys, "{a}:pykue:junk", "q:jobs"]) == ["q:jobs", "{a}:pykue:junk"]  # the check can fail
    assert {k.split(":", 1)[0] for k in keys} == set(PREFIXES)  # no unprefixed Kue lock, nothing else


def test_the_asyncio_queue_and_the_json_api_on_a_cluster(cluster: LocalCluster) -> None:
    async def main() -> None:
        q = pykue.create_async_queue(cluster.url, prefix="{api}", settings=FAST, cluster=True)
        try:
            await q.process("echo", lambda job: job.data)
            job = await q.create("echo", {"x": 1}).save()
            assert await job.wait(10) == {"x": 1}
            app = create_app(q)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as http:
                made = (await http.post("/job", json={"type": "echo", "data": {"x": 2}})).json()
                assert await (await q.get_job(made["id"])).wait(10) == {"x": 2}
                stats = (await http.get("/stats")).json()
                assert stats["completeCount"] == 2 and stats["inactiveCount"] == 0
                assert (await http.get(f"/job/{made['id']}")).json()["result"] == {"x": 2}
                assert (await http.put(f"/job/{made['id']}/state/inactive")).json()["message"]
                assert (await http.delete(f"/job/{made['id']}")).json()["message"]
                assert (await http.get("/jobs/complete/0..10/asc")).json()[0]["id"] in (job.id, str(job.id))
        finally:
            await q.shutdown(2)

    asyncio.run(main())
    assert outside_layout_for("{api}", cluster.all_keys()) == []


def outside_layout_for(prefix: str, keys: list[str]) -> list[str]:
    mine = [k for k in keys if k.startswith(prefix)]
    assert mine, "the queue left no keys at all"
    return sorted(k for k in keys if not layout(prefix).fullmatch(k) and not any(k.startswith(p) for p in PREFIXES))
