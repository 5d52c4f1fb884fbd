"""The fault suite: real Redis servers restarted, killed, stalled, paused and filled while
workers drain jobs. Every case ends with the same audit (`audit`): 0 jobs lost, 0 completed
twice, 0 left active or held, 0 handlers started on a job that was finished or not ours."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import pykue
from pykue import EmbeddedRedis
from pykue import _scripts as sc
from pykue._codec import now_ms
from tests.conftest import FAST, PY, py_env
from tests.helpers import wait_for
from tests.worker_proc import SEP, bad_start, record_start

WORKER = str(Path(__file__).with_name("worker_proc.py"))


@pytest.fixture(autouse=True)
def _no_queue_left_running() -> Iterator[None]:
    """A failed case must not leave workers running against a server that is gone."""
    made: list[pykue.Queue] = []
    real = pykue.create_queue

    def tracked(*args: Any, **kw: Any) -> pykue.Queue:
        made.append(real(*args, **kw))
        return made[-1]

    pykue.create_queue = tracked  # type: ignore[assignment]
    try:
        yield
    finally:
        pykue.create_queue = real  # type: ignore[assignment]
        for q in made:
            q.shutdown(1)


@pytest.fixture
def srv() -> Iterator[EmbeddedRedis]:
    """A private server for a case that restarts, kills, stalls or fills Redis (AOF, fsync always)."""
    with EmbeddedRedis(aof=True) as server:
        yield server


def recorder(url: str, prefix: str, who: str) -> Callable[[pykue.Job], Any]:
    """A handler that records its start (retrying through a Redis outage) and works data["ms"]."""
    client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=10)

    def handler(job: pykue.Job) -> Any:
        record_start(client, prefix, job, who)
        if job.data.get("ms") and getattr(job, "lease", None) is not None:
            job.lease.revoked.wait(job.data["ms"] / 1000)
        return job.id

    return handler


def audit(r: redis.Redis, prefix: str, n: int) -> dict[str, Any]:
    """What happened to jobs 1..n, from Redis itself (events may be lost in a restart)."""
    with r.pipeline(transaction=False) as p:
        for i in range(1, n + 1):
            p.hmget(f"{prefix}:job:{i}", "state", "attempts", "error")
        rows = p.execute()
    starts = [s.split(SEP) for s in r.lrange(f"{prefix}:starts", 0, -1)]
    return {
        "lost": [i for i, (state, _, _) in enumerate(rows, 1) if state != "complete"],
        # complete.lua counts a completion as an attempt: 2 means completed twice (or a failed attempt)
        "twice": [i for i, (_, attempts, _) in enumerate(rows, 1) if attempts != "1"],
        "errors": sorted({err for _, _, err in rows if err}),
        "bad_starts": [s for s in starts if bad_start(s, FAST.lease_ms) == "defect"],
        "paused_starts": [s for s in starts if bad_start(s, FAST.lease_ms) == "paused"],
        "started": {int(s[0]) for s in starts},
        "reruns": len(starts) - len({s[0] for s in starts}),  # at-least-once: an interrupted run again
        "active": r.zcard(f"{prefix}:jobs:active"),
        "owners": r.hlen(f"{prefix}:pykue:owners"),
        "held": r.keys(f"{prefix}:pykue:held:*"),
    }


def assert_clean(r: redis.Redis, prefix: str, n: int) -> dict[str, Any]:
    got = audit(r, prefix, n)
    assert got["lost"] == [] and got["twice"] == [] and got["errors"] == []
    assert got["bad_starts"] == [], "a handler started on a job that was finished or not ours"
    assert got["started"] == set(range(1, n + 1))
    assert (got["active"], got["owners"], got["held"]) == (0, 0, [])
    return got


def start_proc(url: str, prefix: str, mode: str, n: int = 4) -> subprocess.Popen[str]:
    proc = subprocess.Popen([PY, WORKER, url, prefix, "f", mode, str(n)], stdout=subprocess.PIPE, text=True,
                            env=py_env())  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def end_proc(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)  # its stacks, to stderr
        time.sleep(0.5)
        proc.kill()
        raise
    if proc.stdout:
        proc.stdout.close()


def answered(call: Callable[[], Any]) -> Any:
    """The call's answer, or None while Redis is restarting or loading its AOF."""
    try:
        return call()
    except redis.RedisError:
        return None


def drain_with(url: str, prefix: str, r: redis.Redis, n: int, fault: Callable[[], None],
               workers: int = 2, ms: int = 5, timeout: float = 40) -> dict[str, Any]:  # fmt: skip
    """n jobs drained by `workers` in-process queues; `fault` is injected a quarter of the way."""
    producer = pykue.create_queue(url, prefix=prefix)
    producer.save_many(producer.create("f", {"ms": ms}) for _ in range(n))
    queues = [pykue.create_queue(url, prefix=prefix, settings=FAST) for _ in range(workers)]
    for k, q in enumerate(queues):
        q.process("f", 4, recorder(url, prefix, f"q{k}"))
    try:
        wait_for(lambda: r.llen(f"{prefix}:starts") >= n // 4, what="the drain to be under way")
        fault()
        wait_for(lambda: answered(producer.complete_count) == n, timeout=timeout, what="every job complete")
    finally:
        for q in queues:
            q.shutdown(1)
        producer.shutdown()
    return assert_clean(r, prefix, n)


def as_lost_reply(q: pykue.Queue, engine: Any, job_type: str, n: int) -> list[int]:
    """Enqueue n jobs and claim them under `engine`'s name in one transaction, as a claim
    whose reply never reached the worker would have (the engine cannot claim in between)."""
    with q.client.pipeline(transaction=True) as p:
        fields = ["type", job_type, "data", "{}", "priority", "0", "state", "inactive", "max_attempts", "1"]
        q.scripts.send(sc.enqueue(q.keys, now=now_ms(), jobs=[(job_type, "inactive", 0, 0, fields)] * n), p)
        claim = sc.claim(q.keys, now=now_ms(), job_type=job_type, count=n, lease_ms=q.settings.lease_ms,
                         token_base=f"{engine._base}:0", worker_id=engine.worker_id, tokens_taken=0)  # fmt: skip
        q.scripts.send(claim, p)
        ids, claimed = p.execute()
    assert len(claimed) == 3 * n  # id, token, fields per job: all held under the engine's name
    return [int(i) for i in ids]


# -- 1. lost claim replies ------------------------------------------------------------------
def test_jobs_of_a_lost_claim_reply_come_back_within_a_lease(url: str, prefix: str, r: redis.Redis) -> None:
    q = pykue.create_queue(url, prefix=prefix, settings=FAST)
    engine = q.process("f", 2, recorder(url, prefix, "q"))
    t0 = time.monotonic()
    ids = as_lost_reply(q, engine, "f", 5)
    wait_for(lambda: q.complete_count() == 5, timeout=10, what="the stranded jobs to be run")
    assert time.monotonic() - t0 < 2 * FAST.lease_ms / 1000 + 1  # back within a lease, then claimed
    q.shutdown(1)
    assert ids == [1, 2, 3, 4, 5]
    assert_clean(r, prefix, 5)  # attempts 1: the hand-back spent no attempt


def test_clean_shutdown_hands_back_what_it_holds_and_leaves_no_owner(url: str, prefix: str, r: redis.Redis) -> None:
    q = pykue.create_queue(url, prefix=prefix, settings=FAST)
    engine = q.process("f", 2, recorder(url, prefix, "q"))
    as_lost_reply(q, engine, "other", 3)  # a type it does not run: only the hand-back can free them
    q.shutdown(1)
    assert r.zcard(f"{prefix}:jobs:other:inactive") == 3 and r.zcard(f"{prefix}:jobs:active") == 0
    assert r.hlen(f"{prefix}:pykue:owners") == 0 and r.keys(f"{prefix}:pykue:held:*") == []
    assert r.zcard(f"{prefix}:pykue:workers") == 0
    assert r.llen(f"{prefix}:starts") == 0  # handed back, not run
    assert [r.hget(f"{prefix}:job:{i}", "attempts") for i in (1, 2, 3)] == [None] * 3


def test_redis_shutdown_and_restart_from_aof_mid_drain(srv: EmbeddedRedis, prefix: str) -> None:
    r = redis.Redis.from_url(srv.url, decode_responses=True)
    drain_with(srv.url, prefix, r, 400, lambda: [srv.restart() for _ in range(3)])


def test_redis_kill_9_and_restart_from_aof_mid_drain(srv: EmbeddedRedis, prefix: str) -> None:
    r = redis.Redis.from_url(srv.url, decode_responses=True)

    def kill_and_restart() -> None:
        for _ in range(3):
            srv.stop(save=False)  # SIGKILL: only the AOF (fsync always) survives
            srv.start()

    drain_with(srv.url, prefix, r, 400, kill_and_restart)


def test_stall_longer_than_the_client_socket_timeout(srv: EmbeddedRedis, prefix: str) -> None:
    r = redis.Redis.from_url(srv.url, decode_responses=True, socket_timeout=15)
    # redis-py's default socket timeout is 5 s: every in-flight call of the workers times out.
    got = drain_with(srv.url, prefix, r, 300, lambda: r.execute_command("DEBUG", "SLEEP", "6"))
    assert got["reruns"] == 0  # Redis stalled, nobody died: no live worker's job is reaped


def test_client_pause_longer_than_the_lease(url: str, prefix: str, r: redis.Redis) -> None:
    # Nobody can renew for 2.5 leases; afterwards no live worker's job may be reaped as stalled.
    got = drain_with(url, prefix, r, 300, lambda: r.execute_command("CLIENT", "PAUSE", "2500"))
    assert got["reruns"] == 0


# -- 2. paused workers ----------------------------------------------------------------------
def test_worker_paused_past_its_lease_never_starts_a_finished_job(url: str, prefix: str, r: redis.Redis) -> None:
    """The worker process sends a claim while Redis is stalled and is SIGSTOPped; its claim
    then runs, and the reply waits in its socket while another worker reaps and completes
    that job. Resumed, the stopped worker must not start the job's handler."""
    q = pykue.create_queue(url, prefix=prefix, settings=FAST)
    q.create("f", {"stall": True}).save()
    q.save_many(q.create("f", {}) for _ in range(4))
    proc = start_proc(url, prefix, "stall", 1)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "stalled"
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        # Redis wakes and runs the stopped worker's claim: job 2 is its, its reply unread.
        wait_for(lambda: f":{proc.pid}:" in (r.hget(f"{prefix}:job:2", "workerId") or ""), what="the claim")
        other = pykue.create_queue(url, prefix=prefix, settings=FAST)
        other.process("f", 4, recorder(url, prefix, "other"))
        wait_for(lambda: q.complete_count() == 5, timeout=15, what="the other worker to finish them")
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    end_proc(proc)  # a graceful exit: whatever the resumed worker was going to start has started
    other.shutdown(1)
    q.shutdown()
    assert_clean(r, prefix, 5)
    by_stopped = [s.split(SEP)[0] for s in r.lrange(f"{prefix}:starts", 0, -1) if s.split(SEP)[3] != "other"]
    assert by_stopped == ["1"]


def test_sigstop_past_the_lease_mid_drain(url: str, prefix: str, r: redis.Redis) -> None:
    proc = start_proc(url, prefix, "record", 4)

    def pause_the_process() -> None:
        for _ in range(2):
            os.kill(proc.pid, signal.SIGSTOP)
            wait_for(lambda: r.zcard(f"{prefix}:pykue:workers") == 2, timeout=10, what="the other workers only")
            time.sleep(2 * FAST.lease_ms / 1000)  # stopped well past its lease while the others drain
            os.kill(proc.pid, signal.SIGCONT)

    try:
        drain_with(url, prefix, r, 600, pause_the_process, ms=50)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        end_proc(proc)
    assert r.hlen(f"{prefix}:pykue:owners") == 0


def test_worker_killed_mid_batch(url: str, prefix: str, r: redis.Redis) -> None:
    proc = start_proc(url, prefix, "record", 4)

    def kill_it() -> None:
        os.kill(proc.pid, signal.SIGKILL)
        end_proc(proc)

    got = drain_with(url, prefix, r, 200, kill_it, ms=20)
    assert got["held"] == []


# -- 3. a full Redis ------------------------------------------------------------------------
def test_enqueue_on_a_full_redis_raises_a_named_error(srv: EmbeddedRedis, prefix: str) -> None:
    q = pykue.create_queue(srv.url, prefix=prefix)
    q.create("f", {}).save()
    q.client.config_set("maxmemory-policy", "noeviction")
    q.client.config_set("maxmemory", max(1, int(q.client.info("memory")["used_memory"]) // 2))
    with pytest.raises(pykue.RedisOutOfMemoryError, match="Redis is out of memory"):
        q.create("f", {}).save()
    q.client.config_set("maxmemory", 0)
    assert q.client.get(f"{prefix}:ids") == "1" and q.inactive_count() == 1  # nothing half-written
    assert q.create("f", {}).save().id == 2
    q.shutdown()


def test_full_redis_wedges_nothing_and_fails_nothing_as_stalled(
    srv: EmbeddedRedis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    q = pykue.create_queue(srv.url, prefix=prefix, settings=FAST)
    r = q.client
    q.save_many(q.create("f", {"fail": i % 4 == 0}) for i in range(1, 21))
    r.config_set("maxmemory-policy", "noeviction")
    r.config_set("maxmemory", max(1, int(r.info("memory")["used_memory"]) // 2))
    ran: list[int] = []

    def handler(job: pykue.Job) -> Any:
        job.log("working on %s", job.id)  # refused by Redis: must neither raise nor block
        job.progress(1, 2)
        ran.append(job.id or 0)
        if job.data["fail"]:
            raise RuntimeError(f"job {job.id} asked to fail")
        return None

    with caplog.at_level(logging.DEBUG, logger="pykue"):
        q.process("f", 5, handler)
        wait_for(lambda: len(ran) == 20 and q.complete_count() == 15, what="handlers to run through")
        time.sleep(3 * FAST.lease_ms / 1000)  # full for three leases: failures wait, leases must hold
        assert q.failed_count() == 0 and q.active_count() == 5 and r.hlen(f"{prefix}:pykue:owners") == 5
        r.config_set("maxmemory", 0)
        wait_for(lambda: q.failed_count() == 5, what="the failures to be delivered")
    for job in q.jobs("failed"):
        assert (job.error or "").startswith(f"RuntimeError: job {job.id} asked to fail") and job.attempts_made == 1
    assert sorted(ran) == list(range(1, 21))
    warned = [m for m in caplog.records if "not recorded" in m.getMessage() and m.levelno == logging.WARNING]
    assert len(warned) == 2  # once for log, once for progress, in this process
    assert r.hlen(f"{prefix}:pykue:owners") == 0
    q.shutdown(1)


def test_worker_warns_when_redis_may_evict_queue_keys(srv: EmbeddedRedis, prefix: str,
                                                      caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    q = pykue.create_queue(srv.url, prefix=prefix, settings=FAST)
    q.client.config_set("maxmemory-policy", "allkeys-lru")
    with caplog.at_level(logging.WARNING, logger="pykue.worker"):
        q.process("f", lambda job: None)
    assert any("maxmemory-policy is allkeys-lru" in m for m in caplog.messages)
    q.shutdown(1)


# -- revocation ------------------------------------------------------------------------------
def test_a_job_taken_back_is_revoked_for_its_running_handler(url: str, prefix: str, r: redis.Redis) -> None:
    q = pykue.create_queue(url, prefix=prefix, settings=FAST)
    seen = threading.Event()
    revoked: list[bool] = []

    def handler(job: pykue.Job) -> None:
        if seen.is_set():
            return  # run again after the re-queue
        seen.set()
        assert job.lease is not None
        revoked.append(job.lease.revoked.wait(10) and job.revoked)

    q.process("f", handler)
    job = q.create("f", {}).save()
    assert seen.wait(10)
    q.get_job(job.id or 0).set_state("inactive")  # an operator re-queues the running job
    wait_for(lambda: revoked == [True], what="the handler to see its job revoked")
    q.shutdown(1)


def test_renewal_spares_a_claim_whose_reply_may_still_be_in_flight(url: str, prefix: str, r: redis.Redis) -> None:
    """The race a renewal must not lose: claim 7 ran in Redis but its reply has not reached
    the worker yet. Named as in flight (floor 7), its jobs stay; once it is settled
    (floor 8) and still unknown to the worker, they are handed back."""
    q = pykue.create_queue(url, prefix=prefix)
    q.save_many(q.create("f", {}) for _ in range(2))
    claim = sc.claim(q.keys, now=now_ms(), job_type="f", count=2, lease_ms=1000, token_base="w1:7", worker_id="w",
                     tokens_taken=0)  # fmt: skip
    assert len(q.scripts.run(claim)) == 6

    def renew(floor: int) -> list[list[int]]:
        out = q.scripts.run(sc.renew(q.keys, now=now_ms(), lease_ms=1000, worker="w1", floor=floor, mode="renew"))
        return [out.lost, out.back]

    assert renew(7) == [[], []] and q.active_count() == 2
    assert renew(8) == [[], [1, 2]]
    assert q.inactive_count() == 2 and r.hlen(f"{prefix}:pykue:owners") == 0
    assert r.hget(f"{prefix}:job:1", "attempts") is None  # no attempt spent
    q.shutdown()


def test_an_asyncio_handler_is_cancelled_when_its_job_is_taken_back(url: str, prefix: str, r: redis.Redis) -> None:
    async def main() -> None:
        q = pykue.create_async_queue(url, prefix=prefix, settings=FAST)
        started, cancelled, again = asyncio.Event(), asyncio.Event(), asyncio.Event()

        async def handler(job: pykue.AsyncJob) -> None:
            if started.is_set():
                again.set()  # run again after the re-queue
                return
            started.set()
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                assert job.revoked
                cancelled.set()
                raise

        await q.process("f", handler)
        job = await q.create("f", {}).save()
        await started.wait()
        await (await q.get_job(job.id or 0)).set_state("inactive")  # an operator re-queues it
        await asyncio.wait_for(cancelled.wait(), 10)
        await asyncio.wait_for(again.wait(), 10)
        await q.shutdown()

    asyncio.run(asyncio.wait_for(main(), 60))
    assert r.hget(f"{prefix}:job:1", "state") == "complete"  # run again, to completion
    assert r.hget(f"{prefix}:job:1", "error") is None  # the cancelled run failed nothing
