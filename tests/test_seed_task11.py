"""Seed task 11 (8-job.test.js): create_push_notifications_jobs tested in the queue's test mode.

Enter test mode without processing before the tests; clear and exit after them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

import pykue
from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "examples"))
from push_jobs import create_push_notifications_jobs


@pytest.fixture(scope="module")
def queue() -> Iterator[pykue.Queue]:
    q = pykue.create_queue("redis://127.0.0.1:1/0")  # never contacted: test mode keeps jobs in memory
    q.test_mode.enter()
    yield q
    q.test_mode.clear()
    q.test_mode.exit()
    q.shutdown()


@pytest.fixture(autouse=True)
def empty(queue: pykue.Queue) -> None:
    queue.test_mode.clear()


@pytest.mark.parametrize("bad", [{"phoneNumber": "1"}, "jobs", 3, None])
def test_display_an_error_message_if_jobs_is_not_an_array(queue: pykue.Queue, bad: object) -> None:
    with pytest.raises(Exception, match=r"^Jobs is not an array$"):
        create_push_notifications_jobs(bad, queue)
    assert queue.test_mode.jobs == []


def test_create_two_new_jobs_to_the_queue(queue: pykue.Queue, capsys: pytest.CaptureFixture[str]) -> None:
    jobs = [
        {"phoneNumber": "4153518780", "message": "This is the code 1234 to verify your account"},
        {"phoneNumber": "4153518781", "message": "This is the code 4562 to verify your account"},
    ]
    created = create_push_notifications_jobs(jobs, queue)
    assert len(queue.test_mode.jobs) == 2
    assert [j.type for j in queue.test_mode.jobs] == ["push_notification_code_3"] * 2
    assert [j.data for j in queue.test_mode.jobs] == jobs
    first = created[0].id or 0
    assert capsys.readouterr().out.splitlines() == [
        f"Notification job created: {first}", f"Notification job created: {first + 1}"]  # fmt: skip


def test_listeners_print_progress_completion_and_failure(
    queue: pykue.Queue, capsys: pytest.CaptureFixture[str]
) -> None:
    [job] = create_push_notifications_jobs([{"phoneNumber": "1", "message": "m"}], queue)
    capsys.readouterr()
    job.emit("progress", 25, None)
    job.emit("complete", None)
    job.emit("failed", "boom")
    assert capsys.readouterr().out.splitlines() == [
        f"Notification job {job.id} 25% complete", f"Notification job {job.id} completed",
        f"Notification job {job.id} failed: boom"]  # fmt: skip


def test_empty_list_creates_nothing(queue: pykue.Queue) -> None:
    assert create_push_notifications_jobs([], queue) == []
    assert queue.test_mode.jobs == []
