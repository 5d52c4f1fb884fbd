"""Worker logging (one record per job outcome) and one worker for many job types, through the
library and the real `pykue worker` entry point with this worktree's code."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import time
from collections.abc import Iterator

import pytest

import pykue
from tests.conftest import FAST, PY, ROOT, py_env
from tests.helpers import wait_for
from tests.procs import Proc

EXE = [PY, "-m", "pykue.cli"]


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EXE, *args], env=py_env(), capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture
def q(url: str, prefix: str) -> Iterator[pykue.Queue]:
    queue = pykue.create_queue(url, prefix=prefix, settings=FAST)
    yield queue
    queue.shutdown(1)


def outcomes(records: list[logging.LogRecord]) -> dict[int, list[tuple[str, int, str]]]:
    out: dict[int, list[tuple[str, int, str]]] = {}
    for rec in records:
        if rec.name == "pykue.jobs":
            out.setdefault(rec.job_id, []).append((rec.outcome, rec.attempt, rec.error))  # type: ignore[attr-defined]
    return out


def test_library_logs_each_outcome_with_fields_and_installs_no_handler(
    q: pykue.Queue, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pykue")
    good = q.create("good", {}).save()
    flaky = q.create("flaky", {}, attempts=2).save()
    bad = q.create("bad", {}, attempts=1).save()
    q.process_many({"good": lambda j: "ok", "flaky": fail_twice_once(), "bad": (2, boom)})
    wait_for(lambda: q.complete_count() == 2 and q.failed_count() == 1, what="jobs to finish")

    def logged() -> dict[int, list[tuple[str, int, str]]] | None:
        o = outcomes(caplog.records)
        return o if len(o) == 3 and len(o[flaky.id or 0]) == 2 else None

    got = wait_for(logged, what="three jobs' records")
    assert got[good.id or 0] == [("complete", 1, "")]
    assert got[flaky.id or 0] == [("retry", 1, "first attempt fails"), ("complete", 2, "")]
    assert got[bad.id or 0] == [("failed", 1, "card declined")]
    rec = next(r for r in caplog.records if getattr(r, "job_id", None) == good.id)
    assert (rec.levelno, rec.job_type, rec.name) == (logging.INFO, "good", "pykue.jobs")  # type: ignore[attr-defined]
    assert isinstance(rec.duration_ms, int) and rec.duration_ms >= 0  # type: ignore[attr-defined]
    assert f"job {good.id} good complete" in rec.getMessage()
    assert logging.getLogger("pykue").handlers == [] and logging.getLogger("pykue.jobs").handlers == []


def fail_twice_once() -> object:
    seen: set[int] = set()

    def handler(job: pykue.Job) -> str:
        if job.id not in seen:
            seen.add(job.id or 0)
            raise RuntimeError("first attempt fails")
        return "ok"

    return handler


def boom(job: pykue.Job) -> None:
    raise RuntimeError("card declined")


def test_process_many_refuses_a_bad_table_before_starting(q: pykue.Queue) -> None:
    with pytest.raises(ValueError, match=r"handlers\['b'\]: concurrency must be an int >= 1"):
        q.process_many({"a": boom, "b": (0, boom)})
    with pytest.raises(TypeError, match=r"handlers\['a'\] must be a handler"):
        q.process_many({"a": "not callable"})
    with pytest.raises(TypeError, match="non-empty dict"):
        q.process_many({})
    assert q._runtime is None or not q._runtime.engines  # nothing started for the good entries


def test_async_process_many_gives_each_type_its_concurrency(url: str, prefix: str) -> None:
    asyncio.run(asyncio.wait_for(async_many_types(url, prefix), 60))


async def async_many_types(url: str, prefix: str) -> None:
    aq = pykue.create_async_queue(url, prefix=prefix, settings=FAST)
    gate = asyncio.Event()
    try:
        for t in ("a", "b"):
            await aq.save_many(aq.create(t, {}) for _ in range(5))

        async def held(job: pykue.AsyncJob) -> None:
            await gate.wait()

        engines = await aq.process_many({"a": held, "b": (3, held)}, concurrency=2)
        assert [(e.type, e.concurrency) for e in engines] == [("a", 2), ("b", 3)]
        for t, n in (("a", 2), ("b", 3)):
            await wait_async(lambda t=t, n=n: both(aq, t, n))
        gate.set()
        await wait_async(lambda: complete(aq, 10))
    finally:
        gate.set()
        await aq.shutdown(1)


async def both(aq: pykue.AsyncQueue, t: str, n: int) -> bool:
    return await aq.active_count(t) == n and await aq.inactive_count(t) == 5 - n


async def complete(aq: pykue.AsyncQueue, n: int) -> bool:
    return await aq.complete_count() == n


async def wait_async(cond: object, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not await cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def test_cli_worker_logs_json_lines_per_outcome(url: str, prefix: str, q: pykue.Queue) -> None:
    good = q.create("good", {}).save()
    flaky = q.create("flaky", {}, attempts=2).save()
    bad = q.create("bad", {}, attempts=1).save()
    out = cli("worker", "--handlers", "tests.feature_handlers:MIXED", "--burst", "--log-format", "json",
              "--redis", url, "--prefix", prefix)  # fmt: skip
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stderr.splitlines() if line.startswith("{")]
    jobs = [r for r in records if r["logger"] == "pykue.jobs"]
    seen = {(r["job_id"], r["job_type"], r["outcome"], r["attempt"], r["error"]) for r in jobs}
    assert seen == {
        (good.id, "good", "complete", 1, ""),
        (flaky.id, "flaky", "retry", 1, f"first attempt of {flaky.id} fails"),
        (flaky.id, "flaky", "complete", 2, ""),
        (bad.id, "bad", "failed", 1, "card declined"),
    }
    assert len(jobs) == 4 and all(r["level"] == "info" and r["duration_ms"] >= 0 for r in jobs)
    assert all(r["time"].endswith("Z") for r in records)


def test_cli_worker_text_log_and_log_level(url: str, prefix: str, q: pykue.Queue) -> None:
    job = q.create("good", {}).save()
    out = cli("worker", "--handlers", "tests.feature_handlers:MIXED", "--burst", "--redis", url, "--prefix", prefix)
    line = next(ln for ln in out.stderr.splitlines() if "pykue.jobs" in ln)
    assert f"INFO pykue.jobs: job {job.id} good complete in " in line and "(attempt 1)" in line
    q.create("good", {}).save()
    quiet = cli("worker", "--handlers", "tests.feature_handlers:MIXED", "--burst", "--log-level", "warning",
                "--redis", url, "--prefix", prefix)  # fmt: skip
    assert quiet.returncode == 0 and "pykue.jobs" not in quiet.stderr
    assert q.complete_count("good") == 2


def test_cli_worker_serves_many_types_each_with_its_concurrency(url: str, prefix: str, q: pykue.Queue) -> None:
    """--handlers gives "big" 3 slots and "small" the default --concurrency 2; HANDLER --type
    adds "extra" at 2. Handlers block until released, so the claimed counts are the caps."""
    release = f"{prefix}:release"
    data = {"url": url, "release": release}
    for t in ("small", "big", "extra"):
        q.save_many(q.create(t, data) for _ in range(5))
    worker = Proc([*EXE, "worker", "tests.feature_handlers:hold", "--type", "extra", "--handlers",
                   "tests.feature_handlers:HANDLERS", "-c", "2", "-p", "1", "--redis", url, "--prefix", prefix],
                  env=py_env())  # fmt: skip
    try:
        worker.line("pykue worker: small x2, big x3, extra x2")
        for t, n in (("small", 2), ("big", 3), ("extra", 2)):
            wait_for(lambda t=t, n=n: q.active_count(t) == n and q.inactive_count(t) == 5 - n,
                     what=f"{n} {t} jobs running, the rest waiting")  # fmt: skip
        q.client.rpush(release, "go")
        wait_for(lambda: q.complete_count() == 15, what="all jobs to complete")
        assert sorted(j.result for j in q.jobs("complete")) == ["big"] * 5 + ["extra"] * 5 + ["small"] * 5
    finally:
        worker.proc.terminate()
        assert worker.finish() == 0, worker.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--handlers", "tests.feature_handlers:BROKEN"], "handlers['bad']: concurrency must be an int >= 1"),
        (["--handlers", "tests.feature_handlers:NOT_A_DICT"], "must be a non-empty dict of job type -> handler"),
        (["--handlers", "tests.feature_handlers:MISSING"], "must be a non-empty dict"),
        (["tests.feature_handlers:ok"], "give the job type(s) HANDLER processes with --type"),
        (["--type", "a"], "--type needs a HANDLER"),
        ([], "give a HANDLER with --type TYPE, or --handlers MODULE:NAME"),
        (["tests.feature_handlers:ok", "--type", "good", "--handlers", "tests.feature_handlers:MIXED"],
         "job type 'good' is both in --handlers and given with --type"),
        (["--handlers", "tests.feature_handlers:MIXED", "--log-format", "xml"], "Invalid value for '--log-format'"),
    ],
)  # fmt: skip
def test_cli_worker_refuses_bad_handler_tables(url: str, args: list[str], message: str) -> None:
    out = cli("worker", *args, "--redis", url)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, out.stderr
