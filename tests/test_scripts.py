"""Typed script calls (issue 11 item 2) and declared keys (item 3): names, outcomes, refusals."""

from __future__ import annotations

import asyncio
import logging
import re
from importlib import resources
from typing import Any

import pytest
import redis
import redis.asyncio as aredis

import pykue
from pykue import _codec as codec
from pykue import _scripts as sc
from pykue._keys import DECLARED, STATES, Keys
from pykue._pause import paused_key
from pykue._schedule import next_key, schedules_key

LUA = resources.files("pykue") / "lua"


def _claim_one(queue: pykue.Queue, job_type: str = "w") -> tuple[int, str]:
    call = sc.claim(queue.keys, now=codec.now_ms(), job_type=job_type, count=1, lease_ms=60000, token_base="wk:1",
                    worker_id="wid", tokens_taken=0)  # fmt: skip
    out = queue.scripts.run(call)
    assert isinstance(out, list) and len(out) == 3
    return int(out[0]), str(out[1])


def test_a_completion_no_longer_ours_is_refused_by_name_and_logged_at_warning(
    queue: pykue.Queue, r: redis.Redis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Fault: the job is moved by hand (kue.app's PUT) while its run is out; the run's late
    completion must come back as NOT_OWNED and be logged where an operator sees it."""
    queue.create("w", {}).save()
    job_id, token = _claim_one(queue)
    queue.get_job(job_id).set_state("inactive")  # revokes the owner token
    caplog.set_level(logging.WARNING, logger="pykue")
    late = sc.complete(queue.keys, now=codec.now_ms(), jobs=[(job_id, token, 5, '"late"')])
    assert queue.scripts.run(late) == [sc.Outcome.NOT_OWNED]
    refusals = [rec for rec in caplog.records if rec.levelno == logging.WARNING and "refused" in rec.getMessage()]
    assert len(refusals) == 1 and f"[{job_id}]" in refusals[0].getMessage()
    assert r.hget(f"{prefix}:job:{job_id}", "state") == "inactive"


def test_an_owned_completion_and_failure_are_named_outcomes(
    queue: pykue.Queue, caplog: pytest.LogCaptureFixture
) -> None:
    queue.save_many(queue.create("w", {}).attempts(2) for _ in range(2))
    caplog.set_level(logging.WARNING, logger="pykue")
    job_id, token = _claim_one(queue)
    assert queue.scripts.run(sc.complete(queue.keys, now=codec.now_ms(), jobs=[(job_id, token, 5, "")])) == [
        sc.Outcome.DONE
    ]
    job_id, token = _claim_one(queue)
    fail = sc.fail(queue.keys, now=codec.now_ms(), job_id=job_id, token=token, error="e", log_line="e", message="e",
                   retry_delay_ms=-1)  # fmt: skip
    assert queue.scripts.run(fail) == sc.Failed(attempts=1, final=False)
    assert queue.scripts.run(fail) is sc.Outcome.NOT_OWNED  # the same run cannot fail twice
    assert [rec.getMessage() for rec in caplog.records] == [
        f"pykue: failure of job {job_id} refused: no longer owned by this worker (token {token})"
    ]


def test_the_ttl_checkers_miss_is_not_a_refusal(queue: pykue.Queue, caplog: pytest.LogCaptureFixture) -> None:
    """mode "ttl" with token "*" asks "fail it if its TTL ran out": nil then is routine."""
    queue.create("w", {}).save()
    job_id, _ = _claim_one(queue)
    caplog.set_level(logging.WARNING, logger="pykue")
    ttl = sc.fail(queue.keys, now=codec.now_ms(), job_id=job_id, token="*", error="TTL exceeded",
                  log_line="TTL exceeded", message="TTL exceeded", retry_delay_ms=-1, mode="ttl")  # fmt: skip
    assert queue.scripts.run(ttl) is sc.Outcome.NOT_OWNED
    assert caplog.records == []


def test_claim_of_a_paused_type_is_the_paused_outcome(queue: pykue.Queue) -> None:
    queue.create("w", {}).save()
    queue.pause("w")
    call = sc.claim(queue.keys, now=codec.now_ms(), job_type="w", count=1, lease_ms=1000, token_base="wk:1",
                    worker_id="wid", tokens_taken=0)  # fmt: skip
    assert queue.scripts.run(call) is sc.Outcome.PAUSED
    assert queue.inactive_count() == 1


def test_builders_are_pure_and_name_every_key_they_send() -> None:
    """Both twins send what one pure function built: same inputs, same call."""
    keys = Keys("{a}")
    one = sc.set_state(keys, now=5, job_id=3, state="failed", bare=True)
    assert one == sc.set_state(keys, now=5, job_id=3, state="failed", bare=True)
    assert one.script == "set_state" and one.args == ("{a}", 5, 3, "failed", "state")
    assert one.keys == keys.declared and all(k.startswith("{a}:") for k in one.keys)


def test_the_lua_prelude_declares_the_same_keys_in_the_same_order_as_python() -> None:
    lib = (LUA / "_lib.lua").read_text()
    table = re.search(r"local DECLARED = \{(.*?)\n\}", lib, re.DOTALL)
    assert table is not None
    assert tuple(re.findall(r"'([^']+)'", table.group(1))) == DECLARED


def test_every_fixed_key_a_script_names_is_declared() -> None:
    """A literal k('name') in any script that is not in DECLARED would be reached without
    being passed in KEYS (wrong on a cluster, invisible on one Redis)."""
    named: set[str] = set()
    for f in LUA.iterdir():
        if f.name.endswith(".lua"):
            named |= set(re.findall(r"\bk\('([^']+)'\)", f.read_text()))
    assert named - {"events"} <= set(DECLARED)  # events is a channel, not a key
    assert {"jobs", "pykue:owners", "pykue:workers", "pykue:stalls"} <= named


def test_pythons_key_builders_are_the_declared_keys() -> None:
    """One layout: every fixed key Python reads is one the scripts receive (making the owners
    key unprefixed, or renaming one on one side only, fails here)."""
    keys = Keys("{q}")
    python_side = {
        keys.jobs, keys.ids, keys.types, keys.work_time, *(keys.state(s) for s in STATES),
        keys.owners, keys.workers, keys.stalls, keys.watchdog, keys.ttl_marks, keys.orphans,
        paused_key(keys), schedules_key(keys), next_key(keys), keys.limits, keys.unique,
    }  # fmt: skip
    assert python_side == set(keys.declared) and len(keys.declared) == len(DECLARED)


def test_the_scripts_use_the_keys_they_are_given(queue: pykue.Queue, r: redis.Redis, prefix: str) -> None:
    """Fault: KEYS naming another queue's owners key; the claim must write there, proving
    the script reads its fixed keys from KEYS and not from a name it builds itself."""
    queue.create("w", {}).save()
    call = sc.claim(queue.keys, now=codec.now_ms(), job_type="w", count=1, lease_ms=60000, token_base="wk:1",
                    worker_id="wid", tokens_taken=0)  # fmt: skip
    i = DECLARED.index("pykue:owners")
    moved = sc.Call(call.script, (*call.keys[:i], f"{prefix}:elsewhere", *call.keys[i + 1 :]), call.args, call.read)
    assert isinstance(queue.scripts.run(moved), list)
    assert r.hlen(f"{prefix}:elsewhere") == 1 and r.hlen(f"{prefix}:pykue:owners") == 0


def _flush_and_run(url: str, prefix: str) -> tuple[Any, Any]:
    """The same call through both twins' seams, each right after Redis forgot every script."""
    keys = Keys(prefix)
    call = sc.set_priority(keys, now=codec.now_ms(), job_id=1, priority=-5)
    client = redis.Redis.from_url(url)
    scripts = sc.Scripts(client)
    client.script_flush()
    sync_out = scripts.run(call)

    async def run_async() -> Any:
        aclient = aredis.Redis.from_url(url)
        ascripts = sc.AsyncScripts(aclient)
        await aclient.script_flush()
        try:
            return await ascripts.run(call)
        finally:
            await aclient.aclose()

    out = asyncio.run(run_async())
    client.close()
    return sync_out, out


def test_a_redis_that_forgot_its_scripts_is_sent_them_again(queue: pykue.Queue, url: str, prefix: str) -> None:
    """Fault: a restarted Redis (or SCRIPT FLUSH) answers NOSCRIPT; the call must still land."""
    queue.create("w", {}).save()
    assert _flush_and_run(url, prefix) == (sc.Outcome.DONE, sc.Outcome.DONE)
    assert queue.get_job(1).opts.priority == -5


@pytest.mark.parametrize("arg", ["plain", "naïve ☃", "", 0, -17, 2**53, 1.5, -0.25, b"\xff\x00raw"])
def test_a_script_call_is_packed_as_redis_py_packs_it(arg: Any) -> None:
    conn = redis.Connection()
    call = sc.Call("x", ("k1", "k2"), ("p", arg), lambda raw: raw)
    expected = b"".join(conn.pack_command("EVALSHA", "abc", 2, "k1", "k2", "p", arg))
    assert sc._packed(conn, "abc", call) == expected


def test_an_argument_redis_py_refuses_is_refused() -> None:
    with pytest.raises(redis.DataError):
        sc._packed(redis.Connection(), "abc", sc.Call("x", (), (True,), lambda raw: raw))
