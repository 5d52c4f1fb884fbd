"""Bad records, bad events and out-of-range options (issue 9 items 4 and 5).

Each record here is corrupted by hand in a real Redis, the way a bug, an old writer or a
person with redis-cli would: the worker must set it aside with a reason and go on, and the
jobs around it must run. Each event is published raw: the good one after it must arrive.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
from collections.abc import Iterator
from importlib import resources
from typing import Any

import pytest
import redis

import pykue
from pykue import InvalidJobError
from pykue import _codec as codec
from pykue import _scripts as sc
from pykue._events import decode
from pykue._worker import Subscriber
from tests.conftest import FAST
from tests.helpers import wait_for


@pytest.fixture
def raw(url: str) -> Iterator[redis.Redis]:
    """A client that leaves bytes alone, to write and read what no pykue API would."""
    client = redis.Redis.from_url(url)
    yield client
    client.close()


def _run(queue: pykue.Queue, job_type: str = "w") -> list[int]:
    ran: list[int] = []
    lock = threading.Lock()

    def handler(job: Any) -> None:
        with lock:
            ran.append(job.id)

    queue.process(job_type, 4, handler)
    return ran


def _leftovers(r: redis.Redis, prefix: str) -> tuple[int, int]:
    """(jobs still in active sets, owner entries): both must be 0 once the queue is idle."""
    return r.zcard(f"{prefix}:jobs:active") + r.zcard(f"{prefix}:jobs:w:active"), r.hlen(f"{prefix}:pykue:owners")


# -- the Lua UTF-8 check agrees with the Python decoder redis-py uses -------------------------
def _utf8_ok_script(r: redis.Redis) -> Any:
    lib = (resources.files("pykue") / "lua" / "_lib.lua").read_text()
    body = "local o = {} for i = 2, #ARGV do o[#o + 1] = utf8_ok(ARGV[i]) and 1 or 0 end return o"
    return r.register_script(lib + "\n" + body)


def _python_ok(b: bytes) -> int:
    try:
        b.decode()
    except UnicodeDecodeError:
        return 0
    return 1


def test_lua_utf8_check_matches_python_strict_decoding(raw: redis.Redis) -> None:
    rng = random.Random(9)
    edges = [b"", b"a", b"\xc2\x80", b"\xc1\xbf", b"\xe0\x9f\xbf", b"\xe0\xa0\x80", b"\xed\x9f\xbf",
             b"\xed\xa0\x80", b"\xef\xbf\xbf", b"\xf0\x8f\xbf\xbf", b"\xf0\x90\x80\x80", b"\xf4\x8f\xbf\xbf",
             b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xe2\x82", b"\xff", b"ok\xe2\x82\xacok",
             "é中😀".encode()]  # fmt: skip
    interesting = [0x00, 0x41, 0x7F, 0x80, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF]
    samples = edges + [
        bytes(rng.choice(interesting) if rng.random() < 0.7 else rng.randrange(256) for _ in range(rng.randrange(1, 7)))
        for _ in range(4000)
    ]
    got = _utf8_ok_script(raw)(keys=["x"], args=["p", *samples])
    mismatches = [s for s, ok in zip(samples, got, strict=True) if ok != _python_ok(s)]
    assert sum(got) not in (0, len(samples))  # both answers occur
    assert mismatches == []


# -- item 4: bad records do not stop the worker ------------------------------------------------
def test_non_utf8_bytes_in_any_field_are_set_aside_and_the_batch_runs(
    queue: pykue.Queue, raw: redis.Redis, prefix: str
) -> None:
    for n in range(6):
        queue.create("w", {"n": n}).save()
    raw.hset(f"{prefix}:job:2", "data", b'{"n":"\xff"}')
    raw.hset(f"{prefix}:job:3", b"extra\xfe", b"1")
    raw.hset(f"{prefix}:job:4", "backoff", b"\xc0\x80")  # overlong: Python refuses it
    raw.hset(f"{prefix}:job:5", "type", b"w\xed\xa0\x80")  # a UTF-8-encoded surrogate
    ran = _run(queue)
    wait_for(lambda: sorted(ran) == [1, 6], what="the good jobs of the batch")
    states = lambda: [raw.hget(f"{prefix}:job:{n}", "state") for n in (2, 3, 4, 5)]  # noqa: E731
    wait_for(lambda: states() == [b"failed"] * 4, what="the bad records set aside")
    reasons = {n: raw.hget(f"{prefix}:job:{n}", "error") for n in (2, 3, 4, 5)}
    assert b"field 'data' is not UTF-8" in reasons[2] and b"\\xff" in reasons[2]
    assert b"a field name 'extra\\xfe' is not UTF-8" in reasons[3]
    assert b"field 'backoff' is not UTF-8" in reasons[4]
    assert b"field 'type' is not UTF-8" in reasons[5]
    assert sorted(int(m.split(b"|")[1]) for m in raw.zrange(f"{prefix}:jobs:failed", 0, -1)) == [2, 3, 4, 5]
    queue.create("w", {"n": 7}).save()  # the claim loop is still alive
    wait_for(lambda: 7 in ran, what="a job saved after the bad ones")
    wait_for(lambda: _leftovers(raw, prefix) == (0, 0), what="no job left active")
    assert raw.zcard(f"{prefix}:jobs:inactive") == 0


def test_ids_that_are_not_numbers_are_dropped_from_the_index(
    queue: pykue.Queue, r: redis.Redis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    queue.create("w", {}).save()
    r.hset(f"{prefix}:job:ab", mapping={"type": "w", "state": "inactive", "priority": "0"})
    r.zadd(f"{prefix}:jobs:w:inactive", {"02|ab": -1, "garbage": -1, "03|1e3": -1})
    r.zadd(f"{prefix}:jobs:inactive", {"02|ab": -1})
    r.lpush(f"{prefix}:w:jobs", 1, 1, 1)
    ran = _run(queue)
    with caplog.at_level(logging.ERROR, "pykue.worker"):
        wait_for(lambda: ran == [1], what="the good job")
        queue.create("w", {}).save()
        wait_for(lambda: ran == [1, 2], what="a job saved after the bad members")
    assert r.zcard(f"{prefix}:jobs:w:inactive") == 0 and r.zcard(f"{prefix}:jobs:inactive") == 0
    assert "is not a job id" in caplog.text and "'garbage'" in caplog.text
    wait_for(lambda: _leftovers(r, prefix) == (0, 0), what="no job left active")


def test_a_job_key_of_the_wrong_type_mid_batch_strands_nothing(queue: pykue.Queue, r: redis.Redis, prefix: str) -> None:
    for _ in range(3):
        queue.create("w", {}).save()
    r.delete(f"{prefix}:job:2")
    r.set(f"{prefix}:job:2", "not a hash")
    ran = _run(queue)
    wait_for(lambda: sorted(ran) == [1, 3], what="the jobs around the broken key")
    wait_for(lambda: _leftovers(r, prefix) == (0, 0), what="no job left active")
    assert r.get(f"{prefix}:job:2") == "not a hash"  # someone's data: left as it was
    assert r.zscore(f"{prefix}:jobs", "01|2") is None and r.zcard(f"{prefix}:jobs:inactive") == 0


def test_a_queue_key_of_the_wrong_type_makes_the_claim_write_nothing(
    queue: pykue.Queue, r: redis.Redis, prefix: str
) -> None:
    for _ in range(2):
        queue.create("w", {}).save()
    r.set(f"{prefix}:jobs:w:active", "oops")
    call = sc.claim(queue.keys, now=codec.now_ms(), job_type="w", count=10, lease_ms=1000, token_base="wk:1",
                    worker_id="wid", tokens_taken=0)  # fmt: skip
    with pytest.raises(redis.ResponseError, match="jobs:w:active is a string, not a zset; nothing was written"):
        queue.scripts.run(call)
    assert r.zcard(f"{prefix}:jobs:w:inactive") == 2 and r.hlen(f"{prefix}:pykue:owners") == 0
    assert {r.hget(f"{prefix}:job:{n}", "state") for n in (1, 2)} == {"inactive"}


@pytest.mark.parametrize(
    ("field", "value"),
    [("attempts", "abc"), ("max_attempts", "inf"), ("delay", "1.5x"), ("priority", "nan"), ("ttl", "0x10"),
     ("priority", "1e+17"), ("attempts", "99999999999999999999")],
)  # fmt: skip
def test_corrupt_numbers_are_set_aside_naming_the_field(
    queue: pykue.Queue, r: redis.Redis, prefix: str, field: str, value: str
) -> None:
    queue.create("w", {}).save()
    queue.create("w", {}).save()
    r.hset(f"{prefix}:job:1", field, value)
    ran = _run(queue)
    wait_for(lambda: ran == [2], what="the good job")
    wait_for(lambda: r.hget(f"{prefix}:job:1", "state") == "failed", what="the bad one set aside")
    what = "an integer" if "attempts" in field else "a number"
    assert f"field {field} is '{value[:40]}', not {what} within" in (r.hget(f"{prefix}:job:1", "error") or "")
    assert r.zscore(f"{prefix}:jobs:w:failed", "01|1") is not None
    wait_for(lambda: _leftovers(r, prefix) == (0, 0), what="no job left active")


def test_an_unknown_state_is_set_aside_not_dropped(queue: pykue.Queue, r: redis.Redis, prefix: str) -> None:
    queue.create("w", {}).save()
    r.hset(f"{prefix}:job:1", "state", "weird")
    ran = _run(queue)
    wait_for(lambda: r.hget(f"{prefix}:job:1", "state") == "failed", what="the job set aside")
    assert "unknown state 'weird'" in (r.hget(f"{prefix}:job:1", "error") or "")
    assert queue.get_job(1).state == "failed" and ran == []


def _corrupting_handler(r: redis.Redis, prefix: str, fail: bool) -> Any:
    def handler(job: Any) -> None:
        r.hset(f"{prefix}:job:{job.id}", "attempts", "not a number")
        if fail:
            raise RuntimeError("boom")

    return handler


@pytest.mark.parametrize("fail", [False, True])
def test_an_outcome_on_a_record_corrupted_while_running_leaves_no_job_active(
    queue: pykue.Queue, r: redis.Redis, prefix: str, fail: bool
) -> None:
    queue.create("w", {}).attempts(1).save()
    queue.process("w", _corrupting_handler(r, prefix, fail))
    want = "failed" if fail else "complete"
    wait_for(lambda: r.hget(f"{prefix}:job:1", "state") == want, what=f"the job {want}")
    wait_for(lambda: _leftovers(r, prefix) == (0, 0), what="no active entry left")
    assert r.zscore(f"{prefix}:jobs:{want}", "01|1") is not None
    assert r.hget(f"{prefix}:job:1", "attempts") == "1"


def test_a_stored_exponential_backoff_of_1e400_still_retries(queue: pykue.Queue, r: redis.Redis, prefix: str) -> None:
    job = queue.create("w", {}).attempts(3).save()
    r.hset(f"{prefix}:job:{job.id}", "backoff", '{"type":"exponential","delay":1e400}')  # as Node could store it

    def handler(job: Any) -> None:
        raise RuntimeError("boom")

    queue.process("w", handler)
    wait_for(lambda: r.hget(f"{prefix}:job:1", "state") == "delayed", what="the retry scheduled")
    wait_for(lambda: _leftovers(r, prefix) == (0, 0), what="no job left active")
    assert int(r.hget(f"{prefix}:job:1", "delay") or -1) <= codec.MAX_SAFE_INTEGER


# -- option bounds where they are set ----------------------------------------------------------
def _deep(n: int) -> Any:
    value: Any = 1
    for _ in range(n):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda j: j.backoff({"type": "exponential", "delay": 10**400}), "safe integers"),
        (lambda j: j.backoff({"type": "fixed", "delay": 2**53}), "safe integers"),
        (lambda j: j.priority(10**17), "safe integers"),
        (lambda j: j.priority("100000000000000000"), "safe integers"),
        (lambda j: j.attempts(2**60), "safe integers"),
        (lambda j: j.delay(2**53), "safe integers"),
        (lambda j: j.ttl(10**20), "safe integers"),
        (lambda j: setattr(j, "data", _deep(5000)), "nested more than"),
        (lambda j: setattr(j, "data", {"k": "\ud800"}), "lone surrogate"),
        (lambda j: setattr(j, "data", {"\udfff": 1}), "lone surrogate"),
        (lambda j: setattr(j, "data", {"x": float("inf")}), "JSON cannot carry"),
    ],
)
def test_out_of_range_options_are_refused_before_anything_is_written(
    queue: pykue.Queue, r: redis.Redis, prefix: str, setup: Any, message: str
) -> None:
    job = queue.create("w", {})
    with pytest.raises(InvalidJobError, match=message):
        setup(job)
        job.save()
    assert r.get(f"{prefix}:ids") is None and r.zcard(f"{prefix}:jobs") == 0


def test_a_type_with_a_lone_surrogate_is_refused(queue: pykue.Queue) -> None:
    with pytest.raises(InvalidJobError, match="lone surrogate"):
        queue.create("w\ud800", {})


def test_priority_1e17_is_refused_where_it_is_set_and_the_job_stays_usable(
    queue: pykue.Queue, r: redis.Redis, prefix: str
) -> None:
    job = queue.create("w", {}).save()
    with pytest.raises(InvalidJobError, match="safe integers"):
        job.set_priority(10**17)
    with pytest.raises(redis.ResponseError, match="priority '1e17' is not an integer"):
        queue.scripts.run(sc.set_priority(queue.keys, now=codec.now_ms(), job_id=job.id or 0, priority="1e17"))
    assert r.hget(f"{prefix}:job:1", "priority") == "0"
    r.hset(f"{prefix}:job:1", "priority", "1e+17")  # what an older pykue stored
    assert queue.get_job(1).id == 1
    assert queue.get_job(1).remove() and r.exists(f"{prefix}:job:1") == 0


# -- item 5: one bad event does not silence the listeners -----------------------------------------
BAD_EVENTS = [
    b"\xff\xfe not UTF-8",
    b"not json",
    b"[1, 2]",
    b'{"id": "x", "event": "complete"}',
    b'{"id": 1e400, "event": "complete", "args": ["complete"]}',
    b'{"id": 1, "event": 5}',
    b'{"id": 1, "event": "complete", "args": "complete"}',
    b"[" * 100_000,
]


def test_decode_never_raises_on_bad_messages() -> None:
    for message in BAD_EVENTS:
        assert decode(message) is None
    assert decode('{"id":"12","event":"progress","args":["progress",50,null]}') == (12, "progress", [50, None])


def test_bad_events_are_skipped_and_job_and_queue_listeners_still_hear(
    queue: pykue.Queue, raw: redis.Redis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    job = queue.create("w", {}).save()
    heard_job: list[Any] = []
    heard_queue: list[Any] = []
    job.on("progress", heard_job.append)
    queue.on("job progress", lambda job_id, pct: heard_queue.append((job_id, pct)))
    with caplog.at_level(logging.WARNING, "pykue.events"):
        for message in BAD_EVENTS:
            raw.publish(f"{prefix}:events", message)
        raw.publish(f"{prefix}:events", json.dumps({"id": job.id, "event": "progress", "args": ["progress", 42]}))
        wait_for(lambda: heard_job == [42] and heard_queue == [(job.id, 42)], what="the good event")
    assert "not UTF-8" in caplog.text and "not Kue's" in caplog.text


def test_a_running_job_still_answers_node_kues_ttl_checker_after_a_bad_event(
    queue: pykue.Queue, raw: redis.Redis, prefix: str
) -> None:
    job = queue.create("w", {}).save()
    started = threading.Event()
    release = threading.Event()

    def handler(job: Any) -> None:
        started.set()
        release.wait(10)

    queue.process("w", handler)
    assert started.wait(10)
    acks: list[Any] = []
    queue.on("job ttl exceeded ack", lambda job_id: acks.append(job_id))
    raw.publish(f"{prefix}:events", b"\xff")
    raw.publish(f"{prefix}:events", json.dumps({"id": job.id, "event": "ttl exceeded", "args": ["ttl exceeded"]}))
    wait_for(lambda: acks == [job.id], what="the TTL ack")
    release.set()
    wait_for(lambda: raw.hget(f"{prefix}:job:1", "state") == b"failed", what="the job failed by its owner")


def test_the_subscriber_delivers_the_good_event_after_bad_ones(url: str, prefix: str) -> None:
    """The dashboard's live updates and metrics ride on this Subscriber."""

    async def scenario() -> list[str]:
        got: list[str] = []
        arrived = asyncio.Event()

        def on_message(text: str) -> None:
            got.append(text)
            arrived.set()

        q = pykue.create_async_queue(url, prefix=prefix, settings=FAST)
        sub = Subscriber(q.client, q.keys.events, on_message)
        await sub.start()
        try:
            for message in BAD_EVENTS:
                await q.client.publish(q.keys.events, message)
            good = json.dumps({"id": 3, "event": "complete", "args": ["complete", None]})
            await q.client.publish(q.keys.events, good)
            await asyncio.wait_for(arrived.wait(), 10)
        finally:
            await sub.stop()
            await q.shutdown()
        return got

    assert asyncio.run(scenario()) == ['{"id": 3, "event": "complete", "args": ["complete", null]}']


@pytest.mark.parametrize("result", [{1, 2}, {"text": "\ud800"}, _deep(5000)])
def test_a_result_that_cannot_be_stored_fails_the_job_instead_of_leaving_it_active(
    queue: pykue.Queue, r: redis.Redis, prefix: str, result: Any
) -> None:
    queue.create("w", {}).save()
    queue.process("w", lambda job: result)
    wait_for(lambda: r.hget(f"{prefix}:job:1", "state") == "failed", what="the job failed")
    assert "InvalidJobError: job result" in (r.hget(f"{prefix}:job:1", "error") or "")
    wait_for(lambda: _leftovers(r, prefix) == (0, 0), what="no job left active")


def test_a_batch_enqueue_meeting_a_wrong_type_key_saves_nothing(
    queue: pykue.Queue, r: redis.Redis, prefix: str
) -> None:
    r.set(f"{prefix}:job:2", "in the way")
    with pytest.raises(redis.ResponseError, match=f"{prefix}:job:2 is a string, not a hash; nothing was written"):
        queue.save_many([queue.create("w", {"n": n}) for n in range(3)])
    assert r.get(f"{prefix}:ids") is None and r.exists(f"{prefix}:job:1") == 0
    assert r.zcard(f"{prefix}:jobs") == 0 and r.llen(f"{prefix}:w:jobs") == 0


def test_a_state_change_meeting_a_wrong_type_key_changes_nothing(
    queue: pykue.Queue, r: redis.Redis, prefix: str
) -> None:
    job = queue.create("w", {}).save()
    r.set(f"{prefix}:jobs:complete", "in the way")
    with pytest.raises(redis.ResponseError, match="jobs:complete is a string, not a zset"):
        job.complete()
    assert r.hget(f"{prefix}:job:1", "state") == "inactive"
    assert r.zscore(f"{prefix}:jobs:inactive", "01|1") is not None
    assert r.zscore(f"{prefix}:jobs:w:inactive", "01|1") is not None


def test_a_record_set_aside_for_bad_bytes_can_be_listed_shown_and_removed(
    queue: pykue.Queue, raw: redis.Redis, url: str, prefix: str
) -> None:
    queue.create("w", {}).save()
    raw.hset(f"{prefix}:job:1", "data", b'{"name":"\xff"}')
    _run(queue)
    wait_for(lambda: raw.hget(f"{prefix}:job:1", "state") == b"failed", what="the record set aside")
    [listed] = queue.jobs("failed")
    assert listed.id == 1 and listed.data == {"name": "\ufffd"}  # shown as Node Kue shows it
    assert "field 'data' is not UTF-8" in (queue.get_job(1).error or "")

    async def from_asyncio() -> list[Any]:
        aq = pykue.create_async_queue(url, prefix=prefix, settings=FAST)
        try:
            return [job.id for job in await aq.jobs("failed")] + [(await aq.get_job(1)).state]
        finally:
            await aq.shutdown()

    assert asyncio.run(from_asyncio()) == [1, "failed"]
    assert queue.get_job(1).remove() and raw.exists(f"{prefix}:job:1") == 0
    assert raw.zcard(f"{prefix}:jobs:failed") == 0


def test_the_reaper_meeting_a_wrong_type_job_key_still_returns_the_other_jobs(
    queue: pykue.Queue, r: redis.Redis, prefix: str
) -> None:
    for _ in range(2):
        queue.create("w", {}).save()
    now = codec.now_ms()
    claimed = queue.scripts.run(sc.claim(queue.keys, now=now, job_type="w", count=2, lease_ms=100, token_base="dead:1",
                                         worker_id="wid", tokens_taken=0))  # fmt: skip
    assert isinstance(claimed, list) and [claimed[0], claimed[3]] == ["1", "2"]
    r.delete(f"{prefix}:job:1")
    r.set(f"{prefix}:job:1", "not a hash")
    assert queue.scripts.run(sc.reap(queue.keys, now=now + 1000, max_stalled=1, limit=10)) == sc.Reaped(1, 0)
    assert r.hget(f"{prefix}:job:2", "state") == "inactive"
    assert r.zscore(f"{prefix}:jobs:w:inactive", "01|2") is not None and r.hlen(f"{prefix}:pykue:owners") == 0


def test_promotion_meeting_a_wrong_type_job_key_still_promotes_the_others(
    queue: pykue.Queue, r: redis.Redis, prefix: str
) -> None:
    queue.create("w", {}).delay(1).save()
    queue.create("w", {}).delay(2).save()
    r.delete(f"{prefix}:job:1")
    r.set(f"{prefix}:job:1", "not a hash")
    assert queue.scripts.run(sc.promote(queue.keys, now=codec.now_ms() + 1000, limit=10)) == 1
    assert r.hget(f"{prefix}:job:2", "state") == "inactive"
    assert r.zcard(f"{prefix}:jobs:delayed") == 0


@pytest.mark.parametrize(("completed", "total"), [(float("nan"), 1), (1, float("inf")), (10**400, 1), ("5", 10)])
def test_progress_with_numbers_javascript_cannot_hold_is_refused(
    queue: pykue.Queue, r: redis.Redis, prefix: str, completed: Any, total: Any
) -> None:
    job = queue.create("w", {}).save()
    with pytest.raises(InvalidJobError, match="progress"):
        job.progress(completed, total)
    assert r.hget(f"{prefix}:job:1", "progress") is None


def test_listing_skips_index_members_that_are_not_job_ids(queue: pykue.Queue, r: redis.Redis, prefix: str) -> None:
    queue.create("w", {}).save()
    r.zadd(f"{prefix}:jobs:inactive", {"garbage": 0, "02|ab": 0, "03|1e3": 0})
    assert [job.id for job in queue.jobs("inactive")] == [1]
    assert queue.job_ids("inactive", order="desc") == [1]


def test_fractional_numbers_as_node_kue_stores_them_are_not_set_aside(
    queue: pykue.Queue, r: redis.Redis, prefix: str
) -> None:
    queue.create("w", {}).save()
    r.hset(f"{prefix}:job:1", mapping={"priority": "1.5", "ttl": "60000.5", "delay": "0.5"})
    ran = _run(queue)
    wait_for(lambda: r.hget(f"{prefix}:job:1", "state") == "complete", what="the job completed")
    assert ran == [1]


def test_set_aside_only_acts_for_the_owner_of_the_claim(queue: pykue.Queue, r: redis.Redis, prefix: str) -> None:
    queue.create("w", {}).save()
    now = codec.now_ms()
    claimed = queue.scripts.run(sc.claim(queue.keys, now=now, job_type="w", count=1, lease_ms=60000,
                                         token_base="wk:1", worker_id="wid", tokens_taken=0))  # fmt: skip
    assert isinstance(claimed, list)
    [job_id, token, _] = claimed

    def aside(token: str) -> sc.Outcome:
        return queue.scripts.run(
            sc.set_aside(queue.keys, now=now, job_id=job_id, token=token, reason="field 'data' is bad")
        )

    assert aside("wk:9:1") is sc.Outcome.NOT_OWNED
    assert r.hget(f"{prefix}:job:1", "state") == "active" and r.hget(f"{prefix}:pykue:owners", "1") == token
    assert aside(token) is sc.Outcome.DONE
    assert r.hget(f"{prefix}:job:1", "state") == "failed"
    assert r.hget(f"{prefix}:job:1", "error") == "pykue: field 'data' is bad; set aside"
    assert r.zscore(f"{prefix}:jobs:w:failed", "01|1") is not None
    wait_for(lambda: _leftovers(r, prefix) == (0, 0), what="no job left active")


def test_log_lines_that_are_not_utf8_are_shown_not_raised(queue: pykue.Queue, raw: redis.Redis, prefix: str) -> None:
    job = queue.create("w", {}).save()
    job.log("fine")
    raw.rpush(f"{prefix}:job:1:log", b"bad \xff byte")
    assert job.logs() == ["fine", "bad \ufffd byte"]
