"""Issue 12's pykue-only keys (P:pykue:repeat*, P:pykue:paused) and operations (job.wait,
clean) beside a real Node Kue 0.11.6 worker on the same queue: Node works on as before."""

from __future__ import annotations

import signal

import pykue
from pykue import EmbeddedRedis
from tests.conftest import FAST, PY, ROOT
from tests.helpers import wait_for
from tests.interop.conftest import Kue, stop
from tests.procs import Proc


def test_node_worker_runs_repeated_jobs_and_ignores_pause_and_clean(kue: Kue, kue_redis: EmbeddedRedis) -> None:
    node = kue.spawn("work", "tick", "ok")
    # a pykue worker process (of another type) whose Maintenance fires the schedule
    firer = Proc([PY, str(ROOT / "tests" / "feature_proc.py"), kue_redis.url, "q", "local", "record"])
    firer.line("ready")
    try:
        with pykue.create_queue(kue_redis.url, prefix="q", settings=FAST) as q:
            sched = q.repeat("tick", {"from": "pykue"}, every_ms=100, priority="high")
            wait_for(lambda: q.complete_count("tick") >= 3, what="Node to complete three repeated jobs")
            done = q.jobs("complete", "tick")
            assert all(j.result == {"by": "node", "id": j.id} and j.data == {"from": "pykue"} for j in done)
            assert [s.key for s in q.schedules()] == [sched.key]

            q.pause("tick")  # pykue workers stop claiming "tick"; Kue has no such key and goes on
            n = q.complete_count("tick")
            wait_for(lambda: q.complete_count("tick") >= n + 2, what="Node to go on while tick is paused")
            assert q.unrepeat(sched.key)

            job = q.create("tick", {"from": "a waiting producer"}).save()
            assert job.wait(20) == {"by": "node", "id": job.id}  # a pykue producer waits on Node's work

            before = q.complete_count("tick")
            removed = q.clean("complete", 0)
            assert len(removed) >= before and q.complete_count("tick") == 0
            [gone] = kue.run("get", str(removed[0]))
            assert "doesnt exist" in gone["error"]
            assert kue.run("counts", "tick")[0]["complete"] == 0

            after = q.create("tick", {"after": "clean"}).save()  # Node still works after all of it
            assert after.wait(20) == {"by": "node", "id": after.id}
    finally:
        firer.proc.send_signal(signal.SIGTERM)
        firer.finish(10)
        lines = stop(node)
    assert '"worked"' in lines
