"""A table of handlers, one per job type: what one worker needs to serve many types.

`{"email": send, "resize": (4, resize)}` maps each job type to its handler, or to
(concurrency, handler); types given without a concurrency get the default. Checked up front,
so a typo fails at start-up with a clear message rather than when the first job comes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from . import _codec as codec

HandlerTable = Mapping[str, Callable[..., Any] | tuple[int, Callable[..., Any]]]


def handler_table(handlers: HandlerTable, concurrency: int = 1) -> list[tuple[str, int, Callable[..., Any]]]:
    """[(type, concurrency, handler), ...] from a table; TypeError/ValueError name the bad entry."""
    if not isinstance(handlers, Mapping) or not handlers:
        raise TypeError(f"handlers must be a non-empty dict of job type -> handler; got {type(handlers).__name__}")
    out = []
    for job_type, entry in handlers.items():
        if not isinstance(job_type, str):
            raise TypeError(f"handlers: a job type must be a string; got {job_type!r}")
        codec.check_type(job_type)
        n, fn = entry if isinstance(entry, tuple) and len(entry) == 2 else (concurrency, entry)
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"handlers[{job_type!r}]: concurrency must be an int >= 1; got {n!r}")
        if not callable(fn):
            raise TypeError(f"handlers[{job_type!r}] must be a handler or (concurrency, handler); got {entry!r}")
        out.append((job_type, n, fn))
    return out
