"""JSON as JavaScript writes it, job options validated, job hashes built and read.

Everything here is pure: no I/O, shared by the sync and asyncio front-ends.
"""

from __future__ import annotations

import concurrent.futures
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ._errors import InvalidJobError

PRIORITIES: dict[str, int] = {"low": 10, "normal": 0, "medium": -5, "high": -10, "critical": -15}
MAX_TYPE_LENGTH = 256
# Node Kue reads every number as a double: beyond 2**53 - 1 integers lose digits, and Lua
# (which also uses doubles) writes 1e17 as "1e+17", which no reader parses back as an integer.
MAX_SAFE_INTEGER = 2**53 - 1
# Deeper payloads are refused: Python's json would raise RecursionError on them.
MAX_DEPTH = 200

Backoff = bool | Mapping[str, Any] | Callable[[int, int], float]


def now_ms() -> int:
    return int(time.time() * 1000)


def _jsify(value: Any, path: str) -> Any:
    """Integral floats become ints (JS prints 1.0 as 1); NaN and infinities are refused."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidJobError(f"{path} is {value!r}, which JSON cannot carry")
        return int(value) if value.is_integer() and abs(value) < 1e21 else value
    if isinstance(value, dict):
        return {k: _jsify(v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsify(v, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


# Values json writes as they are: a payload made of these alone needs no walk below them.
_LEAVES = frozenset({str, int, bool, type(None)})


def _has_float(value: Any, path: str, depth: int = 0) -> bool:
    """Also the depth check: it walks the whole value once before json does. Leaves are
    skipped by exact type (no call per leaf): this runs on every job saved."""
    if depth > MAX_DEPTH:
        raise InvalidJobError(f"{path} is nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        children: Any = value.values()
    elif isinstance(value, (list, tuple)):
        children = value
    else:
        return False
    found = False
    for child in children:
        if type(child) not in _LEAVES and _has_float(child, path, depth + 1):
            found = True  # the rest is still walked: the depth check needs all of it
    return found


def js_dumps(value: Any, what: str = "value") -> str:
    """JSON.stringify's output: compact, non-ASCII kept, integral floats as integers."""
    if _has_float(value, what):
        value = _jsify(value, what)
    try:
        out = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidJobError(f"{what} is not JSON-serialisable: {exc}") from None
    except RecursionError:  # a self-referencing value, or keys json walks that we do not
        raise InvalidJobError(f"{what} is nested too deeply to serialise") from None
    check_text(out, what)
    return out


def check_text(text: str, what: str) -> str:
    """Redis stores bytes: a string with a lone surrogate has no UTF-8 form."""
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError as exc:
            raise InvalidJobError(f"{what} contains {text[exc.start]!r} at {exc.start}, a lone surrogate") from None
    return text


def check_number(value: Any, name: str) -> int | float:
    """A number Node Kue can read back exactly: finite, integers within its safe range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidJobError(f"{name} must be a number; got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidJobError(f"{name} must be finite; got {value!r}")
    if abs(value) > MAX_SAFE_INTEGER:
        shown = repr(value) if len(repr(value)) < 40 else f"{repr(value)[:20]}... ({len(repr(value))} digits)"
        raise InvalidJobError(f"{name} must be within +-{MAX_SAFE_INTEGER} (JavaScript's safe integers); got {shown}")
    return value


def parse_priority(level: int | str) -> int:
    number: Any = level
    if isinstance(level, str):
        if level in PRIORITIES:
            return PRIORITIES[level]
        try:
            number = int(level)
        except ValueError:
            number = None
    if isinstance(number, int) and not isinstance(number, bool):
        return int(check_number(number, "priority"))
    names = ", ".join(PRIORITIES)
    raise InvalidJobError(f"priority must be an integer or one of {names}; got {level!r}")


# Types already found good: a producer saves many jobs of few types (bounded, so a stream of
# distinct types cannot grow it without end).
_GOOD_TYPES: set[str] = set()


def check_type(job_type: Any) -> str:
    if type(job_type) is str and job_type in _GOOD_TYPES:
        return job_type
    if not isinstance(job_type, str) or not job_type.strip():
        raise InvalidJobError(f"job type must be a non-empty string; got {job_type!r}")
    if len(job_type) > MAX_TYPE_LENGTH or any(ord(c) < 32 for c in job_type):
        raise InvalidJobError(f"job type {job_type!r} is too long or has control characters")
    checked = check_text(job_type, "job type")
    if type(job_type) is str and len(_GOOD_TYPES) < 1024:
        _GOOD_TYPES.add(job_type)
    return checked


def _positive_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidJobError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(check_number(value, name))


def check_attempts(n: Any) -> int:
    return _positive_int(n, "attempts", 1)


def check_ttl(ms: Any) -> int:
    return _positive_int(ms, "ttl", 1)


def check_delay(delay: Any) -> int:
    """Milliseconds from now; a datetime is the time to run at, a timedelta a duration."""
    if isinstance(delay, datetime):
        when = delay if delay.tzinfo else delay.replace(tzinfo=UTC)
        return max(0, int(when.timestamp() * 1000) - now_ms())
    if isinstance(delay, timedelta):
        delay = int(delay.total_seconds() * 1000)
    return _positive_int(delay, "delay", 0)


# Callables given as backoff live only in this process, under their qualified name.
_BACKOFF_FUNCTIONS: dict[str, Callable[[int, int], float]] = {}


def register_backoff(fn: Callable[[int, int], float]) -> str:
    """Make `fn(attempts, delay) -> ms` usable as a job's backoff in this process."""
    name = f"{fn.__module__}:{fn.__qualname__}"
    _BACKOFF_FUNCTIONS[name] = fn
    return name


def check_backoff(backoff: Any) -> str:
    """The `backoff` hash value. Never code: Node Kue evaluates this field."""
    if backoff is True:
        return "true"
    if callable(backoff):
        name = register_backoff(backoff)
        # Node Kue sees a plain fixed backoff; pykue workers look the name up.
        return js_dumps({"type": "fixed", "delay": 0, "pykue": name})
    if isinstance(backoff, Mapping):
        kind = backoff.get("type")
        if kind not in ("fixed", "exponential"):
            raise InvalidJobError(f"backoff type must be 'fixed' or 'exponential'; got {kind!r}")
        extra = set(backoff) - {"type", "delay", "maxDelay"}
        if extra:
            raise InvalidJobError(f"unknown backoff option(s): {', '.join(sorted(extra))}")
        for opt in ("delay", "maxDelay"):
            if opt in backoff:
                _positive_int(backoff[opt], f"backoff {opt}", 0)
        return js_dumps(dict(backoff))
    raise InvalidJobError(f"backoff must be True, a dict or a callable; got {backoff!r}")


def backoff_delay(backoff: str | None, attempts: int, job_delay: int) -> tuple[int, str | None]:
    """Kue's reattempt delay for a stored backoff: (ms, or -1 for no backoff; a warning).

    Kue's rules: true -> the job's delay; fixed -> delay; exponential ->
    round(min(maxDelay - delay/2, delay/2 * (2^attempts - 1))).
    """
    if not backoff:
        return -1, None
    if backoff == "true":
        return max(0, job_delay), None
    try:
        spec = json.loads(backoff)
    except ValueError:
        spec = None
    if not isinstance(spec, dict):
        return max(0, job_delay), (
            "backoff is JavaScript source, which pykue never evaluates; "
            f"retrying after the job's delay ({max(0, job_delay)} ms)"
        )
    delay = _ms(spec.get("delay")) or job_delay or 0
    name = spec.get("pykue")
    if isinstance(name, str):
        fn = _BACKOFF_FUNCTIONS.get(name)
        if fn is not None:
            try:
                return _ms(fn(attempts, job_delay)), None
            except Exception as exc:  # the job must still be failed: a fixed delay instead
                return delay, f"backoff function {name} raised {exc!r}; fixed delay"
        return delay, f"backoff function {name} is not registered here; fixed delay"
    if spec.get("type") == "exponential":
        max_delay = _ms(spec.get("maxDelay")) or MAX_SAFE_INTEGER
        return _ms(min(max_delay - delay * 0.5, delay * 0.5 * (2.0 ** min(attempts, 64) - 1))), None
    return delay, None


def _ms(value: Any) -> int:
    """A stored or computed delay as a usable one: never raises, whatever Redis held
    (a record Node Kue or a hand wrote may carry strings, 1e400 or NaN)."""
    try:
        ms = float(value or 0)
    except (TypeError, ValueError, OverflowError):
        return 0
    if math.isnan(ms) or ms <= 0:
        return 0
    return MAX_SAFE_INTEGER if ms >= MAX_SAFE_INTEGER else math.floor(ms + 0.5)  # JS Math.round


@dataclass
class JobOptions:
    """What a producer sets on a job before save(); validated as it is set."""

    priority: int = 0
    attempts: int = 1
    backoff: str | None = None
    delay: int = 0
    ttl: int | None = None
    remove_on_complete: bool = False
    keep: dict[str, str] | None = None  # state -> "<age>,<count>" (remove_on_complete/fail; _retention.py)


def new_job_fields(job_type: str, data_json: str, opts: JobOptions, now: int) -> list[str]:
    """The hash of a new job, as Kue's save() writes it (flat field/value list, built flat:
    this runs once per job saved)."""
    stamp = str(now)
    fields = ["max_attempts", str(opts.attempts), "type", job_type, "created_at", stamp,
              "promote_at", str(now + opts.delay), "updated_at", stamp, "priority", str(opts.priority),
              "data", data_json, "state", "delayed" if opts.delay > 0 else "inactive"]  # fmt: skip
    if opts.delay:
        fields += ("delay", str(opts.delay))
    if opts.ttl:
        fields += ("ttl", str(opts.ttl))
    if opts.backoff:
        fields += ("backoff", opts.backoff)
    if opts.remove_on_complete:
        fields += ("removeOnComplete", "true")
    for state, policy in (opts.keep or {}).items():
        fields += (f"pykue_keep_{state}", policy)
    return fields


def pct(completed: float, total: float) -> int:
    """Kue's progress: min(100, completed * 100 / total | 0)."""
    check_number(completed, "progress completed")
    check_number(total, "progress total")
    if total == 0:
        return 100 if completed else 0
    return min(100, int(completed * 100 / total))


# Options for a read whose reply redis-py must not decode (redis.client.NEVER_DECODE): a job
# hash may hold bytes that are not UTF-8, and a strict decode would make the job unreadable.
UNDECODED: dict[str, Any] = {"NEVER_DECODE": True}


def text(value: Any) -> Any:
    """Bytes as text for display: what is not UTF-8 becomes U+FFFD, as Node Kue shows it."""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def decode_hash(raw: Mapping[Any, Any]) -> dict[str, str]:
    """A job hash read undecoded, as text: bytes that are not UTF-8 become U+FFFD, as
    Node Kue shows them, so a bad record can still be listed, shown and removed."""
    return {text(k): text(v) for k, v in raw.items()}


def shown(raw: bytes, at: int = 0) -> str:
    """Up to 40 bytes of a stored value from `at` on, quoted, as ASCII (for error messages)."""
    part = raw[at : at + 40]
    text = "".join(chr(c) if 32 <= c < 127 and c != 39 else f"\\x{c:02x}" for c in part)
    return ("'..." if at else "'") + text + ("...'" if len(raw) > at + 40 else "'")


def _as_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode(errors="surrogateescape")


def claimed_record(raw: Sequence[bytes | str]) -> tuple[dict[str, str], str | None]:
    """A claimed job's hash (HGETALL as a flat list, undecoded) as text, or the reason it
    cannot be read: ({fields}, None) or ({}, "field 'data' is not UTF-8 at byte 9: ...").

    Strict, like every redis-py read: a record no reader can decode is set aside by the
    worker, never run, and never allowed to kill the claim loop."""
    try:  # the common case in one pass (a worker reads every claimed hash here)
        flat = iter(list(map(bytes.decode, raw)))  # type: ignore[arg-type]
    except (UnicodeDecodeError, TypeError):  # not UTF-8 (the reason is found below), or text given
        return _record_or_reason(raw)
    return dict(zip(flat, flat, strict=True)), None


def _record_or_reason(raw: Sequence[bytes | str]) -> tuple[dict[str, str], str | None]:
    fields: dict[str, str] = {}
    for name, value in zip(raw[::2], raw[1::2], strict=True):
        try:
            key = name.decode() if isinstance(name, bytes) else name
        except UnicodeDecodeError:
            return {}, f"a field name {shown(_as_bytes(name))} is not UTF-8"
        try:
            fields[key] = value.decode() if isinstance(value, bytes) else value
        except UnicodeDecodeError as exc:
            at = max(0, exc.start - 10)
            return {}, f"field {key!r} is not UTF-8 at byte {exc.start}: {shown(_as_bytes(value), at)}"
    return fields, None


def int_field(fields: Mapping[str, str], name: str, default: int = 0) -> int:
    """An integer field of a stored job, or `default` when it is missing or corrupt: a record
    read from Redis may have been written by anyone, and reading it must not raise."""
    raw = fields.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        number = float(raw)  # Lua writes 1e17 as "1e+17"
    except ValueError:
        return default
    return int(number) if math.isfinite(number) else default


def id_of_member(member: str | bytes) -> int | None:
    """The job id of a zset member ("02|12"), or None for a member that is not one."""
    text = member.decode(errors="replace") if isinstance(member, bytes) else member
    digits = text.partition("|")[2]
    return int(digits) if digits.isascii() and digits.isdigit() and len(digits) < 17 else None


def loads_field(fields: Mapping[str, str], name: str) -> Any:
    """A JSON field of a job hash, or None; raises ValueError on corrupt JSON."""
    raw = fields.get(name)
    if raw is None or raw == "":
        return None
    try:
        return json.loads(raw)
    except RecursionError:
        raise ValueError(f"{name} is nested too deeply to read") from None


class Failure(Exception):
    """A failure given to Kue-style done() as a string: stored as the plain message."""


def error_text(exc: BaseException) -> tuple[str, str, str]:
    """(stored error with traceback, log line, message) for a handler's exception."""
    import traceback

    if isinstance(exc, Failure):
        return str(exc), str(exc), str(exc)
    message = str(exc) or type(exc).__name__
    head = f"{type(exc).__name__}: {message}" if str(exc) else type(exc).__name__
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(_PLUMBING)]
    tb = "".join(traceback.format_list(frames))
    return (head + ("\n" + tb.rstrip() if tb else ""), head.split("\n")[0], message)


# Frames of pykue itself and of the thread pool say nothing about a handler's failure.
_PLUMBING = (os.path.dirname(__file__), os.path.dirname(concurrent.futures.__file__))
