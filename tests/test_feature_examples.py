"""The runnable examples of the README's features keep working (each on its own embedded Redis)."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import PY, ROOT, py_env

EXPECTED = {
    "rate_limit.py": [
        "limits: {'sms': (2, 300)}",
        "6 sent over three windows (>= 0.6 s): True",
        "failed: 0",
        "limits: {}",
    ],
    "unique_jobs.py": [
        "same job: True - deduplicated: True",
        "jobs in the queue: 1",
        "result: report for 2026-11-28",
        "after it completed, the key is free again: new job True",
    ],
    "dependencies.py": [
        "index waits: delayed",
        "index: index - after fetch and parse: True",
        "cleanup ran although upload failed: True",
        "notify: pykue: dependency 4 failed",
    ],
    "retries_and_backoff.py": [
        "attempt 1 failed: card network timed out",
        "attempt 2 failed: card network timed out",
        "charged: {'order': 42, 'tries': 3}",
        "delay before the last retry: 150 ms",
    ],
    "many_types_and_logging.py": [
        "workers: email x2, resize x4",
        "1 email complete 1",
        "2 resize complete 1",
        "3 resize failed 2 bmp is not supported",
        "3 resize retry 1 bmp is not supported",
    ],
    "async_worker.py": [f"{i + 1} img{i}.png -> 128px ['resizing img{i}.png']" for i in range(3)],
    "wait_for_result.py": [
        "result: {'width': 512}",
        "again, from the stored hash: {'width': 512}",
        "failed: division by zero",
        "no result within 0.2 s",
    ],
    "repeat_every_and_cron.py": [
        "daily-report: cron 0 9 * * * in Europe/Paris",
        "three heartbeats, each on its own 100 ms tick: True",
        "schedules left: ['daily-report']",
    ],
    "pause_and_resume.py": [
        "paused: ['email'] - the job waits: inactive",
        "sent to a@example.com",
        "crawled /a - then this worker paused; /b is inactive",
        "crawled /b",
    ],
    "clean_old_jobs.py": [
        "complete: 5",
        "older than an hour: []",
        "removed 3 with limit=3; complete now: 2",
        "the rest: 2 removed; complete now: 0",
    ],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_feature_example_output(name: str) -> None:
    out = subprocess.run([PY, str(ROOT / "examples" / "features" / name)], env=py_env(), capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == EXPECTED[name]


def test_delayed_and_priority_example_order() -> None:
    out = subprocess.run([PY, str(ROOT / "examples" / "features" / "delayed_and_priority.py")], env=py_env(),
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines()]
    assert [name for _, name in rows] == ["critical", "normal", "low", "soon"]
    assert float(rows[-1][0].rstrip("s")) >= 0.3
