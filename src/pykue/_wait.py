"""Waiting for a job's outcome (job.wait): what the hash says, else the next final event.

The caller registers a waiter on the job and confirms the events subscription *before*
it reads the hash, so an outcome written between the read and the wait is still heard:
there is no window in which a wake-up can be lost. The twins differ only in how a waiter
blocks (an asyncio.Event or a threading.Event), so each queue makes its own kind.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from typing import Any

from . import _codec as codec
from ._errors import JobFailedError, JobNotFoundError, WaitTimeoutError

Outcome = tuple[str, Any]  # ("complete", result) | ("failed", error text) | ("remove", None)
WAIT_EVENTS = ("complete", "failed", "remove")


def outcome_of(fields: Mapping[str, str]) -> Outcome | None:
    """A finished job's outcome from its hash; None while it has not finished."""
    if not fields:
        return ("remove", None)
    if fields.get("state") == "complete":
        return ("complete", codec.loads_field(fields, "result"))
    if fields.get("state") == "failed":
        return ("failed", fields.get("error") or "failed")
    return None


def settle(job_id: int, outcome: Outcome | None, timeout: float | None) -> Any:
    """The result of a wait, or its named error."""
    if outcome is None:
        raise WaitTimeoutError(f"job {job_id} did not finish within {timeout} s")
    kind, value = outcome
    if kind == "failed":
        raise JobFailedError(job_id, str(value))
    if kind == "remove":
        raise JobNotFoundError(job_id)
    return value


class _Waiter:
    """Listens to one job's final events; the first one wins."""

    outcome: Outcome | None = None

    def _set(self, outcome: Outcome) -> None:
        raise NotImplementedError

    def on_complete(self, *args: Any) -> None:
        self._set(("complete", args[0] if args else None))

    def on_failed(self, *args: Any) -> None:
        self._set(("failed", args[0] if args else "failed"))

    def on_remove(self, *args: Any) -> None:
        self._set(("remove", None))

    def listeners(self) -> dict[str, Any]:
        return {"complete": self.on_complete, "failed": self.on_failed, "remove": self.on_remove}


class AsyncWaiter(_Waiter):
    """Set from the event loop that dispatches the queue's events."""

    def __init__(self) -> None:
        self._done = asyncio.Event()

    def _set(self, outcome: Outcome) -> None:
        if self.outcome is None:
            self.outcome = outcome
            self._done.set()

    async def wait(self, timeout: float | None) -> Outcome | None:
        try:
            await asyncio.wait_for(self._done.wait(), timeout)
        except TimeoutError:
            pass
        return self.outcome


class ThreadWaiter(_Waiter):
    """Set from the sync queue's listener thread."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._lock = threading.Lock()

    def _set(self, outcome: Outcome) -> None:
        with self._lock:
            if self.outcome is None:
                self.outcome = outcome
                self._done.set()

    def wait(self, timeout: float | None) -> Outcome | None:
        self._done.wait(timeout)
        return self.outcome
