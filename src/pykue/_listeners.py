"""Which job of this process hears which `P:events` message, including its own first ones.

A job's id is known only once the enqueue script has run, and that script has already
published `enqueue` (and a worker may have published `start` and `complete`) by the time
its reply reaches us. So a save announces itself first (`expect`), and while any save is
in flight the job-level part of messages for ids nobody listens to is held; when the reply
binds the ids (`settle`), the held events of those ids are replayed in order, and the rest
is dropped once no save is in flight. All methods run in one thread (the asyncio loop, or
the sync queue's dispatch thread), so the order of calls is the order of events.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ._events import FINAL_EVENTS, Emitter, decode_or_warn

MAX_HELD = 10_000  # events held for unknown ids while saves are in flight


class JobListeners:
    def __init__(self, queue: Emitter) -> None:
        self.queue = queue
        self.jobs: dict[int, Emitter] = {}
        self._in_flight = 0
        self._held: dict[int, list[tuple[str, list[Any]]]] = {}
        self._n_held = 0

    def add(self, job_id: int, job: Emitter) -> None:
        self.jobs[job_id] = job

    def expect(self) -> None:
        """A save of jobs with listeners is about to run its script."""
        self._in_flight += 1

    def settle(self, jobs: Iterable[tuple[int, Emitter]]) -> None:
        """The save's reply: bind each id to its job and replay what it missed."""
        for job_id, job in jobs:
            self.add(job_id, job)
            for event, args in self._held.pop(job_id, ()):
                self._emit_job(job_id, event, args)
        self._in_flight -= 1
        if self._in_flight == 0:
            self._held.clear()
            self._n_held = 0

    def dispatch(self, message: str | bytes) -> None:
        decoded = decode_or_warn(message)  # the subscription passes on what is not Kue's
        if decoded is None:
            return
        job_id, event, args = decoded
        if job_id in self.jobs:
            self._emit_job(job_id, event, args)
        elif self._in_flight and self._n_held < MAX_HELD:
            self._held.setdefault(job_id, []).append((event, args))
            self._n_held += 1
        self.queue.emit(f"job {event}", job_id, *args)

    def _emit_job(self, job_id: int, event: str, args: list[Any]) -> None:
        job = self.jobs.get(job_id)
        if event in FINAL_EVENTS:
            self.jobs.pop(job_id, None)
        if job is not None:
            job.emit(event, *args)
