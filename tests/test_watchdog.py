"""The fleet watchdog's Lua passes, driven with an explicit clock against real Redis.

Jobs are written exactly as Node Kue 0.11.6 writes them (HSET fields, then its Job#state
MULTI), so these tests are the Node-side states without a Node process; the interop suite
(tests/interop/test_node_fleet.py) makes the same states with the real kue@0.11.6 worker."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio as aredis

from pykue import EmbeddedRedis, Keys, Settings
from pykue import _scripts as sc
from pykue._scripts import AsyncScripts, Scripts
from pykue._watchdog import AckLog, expire_unowned, parse_duration_ms
from tests.conftest import PY, ROOT, py_env
from tests.helpers import wait_for

T0 = 1_800_000_000_000  # the clock the passes are given: nothing here depends on the real time


class Fleet:
    """One prefix on one Redis: writes Kue-shaped jobs and runs watchdog passes at a given time."""

    def __init__(self, r: redis.Redis, prefix: str) -> None:
        self.r, self.prefix, self.keys = r, prefix, Keys(prefix)
        self.scripts = Scripts(r)

    def job(self, job_id: int, state: str, *, updated_at: int = T0, job_type: str = "mail", priority: int = 0,
            indexed: bool = True, **fields: Any) -> int:  # fmt: skip
        """Kue's save (fields, P:jobs) and state() (state sets, wake-up token); `indexed=False`
        leaves the job as a Node worker that dies between zpop and job.active() does."""
        z = f"{len(str(job_id)):02d}|{job_id}"
        self.r.hset(self.keys.job(job_id), mapping={"type": job_type, "priority": priority, "state": state,
                    "created_at": updated_at, "updated_at": updated_at, "data": "{}", **fields})  # fmt: skip
        self.r.zadd(self.keys.jobs, {z: priority})
        if indexed:
            score = int(fields["ttl"]) + updated_at if state == "active" and "ttl" in fields else priority
            self.r.zadd(self.keys.state(state), {z: score})
            self.r.zadd(self.keys.state(state, job_type), {z: priority})
        return job_id

    def run(self, now: int, stuck_after: int = 1000, max_stalled: int = 1, count: int = 100,
            orphan_after: int | None = None) -> list[int]:  # fmt: skip
        orphans = stuck_after if orphan_after is None else orphan_after
        call = sc.watchdog(self.keys, now=now, stuck_after_ms=stuck_after, max_stalled=max_stalled, batch=count,
                           orphan_after_ms=orphans)  # fmt: skip
        return self.scripts.run(call)

    def cycle(self, now: int, count: int = 100) -> tuple[int, int]:
        """Passes until the key SCAN is back at its start: (orphans indexed, passes)."""
        found, passes = 0, 0
        while True:
            passes += 1
            found += self.run(now, count=count)[4]
            if self.r.hget(self.keys.watchdog, "keys") == "0":
                return found, passes
            assert passes < 1000

    def state(self, job_id: int) -> str | None:
        return self.r.hget(self.keys.job(job_id), "state")

    def indexed(self, job_id: int, state: str, job_type: str = "mail") -> bool:
        z = f"{len(str(job_id)):02d}|{job_id}"
        return None not in (
            self.r.zscore(self.keys.state(state), z),
            self.r.zscore(self.keys.state(state, job_type), z),
        )


@pytest.fixture
def fleet(r: redis.Redis, prefix: str) -> Fleet:
    return Fleet(r, prefix)


def test_a_dead_node_workers_job_returns_once_stuck_after_has_passed(fleet: Fleet) -> None:
    fleet.job(1, "active", workerId="kue:host:99:mail:1")
    assert fleet.run(T0 + 999) == [0, 0, 0, 0, 0, 0] and fleet.state(1) == "active"  # maybe still working
    assert fleet.run(T0 + 1000) == [0, 0, 1, 0, 0, 0]
    assert fleet.state(1) == "inactive" and fleet.indexed(1, "inactive") and not fleet.indexed(1, "active")
    assert fleet.r.llen(fleet.keys.tokens("mail")) == 1  # a Node worker blocked in BLPOP wakes up
    assert "back to inactive" in fleet.r.lrange(fleet.keys.log(1), 0, -1)[0]
    assert fleet.r.hget(fleet.keys.job(1), "attempts") is None  # a crash is not the handler's failure


def test_off_by_default_and_never_touches_owned_or_ttl_jobs(fleet: Fleet) -> None:
    fleet.job(1, "active")
    fleet.job(2, "active")
    fleet.r.hset(fleet.keys.owners, "2", "w1:1:1")  # a live pykue worker's: the reaper's business
    fleet.job(3, "active", ttl=500)  # the TTL checker's: Kue spends an attempt on it
    assert fleet.run(T0 + 10_000, stuck_after=0) == [0, 0, 0, 0, 0, 0]
    assert fleet.state(1) == "active"
    assert fleet.run(T0 + 10_000) == [0, 0, 1, 0, 0, 0]
    assert [fleet.state(i) for i in (1, 2, 3)] == ["inactive", "active", "active"]


def test_a_stale_active_entry_of_a_job_that_moved_on_is_dropped(fleet: Fleet) -> None:
    """Kue #944: Node's stale job object changed state without leaving the active sets."""
    fleet.job(1, "failed", updated_at=T0)
    for key in (fleet.keys.state("active"), fleet.keys.state("active", "mail")):
        fleet.r.zadd(key, {"01|1": 0})
    assert fleet.run(T0 + 999)[5] == 0
    assert fleet.run(T0 + 1000)[5] == 1
    assert not fleet.indexed(1, "active") and fleet.indexed(1, "failed") and fleet.state(1) == "failed"


def test_corrupt_keys_are_skipped_and_the_rest_goes_on(fleet: Fleet) -> None:
    """Redis does not roll back a script that errors half-way: a key of the wrong type must
    be seen before anything is written, and skip one job, not the pass."""
    fleet.job(1, "active")
    fleet.r.set(fleet.keys.job(5), "not a hash")
    fleet.r.zadd(fleet.keys.state("active"), {"01|5": 0})
    fleet.r.hset(fleet.keys.owners, "5", "w1:1:1")
    fleet.job(6, "active", job_type="bad")
    fleet.r.set(fleet.keys.state("inactive", "bad"), "not a zset")
    assert fleet.run(T0 + 1000)[:3] == [1, 0, 1]
    assert fleet.state(1) == "inactive" and fleet.state(6) == "active"
    fleet.r.set(fleet.keys.watchdog, "not a hash")
    with pytest.raises(redis.ResponseError, match="is a string, not a hash; nothing was written"):
        fleet.run(T0 + 2000)


def test_stalls_of_one_run_add_up_and_an_outcome_starts_a_new_count(fleet: Fleet) -> None:
    fleet.job(1, "active")
    assert fleet.run(T0 + 1000)[2] == 1
    fleet.r.hset(fleet.keys.job(1), "attempts", 1)  # a Node worker failed an attempt since: a new run
    fleet.r.hset(fleet.keys.job(1), "state", "active")
    fleet.r.zadd(fleet.keys.state("active"), {"01|1": 0})
    assert fleet.run(T0 + 2000)[2:4] == [1, 0]  # main: failed, "stalled more than allowable limit"
    fleet.r.hset(fleet.keys.job(1), "state", "active")
    fleet.r.zadd(fleet.keys.state("active"), {"01|1": 0})
    assert fleet.run(T0 + 3000)[2:4] == [0, 1]  # the same run stalled twice: max_stalled=1 is exceeded
    assert fleet.state(1) == "failed" and fleet.r.hget(fleet.keys.job(1), "error").startswith("job stalled")


def test_the_reaper_counts_a_stall_against_the_run_it_belongs_to(fleet: Fleet) -> None:
    """A count from an earlier run (Node completed or failed the job since) starts over."""
    for job_id, attempts in ((1, 0), (2, 1)):
        fleet.job(job_id, "active", attempts=attempts)
        fleet.r.hset(fleet.keys.owners, str(job_id), f"dead:1:{job_id}")
        fleet.r.sadd(fleet.keys.held("dead"), job_id)
    fleet.r.zadd(fleet.keys.workers, {"dead": 0})
    fleet.r.hset(fleet.keys.stalls, mapping={"1": "1@0/", "2": "1@0/"})  # both stalled once at attempts 0
    assert fleet.scripts.run(sc.reap(fleet.keys, now=T0, max_stalled=1, limit=100)) == sc.Reaped(1, 1)
    assert fleet.state(1) == "failed" and fleet.state(2) == "inactive"
    assert fleet.r.hget(fleet.keys.stalls, "2") == "1@1/"


def test_lease_entries_of_jobs_moved_behind_pykues_back_are_dropped(fleet: Fleet) -> None:
    fleet.job(1, "complete")  # kue.app's PUT /job/1/state/complete while a pykue worker held it
    fleet.job(2, "active")
    for job_id, worker in ((1, "w1"), (2, "w2"), (3, "w3")):  # job 3: removed by Node, hash gone
        fleet.r.hset(fleet.keys.owners, str(job_id), f"{worker}:7:1")
        fleet.r.sadd(fleet.keys.held(worker), job_id)
    assert fleet.run(T0, stuck_after=0)[0] == 2
    assert fleet.r.hgetall(fleet.keys.owners) == {"2": "w2:7:1"}
    assert not fleet.r.exists(fleet.keys.held("w1"), fleet.keys.held("w3"))
    assert fleet.r.smembers(fleet.keys.held("w2")) == {"2"}


def test_stall_counts_and_ttl_marks_of_ended_runs_are_swept(fleet: Fleet) -> None:
    fleet.job(1, "complete", attempts=1)
    fleet.job(2, "inactive", attempts=2)
    fleet.job(3, "inactive", attempts=1)
    fleet.r.hset(fleet.keys.stalls, mapping={"1": "1@0/", "2": "1@1/", "3": "1@1/", "4": "1@0/"})
    fleet.r.hset(fleet.keys.ttl_marks, mapping={"1": f"5@{T0}", "3": f"5@{T0}"})
    assert fleet.run(T0, stuck_after=0)[1] == 5
    assert fleet.r.hgetall(fleet.keys.stalls) == {"3": "1@1/"}  # the only count of a run still going
    assert not fleet.r.exists(fleet.keys.ttl_marks)


def test_orphans_without_the_stuck_sweep(fleet: Fleet) -> None:
    """Re-indexing is on by default (orphan_after_ms, 5 min); returning active jobs is opt-in."""
    fleet.job(1, "active")
    fleet.job(2, "inactive", indexed=False)
    for now in (T0, T0 + 1000):  # the shared test server holds other tests' keys: SCAN from the start
        fleet.r.hset(fleet.keys.watchdog, "keys", 0)
        while fleet.run(now, stuck_after=0, orphan_after=1000)[4] == 0:
            if fleet.r.hget(fleet.keys.watchdog, "keys") == "0":
                break
    assert fleet.indexed(2, "inactive") and fleet.state(1) == "active"


@pytest.fixture(scope="module")
def private() -> Iterator[EmbeddedRedis]:
    """SCAN walks the whole database: a private server keeps other tests' keys out of the walk."""
    with EmbeddedRedis() as srv:
        yield srv


@pytest.fixture
def own(private: EmbeddedRedis, prefix: str) -> Iterator[Fleet]:
    client = redis.Redis.from_url(private.url, decode_responses=True)
    yield Fleet(client, prefix)
    client.close()


def test_an_orphan_is_indexed_again_once_seen_orphaned_for_stuck_after(own: Fleet) -> None:
    fleet = own
    fleet.job(1, "inactive", indexed=False)
    fleet.job(2, "inactive", indexed=False)  # a live Node worker between its zpop and job.active()
    fleet.job(3, "delayed", indexed=False, promote_at=T0 + 5000)
    fleet.job(4, "inactive")
    fleet.r.set(f"{fleet.prefix}:job:types", "not a job")  # P:job:* also matches Kue's own keys
    assert fleet.cycle(T0 + 1000)[0] == 0  # a first sight is only noted, however old the job
    fleet.job(2, "active", updated_at=T0 + 1001)  # ... and that worker makes it active
    assert fleet.cycle(T0 + 1999)[0] == 0
    assert fleet.cycle(T0 + 2000)[0] == 2
    assert fleet.indexed(1, "inactive") and fleet.indexed(3, "delayed")
    assert fleet.indexed(2, "active") and not fleet.indexed(2, "inactive")
    assert fleet.r.zscore(fleet.keys.state("delayed"), "01|3") == T0 + 5000
    assert fleet.r.llen(fleet.keys.tokens("mail")) == 1
    assert "indexed again" in fleet.r.lrange(fleet.keys.log(1), 0, -1)[0]
    assert not fleet.r.exists(fleet.keys.orphans)
    assert fleet.cycle(T0 + 3000)[0] == 0  # nothing twice


def test_orphans_are_found_incrementally_with_a_persisted_cursor(own: Fleet, prefix: str) -> None:
    fleet = Fleet(own.r, "{" + prefix + "}*")  # hash-tagged, and with a glob character escaped for SCAN MATCH
    Fleet(own.r, prefix + "x").job(9, "inactive", indexed=False)  # another queue's orphan: never touched
    orphans = {7, 150, 299, 300, 451}
    for job_id in range(1, 501):
        fleet.job(job_id, "inactive", indexed=job_id not in orphans)
    assert fleet.cycle(T0, count=20)[0] == 0
    found, passes = fleet.cycle(T0 + 1000, count=20)
    assert found == len(orphans) and all(fleet.indexed(i, "inactive") for i in orphans)
    assert passes >= 10  # ~1,000 keys at COUNT 20: many short calls, never one long one
    assert fleet.cycle(T0 + 1000, count=20)[0] == 0
    assert own.r.zcard(f"{prefix}x:jobs:inactive") == 0


def test_a_node_ttl_job_nobody_acks_is_announced_then_failed_after_the_grace(url: str, fleet: Fleet) -> None:
    fleet.job(1, "active", ttl=100, started_at=T0, max_attempts=2)
    fleet.job(2, "active", ttl=100, started_at=T0)
    fleet.r.hset(fleet.keys.owners, "2", "w1:1:1")  # a pykue worker's: fail.lua's "ttl" mode handles it

    def expire(now: int, *ids: int) -> list[int]:
        jobs = [(job_id, -1) for job_id in ids]
        return fleet.scripts.run(sc.expire_unowned(fleet.keys, now=now, grace_ms=500, jobs=jobs))

    assert expire(T0 + 50, 1) == [0]  # not past its TTL yet
    ps = fleet.r.pubsub()
    ps.subscribe(fleet.keys.events)
    assert expire(T0 + 100, 1, 2) == [1, 0]
    assert expire(T0 + 599, 1) == [1]  # announced again: a Kue worker may still ack
    assert expire(T0 + 600, 1) == [2]
    assert fleet.state(1) == "inactive" and fleet.r.hget(fleet.keys.job(1), "attempts") == "1"
    assert fleet.r.hget(fleet.keys.job(1), "error") == "TTL exceeded"
    heard = []
    while (msg := ps.get_message(timeout=0.5)) is not None:
        if msg["type"] == "message":
            heard.append(msg["data"].split('"event":"')[1].split('"')[0])
    assert heard == ["ttl exceeded", "ttl exceeded", "error", "enqueue", "failed attempt"]
    ps.close()

    fleet.job(3, "active", ttl=100, started_at=T0)
    assert expire(T0 + 100, 3) == [1]
    fleet.r.hset(fleet.keys.job(3), "started_at", T0 + 700)  # a new run (Node failed it and ran it again)
    fleet.r.zadd(fleet.keys.state("active"), {"01|3": T0 + 800})
    assert expire(T0 + 800, 3) == [1]  # a new grace for the new run
    assert expire(T0 + 1300, 3) == [2]


def test_an_ack_heard_keeps_pykue_from_failing_the_job_a_second_time(url: str, fleet: Fleet) -> None:
    """The Kue worker that acked is failing the job itself; pykue's checker leaves it alone."""
    started = int(time.time() * 1000) - 10_000  # expire_unowned reads the real clock
    fleet.job(1, "active", ttl=100, started_at=started, updated_at=started)
    acked = AckLog(keep_s=60)
    acked.hear('{"id":1,"event":"ttl exceeded ack","args":["ttl exceeded ack"]}')

    async def twice(acks: AckLog) -> list[int]:
        client = aredis.Redis.from_url(url, decode_responses=True)
        try:
            scripts = AsyncScripts(client)
            first = await expire_unowned(client, scripts, fleet.keys, [1], 0, acks)
            return first + await expire_unowned(client, scripts, fleet.keys, [1], 0, acks)
        finally:
            await client.aclose()

    assert asyncio.run(twice(acked)) == [] and not fleet.r.exists(fleet.keys.ttl_marks)
    assert fleet.state(1) == "active"
    assert asyncio.run(twice(AckLog(keep_s=60))) == [1]  # announced, then failed: nobody acked
    assert fleet.r.hget(fleet.keys.job(1), "attempts") == "1" and fleet.state(1) == "failed"


def test_durations_and_settings() -> None:
    assert [parse_duration_ms(s) for s in ("250", "250ms", "30s", "5m", "1h")] == [250, 250, 30_000, 300_000,
                                                                                   3_600_000]  # fmt: skip
    for bad in ("", "5q", "-1s", "1.5s"):
        with pytest.raises(ValueError, match="a duration looks like"):
            parse_duration_ms(bad)
    assert (Settings().stuck_after_ms, Settings().orphan_after_ms) == (0, 300_000)  # stuck: opt-in; orphans: 5 min
    for bad_settings in ({"stuck_after_ms": -1}, {"orphan_after_ms": -1}, {"ttl_grace_ms": -1}, {"watchdog_batch": 0}):
        with pytest.raises(ValueError):
            Settings(**bad_settings)


def test_pykue_worker_stuck_after(url: str, prefix: str, fleet: Fleet) -> None:
    cmd = [PY, "-m", "pykue.cli", "worker", "cli_handlers:double", "--type", "mail", "--redis", url, "--prefix", prefix]
    bad = subprocess.run([*cmd, "--stuck-after", "soon"], env=py_env(), capture_output=True, text=True,
                         cwd=ROOT / "tests", timeout=30)  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "a duration looks like" in bad.stderr
    fleet.job(1, "active", data='{"n": 21}', updated_at=0)  # its Node worker died long ago
    worker = subprocess.Popen([*cmd, "--stuck-after", "300ms"], env=py_env(), cwd=ROOT / "tests",
                              stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_for(lambda: fleet.state(1) == "complete", timeout=20, what="the stuck job to run")
    finally:
        worker.terminate()
        worker.wait(timeout=15)
    assert fleet.r.hget(fleet.keys.job(1), "result") == "42"
