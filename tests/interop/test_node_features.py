"""Issue 12's rate limits, unique jobs and dependencies beside real Node Kue 0.11.6 workers:
Node sees ordinary Kue jobs and is not disturbed."""

from __future__ import annotations

import json
import subprocess
import threading
from typing import Any

import pykue
from pykue import EmbeddedRedis
from tests.conftest import FAST
from tests.helpers import wait_for
from tests.interop.conftest import Kue, stop
from tests.interop.test_kue_interop import views_agree


class Lines:
    """A spawned kue-tool's JSON lines, collected as they come."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.items: list[Any] = []
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(("{", "[")):
                self.items.append(json.loads(line))

    def worked(self) -> list[int]:
        return [int(x["worked"]) for x in self.items if isinstance(x, dict) and "worked" in x]


def test_node_promoter_never_promotes_a_waiting_dependent_and_node_runs_it_once_released(
    kue: Kue, kue_redis: EmbeddedRedis
) -> None:
    kue.env["KUE_CHECK_INTERVAL"] = "50"  # Node's promoter checks every 50 ms
    node = kue.spawn("work", "dep", "ok")
    lines = Lines(node)
    q = pykue.create_queue(kue_redis.url, settings=FAST)
    try:
        parent = q.create("parent", {}).save()
        child = q.create("dep", {"after": "parent"}).after(parent).save()
        plain = kue.run("create", "dep", "{}", '{"delay":300}')[0]["id"]  # an ordinary delayed job
        wait_for(lambda: plain in lines.worked(), timeout=15, what="Node's promoter to promote and run it")
        assert child.id not in lines.worked() and q.get_job(child.id or 0).state == "delayed"
        [seen] = kue.run("get", str(child.id))
        assert seen["json"]["state"] == "delayed"  # Node reads it as an ordinary (not due) job
        q.process("parent", lambda j: "done")
        wait_for(lambda: child.id in lines.worked(), timeout=15, what="Node to run the released dependent")
        wait_for(lambda: q.get_job(child.id or 0).state == "complete", what="Node to complete it")
    finally:
        stop(node)
        q.shutdown(1)
    assert lines.worked().count(child.id) == 1
    assert views_agree(kue, kue_redis.url, "dep") == {"inactive": 0, "active": 0, "complete": 2, "failed": 0,
                                                      "delayed": 0}  # fmt: skip


def test_rate_limit_and_unique_keys_with_node_workers_on_the_queue(kue: Kue, kue_redis: EmbeddedRedis) -> None:
    node = kue.spawn("work", "other", "ok", "2")
    lines = Lines(node)
    q = pykue.create_queue(kue_redis.url, settings=FAST)
    try:
        q.limit("lim", max=1, per_ms=60_000)
        node_made = [kue.run("create", "lim", "{}")[0]["id"] for _ in range(2)]  # Node-created, pykue-run
        others = [kue.run("create", "other", "{}")[0]["id"] for _ in range(3)]
        ran: list[int] = []
        q.process("lim", 2, lambda j: ran.append(j.id or 0))
        wait_for(lambda: sorted(lines.worked()) == sorted(others), what="Node's own jobs, undisturbed")
        wait_for(lambda: len(ran) == 1, what="one lim job in the window")
        assert q.inactive_count("lim") == 1 and q.failed_count() == 0  # the other waits
        q.limit("lim", None)
        wait_for(lambda: sorted(ran) == sorted(node_made), what="the second once the limit is lifted")

        held = q.create("other", {"n": 1}).unique("nightly").save()  # a Node worker runs this one
        assert q.create("other", {"n": 2}).unique("nightly").save().id == held.id
        wait_for(lambda: q.get_job(held.id or 0).state == "complete", what="Node to complete it")
        fresh = q.create("other", {"n": 3}).unique("nightly").save()  # Node ran no pykue hook: freed lazily
        assert fresh.id != held.id and not fresh.deduplicated
        wait_for(lambda: fresh.id in lines.worked(), what="Node to run the new one")
    finally:
        stop(node)
        q.shutdown(1)
    assert views_agree(kue, kue_redis.url, "lim")["complete"] == 2
    assert views_agree(kue, kue_redis.url, "other")["complete"] == 5
