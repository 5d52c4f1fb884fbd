"""Issue 12 rows 1, 5, 6, 7 against real Redis: job.wait, fleet-wide and Kue ctx pause,
clean, and repeatable/cron jobs (coordination tested with several worker processes)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

import pykue
from pykue import _codec as codec
from pykue._schedule import fire_due, next_key
from tests.conftest import FAST, PY, ROOT, py_env
from tests.helpers import wait_for
from tests.procs import Proc

# -- 5. job.wait ---------------------------------------------------------------------


def test_wait_returns_result_fails_and_times_out(tq: Any) -> None:
    ok = tq.create("w", {"n": 2}).save()
    bad = tq.create("w", {"n": 0}).save()
    slow = tq.create("w-slow", {}).save()
    tq.process("w", lambda job: 10 // job.data["n"])
    assert ok.wait(10) == 5
    with pytest.raises(pykue.JobFailedError) as failed:
        bad.wait(10)
    assert "by zero" in failed.value.error and failed.value.job_id == bad.id
    assert isinstance(failed.value, pykue.PykueError)
    with pytest.raises(pykue.WaitTimeoutError) as late:
        slow.wait(0.3)
    assert isinstance(late.value, TimeoutError)
    assert ok.wait(1) == 5  # finished before the call: read from the hash, no event needed
    with pytest.raises(pykue.JobFailedError):
        bad.wait(1)


def test_wait_on_unsaved_and_removed_jobs(tq: Any) -> None:
    with pytest.raises(pykue.InvalidJobError):
        tq.create("w", {}).wait(1)
    gone = tq.create("w", {}).save()
    gone.remove()
    with pytest.raises(pykue.JobNotFoundError):
        gone.wait(1)


def test_wait_leaves_no_listener_behind(queue: pykue.Queue) -> None:
    job = queue.create("w", {}).save()
    with pytest.raises(pykue.WaitTimeoutError):
        job.wait(0.1)
    wait_for(lambda: job.id not in queue.listeners.jobs, what="the waiter's registration to go")
    assert not job.has_listeners()


def test_wait_hears_an_outcome_written_right_after_its_read(url: str, prefix: str, r: redis.Redis) -> None:
    """Fault: the job completes between wait()'s hash read and its wait. The waiter was
    subscribed before the read, so the completion is still heard (no lost wake-up)."""
    with pykue.create_queue(url, prefix=prefix, settings=FAST) as q, \
            pykue.create_queue(url, prefix=prefix, settings=FAST) as other:  # fmt: skip
        job = q.create("race", {}).save()
        read = q._hgetall

        def read_then_complete(job_id: int | str) -> dict[str, str]:
            fields = read(job_id)  # still inactive
            other.process("race", lambda j: "finished meanwhile")
            wait_for(lambda: r.hget(f"{prefix}:job:{job_id}", "state") == "complete", what="the completion")
            return fields

        q._hgetall = read_then_complete  # type: ignore[method-assign]
        assert job.wait(5) == "finished meanwhile"


def test_async_wait_hears_an_outcome_written_right_after_its_read(url: str, prefix: str, r: redis.Redis) -> None:
    async def main() -> Any:
        async with pykue.create_async_queue(url, prefix=prefix, settings=FAST) as q:
            job = await q.create("race", {}).save()
            read = q._hgetall

            async def read_then_complete(job_id: int | str) -> dict[str, str]:
                fields = await read(job_id)
                await q.process("race", lambda j: "finished meanwhile")
                while r.hget(f"{prefix}:job:{job_id}", "state") != "complete":
                    await asyncio.sleep(0.01)
                return fields

            q._hgetall = read_then_complete  # type: ignore[method-assign]
            return await job.wait(5)

    assert asyncio.run(asyncio.wait_for(main(), 20)) == "finished meanwhile"


# -- 6. pause and resume -------------------------------------------------------------


def worker(url: str, prefix: str, job_type: str, mode: str = "record") -> Proc:
    p = Proc([PY, str(ROOT / "tests" / "feature_proc.py"), url, prefix, job_type, mode])
    p.line("ready")
    return p


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for p in started:
        if p.proc.poll() is None:
            p.proc.send_signal(signal.SIGTERM)
            try:
                p.finish(10)
            except Exception:
                p.kill()


def test_fleet_pause_stops_every_worker_process_and_resume_restarts(
        url: str, prefix: str, queue: pykue.Queue, r: redis.Redis, procs: list[Proc]) -> None:  # fmt: skip
    procs += [worker(url, prefix, "p", "slow"), worker(url, prefix, "p", "slow")]
    jobs = queue.save_many([queue.create("p", {"n": i}) for i in range(12)])
    wait_for(lambda: r.llen(f"{prefix}:ran") >= 2, what="both workers busy")
    queue.pause("p")
    paused_at = codec.now_ms()
    assert queue.paused() == ["p"]
    wait_for(lambda: queue.active_count("p") == 0, what="running jobs to finish")
    ran = r.llen(f"{prefix}:ran")
    assert ran < 12
    deadline = time.monotonic() + 1.0  # several block_timeouts of every worker: none claims
    while time.monotonic() < deadline:
        assert queue.active_count("p") == 0 and r.llen(f"{prefix}:ran") == ran
        time.sleep(0.05)
    assert queue.inactive_count("p") == 12 - ran
    started = [int(j.refresh().fields.get("started_at") or 0) for j in jobs]
    assert max(started) <= paused_at  # nothing was claimed after pause() returned
    queue.resume("p")
    assert queue.paused() == []
    for job in jobs:
        job.wait(20)
    assert queue.complete_count("p") == 12 and sorted(map(int, r.lrange(f"{prefix}:ran", 0, -1))) == [
        j.id for j in jobs
    ]


def test_pause_of_one_type_leaves_others_running(queue: pykue.Queue) -> None:
    queue.pause("stopped")
    held = queue.create("stopped", {}).save()
    free = queue.create("free", {}).save()
    queue.process("stopped", lambda j: "ran")
    queue.process("free", lambda j: "ran")
    assert free.wait(10) == "ran"
    with pytest.raises(pykue.WaitTimeoutError):
        held.wait(0.6)
    queue.resume("stopped")
    assert held.wait(10) == "ran"


def test_kue_ctx_pause_waits_for_running_jobs_then_resume(queue: pykue.Queue) -> None:
    paused = threading.Event()
    ctxs: list[Any] = []

    def handler(job: pykue.Job, ctx: Any, done: Any) -> None:
        if job.data.get("pause"):
            ctxs.append(ctx)
            ctx.pause(2000, lambda err: paused.set())
        done(None, job.id)

    first = queue.create("c", {"pause": True}).save()
    rest = queue.save_many([queue.create("c", {}) for _ in range(3)])
    queue.process("c", handler)
    assert paused.wait(10) and first.wait(5) == first.id
    deadline = time.monotonic() + 0.8  # four block_timeouts: a paused worker takes nothing
    while time.monotonic() < deadline:
        assert queue.inactive_count("c") == 3
        time.sleep(0.05)
    assert ctxs[0].resume() is True
    assert [j.wait(10) for j in rest] == [j.id for j in rest]


def test_kue_ctx_pause_fails_jobs_still_running_after_the_timeout(queue: pykue.Queue) -> None:
    release = threading.Event()
    called: list[Any] = []

    def handler(job: pykue.Job, ctx: Any, done: Any) -> None:
        ctx.pause(200, lambda err: called.append(err))
        release.wait(10)  # never calls done in time
        done(None, "late")

    job = queue.create("hang", {}).save()
    queue.process("hang", handler)
    with pytest.raises(pykue.JobFailedError) as failed:
        job.wait(10)
    release.set()
    assert failed.value.error == "Shutdown"
    wait_for(lambda: called == [None], what="the pause callback")


def test_async_kue_ctx_pause(url: str, prefix: str) -> None:
    async def main() -> list[Any]:
        async with pykue.create_async_queue(url, prefix=prefix, settings=FAST) as q:
            paused = asyncio.Event()
            ctxs: list[Any] = []

            async def handler(job: pykue.AsyncJob, ctx: Any, done: Any) -> None:
                if job.data.get("pause"):
                    ctxs.append(ctx)
                    ctx.pause(1000, lambda err: paused.set())
                done(None, job.id)

            await q.create("c", {"pause": True}).save()
            later = await q.create("c", {}).save()
            await q.process("c", handler)
            await asyncio.wait_for(paused.wait(), 10)
            with pytest.raises(pykue.WaitTimeoutError):
                await later.wait(0.6)
            assert ctxs[0].resume() is True
            return [await later.wait(10)]

    assert asyncio.run(asyncio.wait_for(main(), 30)) != [None]


# -- 7. clean ------------------------------------------------------------------------


def finished(q: pykue.Queue, n: int, job_type: str = "cl", fail: bool = False) -> list[pykue.Job]:
    jobs = q.save_many([q.create(job_type, {"i": i}) for i in range(n)])

    def run(job: pykue.Job) -> int:
        if fail:
            raise RuntimeError("no")
        return 1

    q.process(job_type, 4, run)
    state = "failed" if fail else "complete"
    wait_for(lambda: q.card(state, job_type) == n, what=f"{n} {state} jobs")
    return jobs


def age(r: redis.Redis, prefix: str, jobs: list[pykue.Job], ms: int) -> None:
    """Fault: these jobs finished `ms` ago (their updated_at is set back)."""
    for job in jobs:
        r.hset(f"{prefix}:job:{job.id}", "updated_at", codec.now_ms() - ms)


def test_clean_removes_only_finished_jobs_older_than_the_age(queue: pykue.Queue, r: redis.Redis, prefix: str) -> None:
    jobs = finished(queue, 10)
    failed = finished(queue, 3, "cf", fail=True)
    waiting = queue.create("idle", {}).save()  # no worker: stays inactive
    old = jobs[:6]
    age(r, prefix, old + failed, 3_600_000)
    age(r, prefix, [waiting], 3_600_000)
    r.rpush(f"{prefix}:job:{old[0].id}:log", "a line")
    removed = queue.clean("complete", 60_000)
    assert sorted(removed) == [j.id for j in old]
    for job in old:
        assert not r.exists(f"{prefix}:job:{job.id}") and not r.exists(f"{prefix}:job:{job.id}:log")
        with pytest.raises(pykue.JobNotFoundError):
            queue.get_job(job.id or 0)
    assert queue.complete_count() == 4 and queue.complete_count("cl") == 4
    assert queue.card(None) == 4 + 3 + 1  # gone from P:jobs too
    assert queue.inactive_count("idle") == 1  # unfinished jobs are never cleaned
    assert sorted(queue.clean("failed", 60_000)) == [j.id for j in failed]
    assert queue.clean("complete", 60_000) == []


def test_clean_is_bounded_by_limit_and_batches(queue: pykue.Queue, r: redis.Redis, prefix: str) -> None:
    jobs = queue.save_many([queue.create("big", {}) for _ in range(1200)])
    ids = [j.id for j in jobs]
    p = r.pipeline(transaction=False)
    for job_id in ids:  # fault: 1200 jobs that completed an hour ago (Kue's complete-state layout)
        z = f"{len(str(job_id)):02d}|{job_id}"
        p.zrem(f"{prefix}:jobs:inactive", z).zrem(f"{prefix}:jobs:big:inactive", z)
        p.zadd(f"{prefix}:jobs:complete", {z: 0}).zadd(f"{prefix}:jobs:big:complete", {z: 0})
        p.hset(f"{prefix}:job:{job_id}", mapping={"state": "complete", "updated_at": codec.now_ms() - 3_600_000})
    p.execute()
    calls = _evalsha_calls(r)
    first = queue.clean("complete", 1000, limit=700)
    assert len(first) == 700 and calls + 2 <= _evalsha_calls(r)  # 500 looked at per call, at most
    rest = queue.clean("complete", 1000)
    assert sorted(first + rest) == ids and queue.complete_count() == 0


def _evalsha_calls(r: redis.Redis) -> int:
    return int(r.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


@pytest.mark.parametrize(("args", "needle"), [
    (("active", 0), "complete or failed"), (("nope", 0), "state must be"),
    (("complete", -1), "older_than_ms"), (("complete", 0, 0), "limit"), (("complete", 1.5), "older_than_ms"),
])  # fmt: skip
def test_clean_refuses_bad_arguments(queue: pykue.Queue, args: tuple[Any, ...], needle: str) -> None:
    with pytest.raises(pykue.InvalidJobError, match=needle):
        queue.clean(*args)


# -- 1. repeatable and cron jobs -----------------------------------------------------


@pytest.mark.parametrize(("kw", "needle"), [
    ({}, "exactly one"), ({"cron": "* * * * *", "every_ms": 100}, "exactly one"),
    ({"cron": "61 * * * *"}, "cron"), ({"every_ms": 0}, "every_ms"), ({"every_ms": True}, "every_ms"),
    ({"cron": "* * * * *", "tz": "Mars/Olympus"}, "time zone"), ({"every_ms": 100, "tz": "UTC"}, "cron"),
    ({"every_ms": 100, "delay": 5}, "delay"), ({"every_ms": 100, "priority": "urgent"}, "priority"),
    ({"every_ms": 100, "key": ""}, "key"),
])  # fmt: skip
def test_repeat_refuses_bad_schedules(tq: Any, kw: dict[str, Any], needle: str) -> None:
    with pytest.raises(pykue.InvalidJobError, match=needle):
        tq.repeat("r", {}, **kw)
    assert tq.schedules() == []


def test_repeat_schedules_and_unrepeat(tq: Any) -> None:
    tokyo = tq.repeat("report", {"k": 1}, cron="0 9 * * *", tz="Asia/Tokyo", priority="high")
    assert tokyo.next_run_ms % 86_400_000 == 0  # 09:00 in Tokyo is midnight UTC
    every = tq.repeat("ping", every_ms=250, key="pinger")
    assert every.key == "pinger" and every.next_run_ms % 250 == 0
    assert [s.key for s in tq.schedules()] == ["pinger", tokyo.key]
    again = tq.repeat("ping", every_ms=250, key="pinger")  # unchanged: keeps its next run
    assert again.next_run_ms == every.next_run_ms
    assert tq.unrepeat("pinger") is True and tq.unrepeat("pinger") is False
    assert [(s.type, s.data, s.cron, s.tz, s.options) for s in tq.schedules()] == [
        ("report", {"k": 1}, "0 9 * * *", "Asia/Tokyo", {"priority": "high"})
    ]


def test_repeated_jobs_are_ordinary_kue_jobs(tq: Any, r: redis.Redis, prefix: str) -> None:
    sched = tq.repeat("beat", {"n": 1}, every_ms=50, priority="high", attempts=2)
    tq.process("beat", lambda job: job.data["n"])
    wait_for(lambda: tq.complete_count("beat") >= 2, what="two ticks")
    job = tq.jobs("complete", "beat")[0]
    assert job.data == {"n": 1} and job.opts.priority == -10 and job.opts.attempts == 2
    raw = r.hgetall(f"{prefix}:job:{job.id}")
    assert raw["pykue_repeat"] == sched.key and int(raw["pykue_tick"]) % 50 == 0 and raw["type"] == "beat"


def _fire(url: str, prefix: str) -> list[int]:
    async def go() -> list[int]:
        client = pykue.ConnectionSettings.of(url).async_client()
        try:
            return await fire_due(client, pykue._scripts.AsyncScripts(client), pykue.Keys(prefix))
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_missed_ticks_are_not_replayed_in_a_burst(queue: pykue.Queue, r: redis.Redis, url: str, prefix: str) -> None:
    sched = queue.repeat("m", every_ms=10_000)  # long enough that no new tick falls due under load
    r.zadd(next_key(queue.keys), {sched.key: sched.next_run_ms - 10_000 * 1000})  # fault: 1,000 ticks of outage
    assert len(_fire(url, prefix)) == 1  # one catch-up run, not a thousand
    assert _fire(url, prefix) == []
    nxt = int(r.zscore(next_key(queue.keys), sched.key) or 0)
    assert nxt > codec.now_ms() - 10_000 and nxt % 10_000 == 0
    assert queue.inactive_count("m") == 1


def test_a_tick_fires_once_when_processes_race(queue: pykue.Queue, r: redis.Redis, url: str, prefix: str) -> None:
    """Fault: two firers read the same due tick; the second one's script finds it moved on."""
    sched = queue.repeat("once", every_ms=1000)
    r.zadd(next_key(queue.keys), {sched.key: 1000})
    due = r.zrangebyscore(next_key(queue.keys), "-inf", codec.now_ms(), withscores=True)
    spec = r.hget(f"{prefix}:pykue:repeat", sched.key)
    from pykue._schedule import _fire_call

    call = _fire_call(queue.keys, due[0][0], int(due[0][1]), spec, codec.now_ms())
    assert call is not None
    assert queue.scripts.run(call) > 0
    assert queue.scripts.run(call) == 0
    assert queue.inactive_count("once") == 1


def test_repeat_exactly_once_per_tick_across_processes_and_restarts(
        url: str, prefix: str, queue: pykue.Queue, r: redis.Redis, procs: list[Proc]) -> None:  # fmt: skip
    """Three worker processes race for every tick (each looks every 10 ms); one is killed
    with SIGKILL and a new one started: every tick still gives exactly one job."""
    procs += [worker(url, prefix, "tick") for _ in range(3)]
    queue.repeat("tick", {"beat": True}, every_ms=50)
    wait_for(lambda: r.llen(f"{prefix}:ran") >= 10, what="ten ticks")
    procs[0].proc.send_signal(signal.SIGKILL)
    procs[0].finish(10)
    procs.append(worker(url, prefix, "tick"))
    seen = r.llen(f"{prefix}:ran")
    wait_for(lambda: r.llen(f"{prefix}:ran") >= seen + 10, what="ten more ticks")
    assert queue.unrepeat("tick:every 50:")
    ids = queue.job_ids(None, None)
    ticks = [int(r.hget(f"{prefix}:job:{i}", "pykue_tick") or -1) for i in ids]
    assert len(ticks) >= 20 and len(set(ticks)) == len(ticks), "a tick was enqueued twice"
    assert all(t % 50 == 0 for t in ticks)


# -- the operator's commands ---------------------------------------------------------


def cli(url: str, prefix: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "pykue.cli", *args, "--redis", url, "--prefix", prefix], env=py_env(),
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_cli_schedules_pause_resume_clean(queue: pykue.Queue, r: redis.Redis, url: str, prefix: str) -> None:
    assert cli(url, prefix, "schedules").stdout.strip() == "no schedules"
    queue.repeat("nightly", cron="30 2 * * *", tz="Europe/Paris", key="nightly")
    out = cli(url, prefix, "schedules")
    assert out.returncode == 0 and out.stdout.startswith("nightly\tnightly\tcron 30 2 * * * (Europe/Paris)\tnext ")
    assert cli(url, prefix, "unrepeat", "nightly").returncode == 0 and queue.schedules() == []
    gone = cli(url, prefix, "unrepeat", "nightly")
    assert gone.returncode == 2 and gone.stderr.startswith("pykue: error: no schedule with key 'nightly'")
    assert cli(url, prefix, "pause", "mail").stdout.strip() == "mail: paused (paused types: mail)"
    assert queue.paused() == ["mail"]
    assert cli(url, prefix, "resume", "mail").returncode == 0 and queue.paused() == []
    jobs = finished(queue, 4)
    age(r, prefix, jobs[:3], 2 * 3_600_000)
    bad = cli(url, prefix, "clean", "complete", "--older-than", "an hour")
    assert bad.returncode == 2 and "--older-than" in bad.stderr and queue.complete_count() == 4
    out = cli(url, prefix, "clean", "complete", "--older-than", "1h")
    assert out.stdout.strip() == "removed 3 complete job(s)" and queue.complete_count() == 1


# -- 7b. remove_on_complete / remove_on_fail with an age or a count ------------------


def test_remove_on_complete_keeps_a_count(queue: pykue.Queue, r: redis.Redis, prefix: str) -> None:
    removed: list[Any] = []
    queue.on("job remove", lambda job_id, *a: removed.append(job_id))
    jobs = []
    queue.process("keep", lambda job: job.data["i"] + 1)
    for i in range(5):  # one at a time, so "the latest two" is well defined
        job = queue.create("keep", {"i": i}, remove_on_complete=2).save()
        assert job.wait(10) == i + 1
        jobs.append(job)
    assert [j.id for j in queue.jobs("complete", "keep")] == [jobs[3].id, jobs[4].id]
    for job in jobs[:3]:
        assert not r.exists(f"{prefix}:job:{job.id}")
    wait_for(lambda: sorted(removed) == [j.id for j in jobs[:3]], what="Kue's remove events")


def test_remove_on_complete_by_age_spares_retried_jobs(queue: pykue.Queue, r: redis.Redis, prefix: str) -> None:
    queue.process("aged", lambda job: "ok")
    old = [queue.create("aged", {}, remove_on_complete={"age": 60_000}).save() for _ in range(3)]
    for job in old:
        job.wait(10)
    kept = f"{prefix}:pykue:kept:complete:aged"
    r.zadd(kept, {str(j.id): codec.now_ms() - 3_600_000 for j in old})  # fault: they finished an hour ago
    old[0].failed()  # and one has been moved on since (not complete any more)
    fresh = queue.create("aged", {}, remove_on_complete={"age": 60_000}).save()
    fresh.wait(10)
    assert [j.id for j in queue.jobs("complete", "aged")] == [fresh.id]
    assert r.hget(f"{prefix}:job:{old[0].id}", "state") == "failed"  # not complete any more: left alone


def test_remove_on_fail_at_once_or_by_count(queue: pykue.Queue, r: redis.Redis, prefix: str) -> None:
    def boom(job: pykue.Job) -> None:
        raise RuntimeError("no")

    heard: list[tuple[str, int]] = []
    queue.on("job failed", lambda job_id, *a: heard.append(("failed", job_id)))
    queue.on("job remove", lambda job_id, *a: heard.append(("remove", job_id)))
    gone = queue.create("f", {}, remove_on_fail=True, attempts=2).save()
    queue.process("f", boom)
    wait_for(lambda: heard == [("failed", gone.id), ("remove", gone.id)], what="failed, then removed at once")
    assert not r.exists(f"{prefix}:job:{gone.id}")
    with pytest.raises(pykue.JobNotFoundError):  # a waiter that comes later finds no outcome to read
        gone.wait(1)
    kept = [queue.create("f", {}, remove_on_fail={"count": 1}).save() for _ in range(3)]
    wait_for(lambda: sum(e[0] == "failed" for e in heard) == 4, what="three more failures")
    assert queue.failed_count("f") == 1
    assert {j for e, j in heard if e == "remove"} == {gone.id, kept[0].id, kept[1].id}
    assert queue.get_job(queue.job_ids("failed", "f")[0]).opts.keep == {"failed": ",1"}


@pytest.mark.parametrize("value", [-1, 1.5, "3", {"age": -5}, {"ttl": 5}, {}, {"count": True}])
def test_remove_on_options_refuse_bad_values(queue: pykue.Queue, value: Any) -> None:
    for option in ("remove_on_complete", "remove_on_fail"):
        with pytest.raises(pykue.InvalidJobError, match=option):
            queue.create("x", {}, **{option: value})


def test_a_corrupt_schedule_is_skipped_and_the_others_fire(
    queue: pykue.Queue, r: redis.Redis, url: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    good = queue.repeat("good", every_ms=100)
    bad = queue.repeat("bad", every_ms=100)
    r.hset(f"{prefix}:pykue:repeat", bad.key, '{"type": "bad", "every_ms": "not json')  # fault: a corrupt record
    r.zadd(next_key(queue.keys), {good.key: 1000, bad.key: 1000})
    assert [s.key for s in queue.schedules()] == [good.key]
    assert len(_fire(url, prefix)) == 1 and queue.inactive_count("good") == 1 and queue.inactive_count("bad") == 0
    assert "is corrupt" in caplog.text
    r.set(f"{prefix}:job:{int(r.get(f'{prefix}:ids') or 0) + 1}", "not a hash")  # fault: the next job key is taken
    r.zadd(next_key(queue.keys), {good.key: 1000})
    with pytest.raises(redis.ResponseError, match="not a hash"):
        _fire(url, prefix)
    assert r.zscore(next_key(queue.keys), good.key) == 1000 and queue.inactive_count("good") == 1  # nothing written
