"""Jobs without I/O: options, fields, the JSON view, and the queue a job belongs to."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Self

from . import _codec as codec
from . import _features as features
from ._errors import InvalidJobError
from ._events import Emitter
from ._retention import KEEP_FIELDS, check_retention

if TYPE_CHECKING:
    from ._core import QueueCore
    from ._worker import JobLease


class BaseJob(Emitter):
    """What a job is, without I/O: Kue's fluent option setters and the stored fields."""

    def __init__(self, job_type: str, data: Any = None, *, job_id: int | None = None,
                 fields: Mapping[str, str] | None = None) -> None:  # fmt: skip
        super().__init__()
        self.type = job_type if fields else codec.check_type(job_type)  # stored types are trusted
        self.data = {} if data is None else data
        self.id: int | None = job_id
        self.fields: dict[str, str] = dict(fields or {})
        self._opts: codec.JobOptions | None = None if fields else codec.JobOptions()  # stored: read on first use
        self.token: str | None = None  # owner token while a worker of ours runs it
        self._unique: str | None = None  # issue 12 (see _features.py)
        self._after: list[int] = []
        self._on_failure = "fail"
        self.deduplicated = False  # save() found an unfinished job holding the unique key: this is it
        self.lease: JobLease | None = None  # while a worker of ours runs it

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.type!r} {self.state}>"

    @property
    def revoked(self) -> bool:
        """True once the running worker learned the job is no longer its own (see JobLease)."""
        return self.lease is not None and self.lease.revoked.is_set()

    # -- Kue's fluent setters -------------------------------------------------
    def priority(self, level: int | str) -> Self:
        self.opts.priority = codec.parse_priority(level)
        return self

    def attempts(self, n: int) -> Self:
        self.opts.attempts = codec.check_attempts(n)
        return self

    def backoff(self, backoff: codec.Backoff) -> Self:
        self.opts.backoff = codec.check_backoff(backoff)
        return self

    def delay(self, ms: Any) -> Self:
        self.opts.delay = codec.check_delay(ms)
        return self

    def ttl(self, ms: int) -> Self:
        self.opts.ttl = codec.check_ttl(ms)
        return self

    def remove_on_complete(self, flag: bool | int | Mapping[str, int] = True) -> Self:
        """True: Kue's removeOnComplete (gone at once). A count, or {"age": ms, "count": n}:
        keep at most that many / that recent completed jobs of the type (see _retention.py)."""
        now, policy = check_retention(flag, "remove_on_complete")
        self.opts.remove_on_complete = now
        self._keep("complete", policy)
        return self

    def unique(self, key: str) -> Self:
        """While an unfinished job holds `key`, saving this one returns that job instead."""
        self._unique = features.unique_key(key)
        return self

    def after(self, *jobs: Any, on_failure: str = "fail") -> Self:
        """Run only once these saved jobs (or ids) complete; if one fails for good (or is
        removed) this job fails too (`on_failure="fail"`) or runs anyway (`"run"`)."""
        self._after = features.parent_ids(jobs)
        self._on_failure = features.check_on_failure(on_failure)
        return self

    @property
    def unique_key(self) -> str | None:
        return self._unique or self.fields.get("pykue_unique")

    def remove_on_fail(self, flag: bool | int | Mapping[str, int] = True) -> Self:
        """As remove_on_complete, for jobs that fail for good (True: removed at once)."""
        now, policy = check_retention(flag, "remove_on_fail")
        self._keep("failed", ",0" if now else policy)
        return self

    def _keep(self, state: str, policy: str | None) -> None:
        keep = dict(self.opts.keep or {})
        keep.pop(state, None)
        if policy is not None:
            keep[state] = policy
        self.opts.keep = keep or None

    def apply(self, **options: Any) -> Self:
        """Set options by keyword (priority=, attempts=, ...); unknown names are an error."""
        for name, value in options.items():
            setter = _OPTION_SETTERS.get(name)
            if setter is None:
                raise InvalidJobError(f"unknown job option {name!r}")
            setter(self, value)
        return self

    @property
    def opts(self) -> codec.JobOptions:
        """The job's options; a stored job's are read from its fields when first asked for
        (a worker's handler rarely asks, and reading them costs more than running a no-op)."""
        return self._opts if self._opts is not None else self._opts_from_fields()

    @opts.setter
    def opts(self, value: codec.JobOptions) -> None:
        self._opts = value

    # -- stored state -----------------------------------------------------------
    def _opts_from_fields(self) -> codec.JobOptions:
        f = self.fields
        o = self._opts = self._opts or codec.JobOptions()
        o.priority = codec.int_field(f, "priority")  # a stored record may hold anything
        o.attempts = codec.int_field(f, "max_attempts", 1)
        o.backoff = f.get("backoff")
        o.delay = codec.int_field(f, "delay")
        o.ttl = codec.int_field(f, "ttl") or None
        o.remove_on_complete = f.get("removeOnComplete") == "true"
        o.keep = {s: f[name] for s, name in KEEP_FIELDS.items() if f.get(name)} or None
        return o

    @property
    def state(self) -> str | None:
        return self.fields.get("state")

    @property
    def percent(self) -> int:
        return codec.int_field(self.fields, "progress")

    @property
    def attempts_made(self) -> int:
        return codec.int_field(self.fields, "attempts")

    @property
    def result(self) -> Any:
        return codec.loads_field(self.fields, "result")

    @property
    def error(self) -> str | None:
        return self.fields.get("error")

    def _new_fields(self, now: int) -> list[str]:
        data_json = codec.js_dumps(self.data, "job data")
        fields = codec.new_job_fields(self.type, data_json, self.opts, now)
        return fields + features.feature_fields(self._unique, self._after, self._on_failure)

    def _load(self, fields: Mapping[str, str]) -> None:
        self.fields = dict(fields)
        self._opts_from_fields()
        self.data = codec.loads_field(fields, "data")

    def to_json(self) -> dict[str, Any]:
        """Kue's Job#toJSON (what its JSON API returns); absent fields left out."""
        f = self.fields
        out: dict[str, Any] = {"id": str(self.id), "type": self.type, "data": self.data}

        def js(name: str) -> Any:
            try:
                return codec.loads_field(f, name)
            except ValueError:
                return f.get(name)

        if f.get("result"):
            out["result"] = js("result")
        out["priority"] = self.opts.priority
        out["progress"] = f.get("progress", 0)
        if f.get("progress_data"):
            out["progress_data"] = js("progress_data")
        for name in ("state", "error", "created_at", "promote_at", "updated_at", "failed_at",
                     "started_at", "duration", "delay", "workerId", "ttl"):  # fmt: skip
            if f.get(name) is not None:
                out[name] = f[name]
        made = self.attempts_made
        out["attempts"] = {"made": made, "remaining": max(0, self.opts.attempts - made),
                           "max": self.opts.attempts}  # fmt: skip
        return out


_OPTION_SETTERS: dict[str, Callable[[BaseJob, Any], Any]] = {
    "priority": BaseJob.priority,
    "attempts": BaseJob.attempts,
    "backoff": BaseJob.backoff,
    "delay": BaseJob.delay,
    "ttl": BaseJob.ttl,
    "remove_on_complete": BaseJob.remove_on_complete,
    "unique": BaseJob.unique,
    "remove_on_fail": BaseJob.remove_on_fail,
}


def log_line(fmt: Any, args: tuple[Any, ...]) -> str:
    """Kue's job.log(fmt, ...args): printf-style %s/%d, anything else as JSON."""
    if not isinstance(fmt, str):
        return codec.js_dumps(fmt, "log line")
    if args:
        try:
            return fmt % args
        except (TypeError, ValueError):
            return " ".join([fmt, *map(str, args)])
    return fmt


class BoundJob(BaseJob):
    """A job that belongs to a queue: listening to it registers it for its own events.
    Its I/O methods are in _api_async.py (AsyncJob) and the generated _api_sync.py (Job)."""

    queue: QueueCore

    def __init__(self, queue: QueueCore, job_type: str, data: Any = None, **kw: Any) -> None:
        super().__init__(job_type, data, **kw)
        self.queue = queue

    def on(self, event: str, listener: Any) -> Self:
        """Listen to this job's events; before save() they are bound when the id is known."""
        super().on(event, listener)
        if self.id is not None:
            self.queue._listen_to(self)
        return self


def parse_fields(raw: Any) -> dict[str, str]:
    """HGETALL as a flat list (from Lua) or a mapping, to a str dict."""
    if isinstance(raw, Mapping):
        return codec.decode_hash(raw)
    if raw and isinstance(raw[0], bytes):
        raw = [x.decode() for x in raw]
    return dict(zip(raw[::2], raw[1::2], strict=True))


def data_of(fields: Mapping[str, str]) -> Any:
    """The payload of a stored job; raises ValueError with the reason when it is corrupt."""
    try:
        return codec.loads_field(fields, "data")
    except json.JSONDecodeError as exc:
        raise ValueError(f"job data is not valid JSON ({exc})") from None
