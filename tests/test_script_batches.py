"""claim.lua and complete.lua per batch (issue 13): members popped in rounds, owners read once,
index and lease writes gathered into one call per key; each job must end as if done one by one."""

from __future__ import annotations

import redis

import pykue
from pykue import _codec as codec
from pykue import _scripts as sc


def _claim(queue: pykue.Queue, count: int, now: int, job_type: str = "w", base: str = "wk:1") -> list[tuple[int, str]]:
    call = sc.claim(queue.keys, now=now, job_type=job_type, count=count, lease_ms=60000, token_base=base,
                    worker_id="wid", tokens_taken=0)  # fmt: skip
    out = queue.scripts.run(call)
    assert isinstance(out, list)
    text = [x.decode() if isinstance(x, bytes) else x for x in out[1::3]]
    return [(int(i), t) for i, t in zip(out[::3], text, strict=True) if t]


def _complete(queue: pykue.Queue, jobs: list[tuple[int, str]], result: str = "") -> list[sc.Outcome]:
    call = sc.complete(queue.keys, now=codec.now_ms(), jobs=[(i, t, 3, result) for i, t in jobs])
    return queue.scripts.run(call)


def test_claim_pops_again_past_stale_entries_until_the_count_is_met(
    queue: pykue.Queue, r: redis.Redis, prefix: str
) -> None:
    """Stale members at the front of the inactive set take no slot of the batch."""
    ids = [queue.create("w", {}).save().id or 0 for _ in range(5)]
    for stale in ids[:2]:
        r.hset(f"{prefix}:job:{stale}", "state", "complete")  # finished elsewhere, index not cleaned
    got = _claim(queue, 3, codec.now_ms())
    assert [i for i, _ in got] == ids[2:]
    assert r.zcard(f"{prefix}:jobs:w:inactive") == 0
    assert r.hget(f"{prefix}:job:{ids[0]}", "state") == "complete"


def test_claimed_jobs_are_indexed_and_owned_as_kue_lays_them_out(
    queue: pykue.Queue, r: redis.Redis, prefix: str
) -> None:
    low = queue.create("w", {}).priority("low").save().id
    high = queue.create("w", {}).priority("high").save().id
    normal = queue.create("w", {}).save().id
    timed = queue.create("w", {}).priority(-5).ttl(5000).save().id
    now = codec.now_ms()
    got = dict(_claim(queue, 10, now))
    assert got == {high: "wk:1:1", timed: "wk:1:2", normal: "wk:1:3", low: "wk:1:4"}  # by priority, then id
    active = dict(r.zrange(f"{prefix}:jobs:active", 0, -1, withscores=True))
    assert active == {f"01|{high}": -10, f"01|{timed}": now + 5000, f"01|{normal}": 0, f"01|{low}": -10}
    by_type = dict(r.zrange(f"{prefix}:jobs:w:active", 0, -1, withscores=True))
    assert by_type == {f"01|{high}": -10, f"01|{timed}": -5, f"01|{normal}": 0, f"01|{low}": 10}
    assert r.zcard(f"{prefix}:jobs:inactive") == r.zcard(f"{prefix}:jobs:w:inactive") == 0
    assert r.hgetall(f"{prefix}:pykue:owners") == {str(i): t for i, t in got.items()}
    assert r.smembers(f"{prefix}:pykue:held:wk") == {str(i) for i in got}
    h = r.hgetall(f"{prefix}:job:{low}")
    assert (h["state"], h["started_at"], h["updated_at"], h["workerId"]) == ("active", str(now), str(now), "wid")


def test_a_job_twice_in_one_completion_batch_completes_once(queue: pykue.Queue, r: redis.Redis, prefix: str) -> None:
    queue.save_many(queue.create("w", {}) for _ in range(2))
    (a, ta), (b, tb) = _claim(queue, 2, codec.now_ms())
    assert _complete(queue, [(a, ta), (a, ta), (b, "wk:1:9"), (b, tb)]) == [
        sc.Outcome.DONE, sc.Outcome.NOT_OWNED, sc.Outcome.NOT_OWNED, sc.Outcome.DONE]  # fmt: skip
    assert r.hget(f"{prefix}:job:{a}", "attempts") == "1" and r.hget(f"{prefix}:job:{b}", "attempts") == "1"
    assert r.get(f"{prefix}:stats:work-time") == "6"
    assert r.zrange(f"{prefix}:jobs:complete", 0, -1) == [f"01|{a}", f"01|{b}"]
    assert r.hlen(f"{prefix}:pykue:owners") == 0 and r.scard(f"{prefix}:pykue:held:wk") == 0


def test_plain_jobs_and_jobs_with_effects_in_one_batch_end_as_one_by_one(
    queue: pykue.Queue, r: redis.Redis, prefix: str
) -> None:
    plain1 = queue.create("w", {}).priority(3).save().id
    removed = queue.create("w", {}).remove_on_complete().save().id
    plain2 = queue.create("w", {}).save().id
    parent = queue.create("w", {}).save()
    child = queue.create("c", {}).after(parent).save().id
    r.hset(f"{prefix}:pykue:stalls", str(plain2), "1@0/")
    claimed = _claim(queue, 10, codec.now_ms())
    assert [i for i, _ in claimed] == [removed, plain2, parent.id, plain1]
    assert _complete(queue, claimed, '{"ok":1}') == [sc.Outcome.DONE] * 4
    assert not r.exists(f"{prefix}:job:{removed}")
    assert dict(r.zrange(f"{prefix}:jobs:w:complete", 0, -1, withscores=True)) == {
        f"01|{plain1}": 3, f"01|{plain2}": 0, f"01|{parent.id}": 0}  # fmt: skip
    assert r.zrange(f"{prefix}:jobs:complete", 0, -1) == r.zrange(f"{prefix}:jobs:w:complete", 0, -1)
    assert r.zcard(f"{prefix}:jobs:active") == r.zcard(f"{prefix}:jobs:w:active") == 0
    assert r.hget(f"{prefix}:job:{child}", "state") == "inactive"  # its one dependency completed
    assert r.hlen(f"{prefix}:pykue:owners") == r.hlen(f"{prefix}:pykue:stalls") == 0
    h = r.hgetall(f"{prefix}:job:{plain2}")
    assert (h["state"], h["progress"], h["attempts"], h["duration"], h["result"]) == ("complete", "100", "1", "3",
                                                                                      '{"ok":1}')  # fmt: skip


def test_a_job_removed_by_an_earlier_jobs_retention_in_the_batch_is_not_completed(
    queue: pykue.Queue, r: redis.Redis, prefix: str
) -> None:
    """Retention (keep 0) removes a finished job it finds in its kept set; that job, still
    listed later in the same batch under our token, must be refused, not re-created."""
    keeper = queue.create("w", {}).remove_on_complete(0).save().id
    victim = queue.create("w", {}).save().id
    claimed = dict(_claim(queue, 2, codec.now_ms()))
    r.hset(f"{prefix}:job:{victim}", "state", "complete")  # finished elsewhere while we hold it
    r.zadd(f"{prefix}:pykue:kept:complete:w", {str(victim): 1})
    out = _complete(queue, [(keeper, claimed[keeper]), (victim, claimed[victim])])
    assert out == [sc.Outcome.DONE, sc.Outcome.NOT_OWNED]
    assert not r.exists(f"{prefix}:job:{victim}") and not r.exists(f"{prefix}:job:{keeper}")
    assert r.zcard(f"{prefix}:jobs:complete") == 0 and r.hlen(f"{prefix}:pykue:owners") == 0
