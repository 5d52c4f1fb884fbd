"""Kue's queue.testMode: save() records jobs in memory instead of (or as well as) Redis."""

from __future__ import annotations

import itertools
from typing import Any

_ids = itertools.count(1)  # process-wide, as in Kue


class TestMode:
    __test__ = False  # not a pytest class

    def __init__(self) -> None:
        self.active = False
        self.process = False
        self.jobs: list[Any] = []

    def enter(self, process: bool = False) -> None:
        """From now on save() only records jobs (and also saves them if `process`)."""
        self.active, self.process = True, process

    def exit(self) -> None:
        """Save for real again; `jobs` is kept until clear()."""
        self.active = self.process = False

    def clear(self) -> None:
        self.jobs.clear()

    def record(self, jobs: list[Any]) -> bool:
        """Record jobs being saved; True when they must not reach Redis."""
        if not self.active:
            return False
        if not self.process:
            for job in jobs:
                job.id = next(_ids)
        self.jobs.extend(jobs)
        return not self.process
