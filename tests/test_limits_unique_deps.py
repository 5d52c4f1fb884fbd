"""Issue 12 rows 2-4 against real Redis, with two worker processes where they coordinate:
rate limits per job type, unique jobs, dependencies."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

import pykue
from pykue._keys import zid
from tests.conftest import FAST, PY, py_env
from tests.helpers import wait_for

WORKER = str(Path(__file__).with_name("feature_worker.py"))


@contextmanager
def workers(url: str, prefix: str, job_type: str, n: int = 2, concurrency: int = 4) -> Iterator[None]:
    """n feature_worker.py processes, stopped gracefully (and checked) at the end."""
    procs = []
    try:
        for _ in range(n):
            p = subprocess.Popen([PY, WORKER, url, prefix, job_type, str(concurrency)], stdout=subprocess.PIPE,
                                 text=True, env=py_env())  # fmt: skip
            procs.append(p)
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        yield
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(15)
            if p.stdout:
                p.stdout.close()


def starts(r: redis.Redis, prefix: str) -> list[tuple[int, int, int]]:
    """(id, start ms, pid) of every run, in the order they started."""
    rows = [tuple(int(x) for x in s.split(":")) for s in r.lrange(f"{prefix}:ran", 0, -1)]
    return sorted(rows, key=lambda t: t[1])  # type: ignore[return-value]


def evalsha_calls(r: redis.Redis) -> int:
    stats = r.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


# -- rate limits -------------------------------------------------------------------------------
def test_limit_is_global_across_two_worker_processes_and_nothing_fails(
    url: str, prefix: str, r: redis.Redis, queue: pykue.Queue
) -> None:
    queue.limit("mail", max=3, per_ms=1000)
    queue.save_many(queue.create("mail", {"i": i, "sleep": 0.3}) for i in range(9))
    # Two slots per process: a window's 3 jobs cannot all go to one process (its slots are busy).
    with workers(url, prefix, "mail", n=2, concurrency=2):
        wait_for(lambda: queue.complete_count("mail") == 9, timeout=20, what="9 mails sent")
    runs = starts(r, prefix)
    assert sorted(i for i, _, _ in runs) == list(range(1, 10))  # each once, none failed
    assert queue.failed_count() == 0
    assert len({pid for _, _, pid in runs}) == 2  # both processes took part
    # Fixed windows: any 2*max+1 consecutive starts span three windows, so more than one window
    # (less the latency between a claim and its handler's timestamp).
    times = [t for _, t, _ in runs]
    assert all(times[i + 6] - times[i] > 1000 - 100 for i in range(len(times) - 6)), times
    assert times[-1] - times[0] >= 2 * 1000 - 100  # 3 windows of 3; unlimited, all 4 slots start at once


def test_limited_worker_waits_for_the_window_instead_of_spinning(
    url: str, prefix: str, r: redis.Redis, queue: pykue.Queue
) -> None:
    queue.limit("slow", max=1, per_ms=4000)
    queue.save_many(queue.create("slow", {}) for _ in range(2))
    with workers(url, prefix, "slow", n=2, concurrency=2):
        wait_for(lambda: r.llen(f"{prefix}:ran") == 1, what="the first job of the window")
        begin, before = time.time() * 1000, evalsha_calls(r)
        time.sleep(1.0)  # a measurement interval, not synchronisation: count the calls made in it
        during, end = evalsha_calls(r) - before, time.time() * 1000
        wait_for(lambda: queue.complete_count("slow") == 2, timeout=15, what="the second job, next window")
    (_, first, _), (_, second, _) = starts(r, prefix)
    assert second - first >= 4000 - 20  # the limit held across both processes
    assert first <= begin and end < first + 4000  # the interval lay inside the first window
    # Maintenance (promote, reap, renew) of two processes makes some tens of calls a second;
    # a claim loop that did not wait for the window would make thousands.
    print("evalsha calls in the 1 s interval:", during)
    assert during < 300, during
    assert queue.inactive_count("slow") == 0 and queue.failed_count() == 0


def test_limit_is_per_type_persisted_and_cleared(url: str, prefix: str, r: redis.Redis, queue: pykue.Queue) -> None:
    queue.limit("a", max=1, per_ms=60_000)
    with pykue.create_queue(url, prefix=prefix) as other:
        assert other.limits() == {"a": (1, 60_000)}
    assert r.hget(f"{prefix}:pykue:limits", "a") == "1:60000"
    ran: list[str] = []
    queue.save_many([queue.create("a", {}), queue.create("a", {}), queue.create("b", {}), queue.create("b", {})])
    queue.process("a", 2, lambda j: ran.append(j.type))
    queue.process("b", 2, lambda j: ran.append(j.type))
    wait_for(lambda: ran.count("b") == 2 and ran.count("a") == 1, what="b unlimited, one a")
    assert queue.inactive_count("a") == 1  # waits, does not fail
    queue.limit("a", None)
    assert queue.limits() == {} and not r.exists(f"{prefix}:pykue:limit:a")
    wait_for(lambda: ran.count("a") == 2, what="the second a once the limit is cleared")
    assert queue.failed_count() == 0


@pytest.mark.parametrize(("max_", "per"), [(0, 1000), (-1, 1000), (2, 0), (1.5, 1000), (True, 1000), (2, "1s")])
def test_bad_limits_are_refused_and_nothing_is_written(queue: pykue.Queue, r: redis.Redis, prefix: str,
                                                      max_: object, per: object) -> None:  # fmt: skip
    with pytest.raises(pykue.InvalidJobError):
        queue.limit("a", max=max_, per_ms=per)  # type: ignore[arg-type]
    assert not r.exists(f"{prefix}:pykue:limits")


# -- unique jobs -------------------------------------------------------------------------------
SAVER = """
import json, sys, pykue
url, prefix = sys.argv[1:3]
q = pykue.create_queue(url, prefix=prefix)
print(json.dumps([q.create("u", {"k": i}).unique(f"key{i}").save().id for i in range(40)]))
q.shutdown()
"""


def test_two_processes_saving_the_same_keys_concurrently_get_one_job_each(url: str, prefix: str,
                                                                          queue: pykue.Queue) -> None:  # fmt: skip
    procs = [subprocess.Popen([PY, "-c", SAVER, url, prefix], stdout=subprocess.PIPE, text=True, env=py_env())
             for _ in range(3)]  # fmt: skip
    got = [json.loads(p.communicate(timeout=30)[0]) for p in procs]
    assert got[0] == got[1] == got[2]  # every process got the same job for each key
    assert len(set(got[0])) == 40 and queue.card() == 40


def test_unique_returns_the_unfinished_job_and_frees_on_complete(queue: pykue.Queue, r: redis.Redis,
                                                                 prefix: str) -> None:  # fmt: skip
    first = queue.create("u", {"v": 1}).unique("report:7").save()
    again = queue.create("u", {"v": 2}, unique="report:7").save()
    assert again.id == first.id and again.deduplicated and not first.deduplicated
    assert again.data == {"v": 1} and again.state == "inactive" and queue.card() == 1
    done: list[int] = []
    queue.process("u", lambda j: done.append(j.id))
    wait_for(lambda: queue.complete_count() == 1, what="the job to complete")
    assert not r.hexists(f"{prefix}:pykue:unique", "report:7")  # freed by complete.lua
    third = queue.create("u", {"v": 3}).unique("report:7").save()
    assert third.id != first.id and not third.deduplicated


def test_unique_key_kept_through_retries_freed_when_failed_for_good(queue: pykue.Queue, r: redis.Redis,
                                                                    prefix: str) -> None:  # fmt: skip
    job = queue.create("f", {}).unique("once").attempts(2).save()
    seen: list[int] = []

    def flaky(j: pykue.Job) -> None:
        seen.append(j.id or 0)
        if len(seen) == 1:
            assert queue.create("f", {}).unique("once").save().id == job.id  # held while running
        raise RuntimeError("no")

    queue.process("f", flaky)
    wait_for(lambda: queue.failed_count() == 1, what="failed for good")
    assert seen == [job.id, job.id]
    assert not r.hexists(f"{prefix}:pykue:unique", "once")
    assert queue.create("f", {}).unique("once").save().id != job.id


def test_unique_key_frees_when_the_job_is_removed_or_finished_elsewhere(queue: pykue.Queue, r: redis.Redis,
                                                                        prefix: str) -> None:  # fmt: skip
    a = queue.create("u", {}).unique("x").save()
    assert a.remove()
    assert not r.hexists(f"{prefix}:pykue:unique", "x")
    b = queue.create("u", {}).unique("x").save()
    assert b.id != a.id
    b.set_state("complete")  # as Node's kue.app would: no pykue hook ran, the key is freed lazily
    c = queue.create("u", {}).unique("x").save()
    assert c.id not in (a.id, b.id) and not c.deduplicated


def test_bad_unique_keys_are_refused(queue: pykue.Queue) -> None:
    for bad in ("", None, 7, "k" * 2000):
        with pytest.raises(pykue.InvalidJobError):
            queue.create("u", {}).unique(bad)  # type: ignore[arg-type]
    assert queue.card() == 0


# -- dependencies ------------------------------------------------------------------------------
def kue_would_promote(r: redis.Redis, prefix: str) -> list[str]:
    """Kue 0.11's checkJobPromotion query (lib/kue.js): due delayed jobs."""
    return r.zrangebyscore(f"{prefix}:jobs:delayed", 0, int(time.time() * 1000) + 10**9)


def test_dependent_waits_unrunnable_then_runs_after_both_complete_across_two_workers(
    url: str, prefix: str, r: redis.Redis, queue: pykue.Queue
) -> None:
    a = queue.create("d", {"sleep": 0.3}).save()
    b = queue.create("d", {"sleep": 0.5}).save()
    c = queue.create("d", {}).after(a, b).save()
    assert c.state == "delayed" and queue.get_job(c.id or 0).state == "delayed"
    assert r.zscore(f"{prefix}:jobs:delayed", zid(c.id or 0)) == float("inf")
    assert kue_would_promote(r, prefix) == []  # even a promoter whose clock is far ahead
    with workers(url, prefix, "d", n=2, concurrency=4):
        wait_for(lambda: queue.complete_count("d") == 3, timeout=15, what="a, b, then c")
    runs = {i: t for i, t, _ in starts(r, prefix)}
    assert runs[c.id or 0] >= runs[b.id or 0] + 500  # c started only after b (the longer one) finished
    assert not r.keys(f"{prefix}:pykue:dep*")  # bookkeeping gone


def test_failed_dependency_fails_the_chain_or_runs_with_on_failure_run(queue: pykue.Queue) -> None:
    a = queue.create("d", {"fail": True}).save()
    strict = queue.create("d", {}).after(a).save()
    grandchild = queue.create("d", {}).after(strict).save()
    lenient = queue.create("d", {}).after(a, on_failure="run").save()
    ran: list[int] = []

    def work(j: pykue.Job) -> None:
        ran.append(j.id or 0)
        if j.data.get("fail"):
            raise RuntimeError("a fails")

    queue.process("d", 2, work)
    wait_for(lambda: queue.complete_count() == 1 and queue.failed_count() == 3, what="outcomes")
    assert sorted(ran) == sorted([a.id, lenient.id])
    assert strict.refresh().error == f"pykue: dependency {a.id} failed"
    assert grandchild.refresh().error == f"pykue: dependency {strict.id} failed"
    assert queue.delayed_count() == 0


def test_dependencies_already_finished_at_save_and_missing_ones(queue: pykue.Queue, r: redis.Redis,
                                                                prefix: str) -> None:  # fmt: skip
    ok = queue.create("d", {}).save()
    bad = queue.create("d", {}).save()
    ok.complete()
    bad.failed()
    assert queue.create("d", {}).after(ok).save().state == "inactive"
    failed_now = queue.create("d", {}).after(ok, bad).save()
    assert failed_now.refresh().state == "failed" and failed_now.error == f"pykue: dependency {bad.id} failed"
    assert queue.create("d", {}).after(bad, on_failure="run").save().state == "inactive"
    ids_before, count_before = r.get(f"{prefix}:ids"), queue.card()
    with pytest.raises(pykue.InvalidJobError, match="dependency job '999' does not exist"):
        queue.save_many([queue.create("d", {}), queue.create("d", {}).after(999)])
    assert r.get(f"{prefix}:ids") == ids_before and queue.card() == count_before  # the batch wrote nothing
    with pytest.raises(pykue.InvalidJobError):
        queue.create("d", {}).after(queue.create("d", {}))  # not saved
    with pytest.raises(pykue.InvalidJobError):
        queue.create("d", {}).after(ok, on_failure="maybe")


def test_removing_a_dependency_fails_its_dependents(queue: pykue.Queue) -> None:
    a = queue.create("d", {}).save()
    c = queue.create("d", {}).after(a).save()
    assert a.remove()
    assert c.refresh().state == "failed" and c.error == f"pykue: dependency {a.id} was removed"


def test_dependent_keeps_its_own_delay(queue: pykue.Queue, r: redis.Redis, prefix: str) -> None:
    a = queue.create("d", {}).save()
    c = queue.create("d", {}).delay(60_000).after(a).save()
    assert r.zscore(f"{prefix}:jobs:delayed", zid(c.id or 0)) == float("inf")
    a.complete()  # by hand (kue.app's PUT, the CLI) releases dependents like a worker's outcome
    job = c.refresh()
    assert job.state == "delayed" and int(job.fields["promote_at"]) > int(time.time() * 1000) + 30_000
    assert r.zscore(f"{prefix}:jobs:delayed", zid(c.id or 0)) == int(job.fields["promote_at"])


def test_async_twin_has_the_features(url: str, prefix: str) -> None:
    import asyncio

    async def go() -> None:
        q = pykue.create_async_queue(url, prefix=prefix, settings=FAST)
        try:
            await q.limit("t", 5, per_ms=1000)
            assert await q.limits() == {"t": (5, 1000)}
            a = await q.create("t", {}).unique("k").save()
            b = await q.create("t", {}).unique("k").save()
            assert b.id == a.id and b.deduplicated
            c = await q.create("t", {}).after(a).save()
            assert c.state == "delayed"
        finally:
            await q.shutdown(1)

    asyncio.run(go())


def test_same_key_twice_in_one_batch_is_one_job(queue: pykue.Queue) -> None:
    a, b = queue.save_many([queue.create("u", {"n": 1}).unique("k"), queue.create("u", {"n": 2}).unique("k")])
    assert a.id == b.id and b.deduplicated and not a.deduplicated
    assert b.data == {"n": 1} and queue.card() == 1
