"""One log record per job outcome, on the `pykue.jobs` logger.

The engine calls `outcome()` where it writes an outcome to Redis, so every worker (sync,
asyncio, CLI) logs the same way. pykue installs no handler: a library user sees these
records through their own logging setup, each field also an attribute of the record
(`record.job_id`, ...), which is what a JSON formatter or a log shipper wants. Only the
CLI configures output (`configure`), as text or one JSON object per line.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

jobs_log = logging.getLogger("pykue.jobs")

FIELDS = ("job_id", "job_type", "outcome", "duration_ms", "attempt", "error")
LOG_FORMATS = ("text", "json")


def outcome(job_id: int, job_type: str, result: str, duration_ms: int, attempt: int, error: str = "") -> None:
    """Log one job's outcome: complete, retry (a failed attempt with attempts left) or failed."""
    if not jobs_log.isEnabledFor(logging.INFO):  # the hot path pays nothing when nobody listens
        return
    extra = {"job_id": job_id, "job_type": job_type, "outcome": result, "duration_ms": duration_ms,
             "attempt": attempt, "error": error}  # fmt: skip
    tail = f" error={json.dumps(error)}" if error else ""
    jobs_log.info("job %s %s %s in %d ms (attempt %d)%s", job_id, job_type, result, duration_ms, attempt,
                 tail, extra=extra)  # fmt: skip


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and a job record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            if hasattr(record, name):
                out[name] = getattr(record, name)
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure(level: str = "INFO", fmt: str = "text") -> None:
    """The CLI's logging: pykue's records (job outcomes included) on stderr."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}; got {fmt!r}")
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("pykue")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
