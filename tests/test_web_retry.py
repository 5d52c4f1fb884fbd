"""Operators' actions (issue 10 item 1): retry resets attempts and refuses what has not
failed; moving a running job anywhere revokes the running attempt, which then runs once more."""

from __future__ import annotations

import asyncio
import subprocess
import threading
from collections.abc import Callable, Iterator

import httpx
import pytest
import redis

import pykue
from pykue import _codec as codec
from pykue import _scripts as sc
from tests.conftest import FAST, PY, py_env
from tests.helpers import wait_for
from tests.services import Service


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "pykue.cli", *args], env=py_env(), capture_output=True, text=True, timeout=60)


def failed_job(queue: pykue.Queue, job_type: str = "boom", attempts: int = 2) -> pykue.Job:
    job = queue.create(job_type, {}, attempts=attempts).save()
    wait_for(lambda: queue.get_job(job.id or 0).state == "failed", what="the job to fail for good")
    return queue.get_job(job.id or 0)


def explode(job: pykue.Job) -> None:
    raise RuntimeError("boom")


def test_retry_resets_attempts_and_refuses_jobs_that_did_not_fail(queue: pykue.Queue) -> None:
    queue.process("boom", explode)
    job = failed_job(queue)
    assert job.attempts_made == 2
    job.retry()
    assert job.state == "inactive" and job.attempts_made == 0
    wait_for(lambda: queue.get_job(job.id or 0).state == "failed", what="two fresh attempts")
    assert queue.get_job(job.id or 0).attempts_made == 2  # 3 had the attempts been kept

    done = queue.create("ok", {}).save()
    queue.process("ok", lambda j: "fine")
    wait_for(lambda: queue.complete_count("ok") == 1)
    with pytest.raises(pykue.JobStateError, match="is complete"):
        queue.retry(done.id or 0)
    assert queue.get_job(done.id or 0).state == "complete"  # refused: nothing changed
    with pytest.raises(pykue.JobNotFoundError):
        queue.retry(999)
    queue.retry(done.id or 0, force=True)
    wait_for(lambda: queue.get_job(done.id or 0).state == "complete" and queue.get_job(done.id or 0).attempts_made == 1,
             what="the forced retry to run once, from zero attempts")  # fmt: skip


def test_async_twin_retries_the_same_way(url: str, prefix: str) -> None:
    async def main() -> None:
        async with pykue.create_async_queue(url, prefix=prefix, settings=FAST) as q:
            job = await q.create("boom", {}, attempts=1).save()
            await job.failed()
            await job.refresh()
            assert (await q.get_job(job.id or 0)).attempts_made == 0
            await q.client.hset(q.keys.job(job.id or 0), "attempts", 1)
            await q.retry(job.id or 0)
            again = await q.get_job(job.id or 0)
            assert (again.state, again.attempts_made) == ("inactive", 0)
            await job.complete()
            with pytest.raises(pykue.JobStateError):
                await job.retry()
            await job.retry(force=True)
            assert job.state == "inactive" and (await q.get_job(job.id or 0)).attempts_made == 0

    asyncio.run(main())


@pytest.fixture
def api(url: str, prefix: str) -> Iterator[str]:
    svc = Service("api", url, "--prefix", prefix)
    yield svc.base
    svc.stop()


Mover = Callable[[pykue.Queue, int, str], None]


def via_put(queue: pykue.Queue, job_id: int, base: str) -> None:
    assert httpx.put(f"{base}/job/{job_id}/state/inactive").json() == {"message": "updated state"}


def via_get_inactive(queue: pykue.Queue, job_id: int, base: str) -> None:
    assert httpx.get(f"{base}/inactive/{job_id}").json() == {"message": f"job {job_id} inactive"}


def via_forced_retry(queue: pykue.Queue, job_id: int, base: str) -> None:
    queue.retry(job_id, force=True)


def via_cli(queue: pykue.Queue, job_id: int, base: str) -> None:
    out = cli("retry", str(job_id), "--force", "--redis", queue.url, "--prefix", queue.keys.prefix)
    assert out.returncode == 0 and "re-queued 1 job(s)" in out.stdout, out.stderr


@pytest.mark.parametrize("move", [via_put, via_get_inactive, via_forced_retry, via_cli])
def test_moving_a_running_job_revokes_that_run(queue: pykue.Queue, api: str, move: Mover) -> None:
    """One slot, so nothing re-claims the job while its first run still holds it: only the
    revoked token stands between that run's outcome and the queue. The job then runs once more."""
    tokens: list[str] = []
    release = [threading.Event(), threading.Event()]

    def handler(job: pykue.Job) -> str:
        tokens.append(job.token or "")
        n = len(tokens)
        release[n - 1].wait(20)
        return f"run {n}"

    queue.process("slow", 1, handler)
    job = queue.create("slow", {}).save()
    wait_for(lambda: len(tokens) == 1, what="the first run to start")
    move(queue, job.id or 0, api)
    # the first run's token is void: its completion is refused (checked directly, as the engine's
    # own completion may lose the race to the next claim and prove nothing)
    late = sc.complete(queue.keys, now=codec.now_ms(), jobs=[(job.id or 0, tokens[0], 5, '"run 1"')])
    assert queue.scripts.run(late) == [sc.Outcome.NOT_OWNED]
    assert queue.get_job(job.id or 0).state in ("inactive", "active")  # active: re-claimed once revoked
    release[0].set()
    wait_for(lambda: len(tokens) == 2, what="the job to run once more")
    release[1].set()
    wait_for(lambda: queue.get_job(job.id or 0).state == "complete", what="the second run to complete")
    done = queue.get_job(job.id or 0)
    assert done.result == "run 2" and done.attempts_made == 1 and len(tokens) == 2


def test_api_retry_route_resets_attempts_and_refuses_other_states(queue: pykue.Queue, api: str) -> None:
    queue.process("boom", explode)
    job = failed_job(queue, attempts=1)
    r = httpx.post(f"{api}/job/{job.id}/retry")
    assert (r.status_code, r.json()) == (200, {"message": f"job {job.id} retried"})
    wait_for(lambda: queue.get_job(job.id or 0).state == "failed")
    assert queue.get_job(job.id or 0).attempts_made == 1  # reset to 0, then one new attempt
    other = queue.create("idle", {}).save()
    r = httpx.post(f"{api}/job/{other.id}/retry")
    assert r.status_code == 409 and "is inactive" in r.json()["error"]
    assert httpx.post(f"{api}/job/{other.id}/retry?force=true").status_code == 200
    assert httpx.post(f"{api}/job/999/retry").status_code == 404


def test_cli_retries_failed_jobs_only_and_says_what_it_skipped(queue: pykue.Queue) -> None:
    common = ["--redis", queue.url, "--prefix", queue.keys.prefix]
    queue.process("boom", explode)
    bad = failed_job(queue)
    good = queue.create("idle", {}).save()
    good.complete()
    out = cli("retry", str(good.id), *common)
    assert out.returncode == 2 and f"skipped job {good.id}: it is complete (--force retries it)" in out.stderr
    assert queue.get_job(good.id or 0).state == "complete"
    out = cli("retry", "--all-failed", *common)
    assert out.returncode == 0 and "re-queued 1 job(s)" in out.stdout
    wait_for(lambda: queue.get_job(bad.id or 0).state == "failed")
    assert queue.get_job(bad.id or 0).attempts_made == 2  # 3 had the attempts been kept


def test_retry_meeting_wrong_type_keys_writes_nothing_or_skips_them(queue: pykue.Queue) -> None:
    """Like every transition: validate, then write (Redis does not roll a script back)."""
    job = queue.create("boom", {}, attempts=1).save()
    job.failed()
    p = queue.keys.prefix
    queue.client.hset(f"{p}:pykue:owners", str(job.id), "w1:1:1")  # a lease to drop...
    queue.client.sadd(f"{p}:pykue:held:w1", str(job.id))
    queue.client.set(f"{p}:pykue:stalls", "not a hash")  # ...and a key of the wrong type after it
    before = {key: queue.client.dump(key) for key in queue.client.scan_iter(f"{p}:*")}
    with pytest.raises(redis.ResponseError, match="nothing was written"):
        queue.retry(job.id or 0, force=True)
    assert {key: queue.client.dump(key) for key in queue.client.scan_iter(f"{p}:*")} == before
    queue.client.delete(f"{p}:pykue:stalls")
    queue.client.set(queue.keys.state("inactive", "boom"), "not a zset")  # a per-type set: skipped
    queue.retry(job.id or 0)
    assert queue.get_job(job.id or 0).state == "inactive" and queue.inactive_count() == 1
