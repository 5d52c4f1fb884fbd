"""The Lua scripts: read once from `lua/*.lua`, registered per Redis client, called typed.

Each transition is one script call. A builder per script (`claim(keys, now=..., ...)`) is a
pure function that names every argument and returns a `Call`: the script, its KEYS (every
fixed key of the queue, so Redis Cluster routes and checks them), its ARGV, and how to read
the reply into a named outcome. `Scripts.run` (sync) and `AsyncScripts.run` are the one seam
that does I/O; a transition Redis refused (an outcome for a job the caller no longer owns)
is logged there at WARNING, as BullMQ's scripts.ts turns its error codes into messages.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any, Generic, TypeVar

import hiredis
import redis
import redis.asyncio as aredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ._errors import RedisOutOfMemoryError
from ._keys import Keys

log = logging.getLogger("pykue")
_warned: set[str] = set()

NAMES = (
    "enqueue",
    "claim",
    "complete",
    "fail",
    "progress",
    "promote",
    "renew",
    "reap",
    "remove",
    "set_state",
    "set_priority",
    "repair_tokens",
    "unlock",
    "retry",
    "watchdog",
    "expire_unowned",
    "repeat",  # feata: repeatable jobs (_schedule.py)
    "clean",  # feata: queue.clean
    "set_aside",
)
# Scripts whose reply carries job hashes as stored: registered on a client that does not
# decode, so a byte that is not UTF-8 reaches _codec.claimed_record instead of raising
# inside redis-py (which would lose the reply and the jobs it claimed).
UNDECODED = frozenset({"claim"})


@cache
def source(name: str) -> str:
    lua = resources.files("pykue") / "lua"
    return (lua / "_lib.lua").read_text() + "\n" + (lua / f"{name}.lua").read_text()


T = TypeVar("T")


class Outcome(StrEnum):
    """What a transition did. NOT_OWNED is a refusal: the caller's owner token is no longer
    the job's (its lease was reaped, it was moved by hand or retried by force, a second done())."""

    DONE = "done"
    NOT_OWNED = "not owned"
    NOT_FOUND = "not found"
    PAUSED = "paused"


@dataclass(frozen=True)
class Failed:
    """fail.lua's answer: attempts made, and whether the job is now failed for good."""

    attempts: int
    final: bool


@dataclass(frozen=True)
class Renewed:
    lost: list[int]  # ids the worker no longer owns
    back: list[int]  # ids handed back: held under a claim whose reply never arrived


@dataclass(frozen=True)
class Reaped:
    requeued: int
    failed: int


@dataclass(frozen=True)
class Cleaned:
    next_start: int  # -1: the end of the set was reached
    removed: list[int]


@dataclass(frozen=True)
class Call(Generic[T]):
    """One script call, ready to send: built by a pure function, sent by `run`."""

    script: str
    keys: tuple[str, ...]
    args: tuple[Any, ...]
    read: Callable[[Any], T] = field(compare=False)
    refusal: Callable[[T], str | None] = field(default=lambda _: None, compare=False)


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _ints(raw: Any) -> list[int]:
    return [int(x) for x in raw or []]


def _done_or(missing: Outcome) -> Callable[[Any], Outcome]:
    return lambda raw: Outcome.DONE if int(raw or 0) else missing


def _call(script: str, keys: Keys, args: Sequence[Any], read: Callable[[Any], T],
          refusal: Callable[[T], str | None] | None = None) -> Call[T]:  # fmt: skip
    """ARGV[1] is always the prefix (per-job and per-type keys are derived from it in Lua)."""
    return Call(script, keys.declared, (keys.prefix, *args), read, refusal or (lambda _: None))


# -- one builder per script: keyword names in, a named outcome out ----------------------------
def enqueue(keys: Keys, *, now: int, jobs: Sequence[tuple[str, str, int, int, Sequence[str]]]) -> Call[list[Any]]:
    """jobs: (type, state, priority, promote_at, hash fields) each. The reply: per job its new
    id, or "-<id>" of the unfinished job holding its unique key (_features.saved_ids reads it)."""
    args: list[Any] = [now, len(jobs)]
    for jtype, state, priority, promote_at, fields in jobs:
        args += (jtype, state, priority, promote_at, len(fields), *fields)
    return _call("enqueue", keys, args, lambda raw: list(raw or []))


def claim(keys: Keys, *, now: int, job_type: str, count: int, lease_ms: int, token_base: str, worker_id: str,
          tokens_taken: int) -> Call[Outcome | list[Any]]:  # fmt: skip
    """The reply: PAUSED, or flat (id, token, job hash) triples, read undecoded."""
    args = (now, job_type, count, lease_ms, token_base, worker_id, tokens_taken)
    return _call("claim", keys, args, _claimed)


def _claimed(raw: Any) -> Outcome | list[Any]:
    if isinstance(raw, (bytes, str)) and _text(raw) == "paused":
        return Outcome.PAUSED
    return list(raw or [])


def complete(keys: Keys, *, now: int, jobs: Sequence[tuple[int, str, int, str]]) -> Call[list[Outcome]]:
    """jobs: (id, owner token, duration ms, result JSON or "") each."""
    args: list[Any] = [now, len(jobs)]
    for job in jobs:
        args += job
    ids = [job[0] for job in jobs]

    def refusal(out: list[Outcome]) -> str | None:
        refused = [i for i, o in zip(ids, out, strict=True) if o is Outcome.NOT_OWNED]
        return f"completion of job(s) {refused} refused: no longer owned by this worker" if refused else None

    return _call("complete", keys, args, _dones, refusal)


def _dones(raw: Any) -> list[Outcome]:
    done, refused = Outcome.DONE, Outcome.NOT_OWNED
    return [done if x == 1 else refused for x in raw]


def fail(keys: Keys, *, now: int, job_id: int | str, token: str, error: str, log_line: str, message: str,
         retry_delay_ms: int, mode: str = "") -> Call[Failed | Outcome]:  # fmt: skip
    """token "*" (with mode "ttl"): any pykue owner, only if the TTL ran out."""
    args = (now, job_id, token, error, log_line, message, retry_delay_ms, mode)

    def refusal(out: Failed | Outcome) -> str | None:
        if out is not Outcome.NOT_OWNED or mode == "ttl":  # the TTL checker's miss is no refusal
            return None
        return f"failure of job {job_id} refused: no longer owned by this worker (token {token})"

    return _call("fail", keys, args, _failed, refusal)


def _failed(raw: Any) -> Failed | Outcome:
    if raw is None:
        return Outcome.NOT_OWNED
    n = int(raw)
    return Failed(abs(n), n < 0)


def set_aside(keys: Keys, *, now: int, job_id: int, token: str, reason: str) -> Call[Outcome]:
    def refusal(out: Outcome) -> str | None:
        return f"setting job {job_id} aside refused: no longer owned" if out is Outcome.NOT_OWNED else None

    return _call("set_aside", keys, (now, job_id, token, reason), _done_or(Outcome.NOT_OWNED), refusal)


def progress(keys: Keys, *, now: int, job_id: int | str, percent: int, data_json: str) -> Call[Outcome]:
    return _call("progress", keys, (now, job_id, percent, data_json), _done_or(Outcome.NOT_FOUND))


def promote(keys: Keys, *, now: int, limit: int) -> Call[int]:
    return _call("promote", keys, (now, limit), lambda raw: int(raw or 0))


def renew(keys: Keys, *, now: int, lease_ms: int, worker: str, floor: int, mode: str,
          held: Sequence[tuple[int, str]] = ()) -> Call[Renewed]:  # fmt: skip
    """mode "renew" or "release"; held: (id, token) of the jobs the worker knows it holds."""
    args: list[Any] = [now, lease_ms, worker, floor, mode]
    for job_id, token in held:
        args += (job_id, token)
    return _call("renew", keys, args, lambda raw: Renewed(_ints(raw[0]), _ints(raw[1])))


def reap(keys: Keys, *, now: int, max_stalled: int, limit: int) -> Call[Reaped]:
    return _call("reap", keys, (now, max_stalled, limit), lambda raw: Reaped(int(raw[0]), int(raw[1])))


def remove(keys: Keys, *, job_id: int | str, now: int) -> Call[Outcome]:
    return _call("remove", keys, (job_id, now), _done_or(Outcome.NOT_FOUND))


def set_state(keys: Keys, *, now: int, job_id: int | str, state: str, bare: bool = False) -> Call[Outcome]:
    """bare: Kue's job.state(s) as kue.app's PUT uses it (progress and failed_at untouched)."""
    return _call("set_state", keys, (now, job_id, state, "state" if bare else ""), _done_or(Outcome.NOT_FOUND))


def set_priority(keys: Keys, *, now: int, job_id: int | str, priority: int | str) -> Call[Outcome]:
    return _call("set_priority", keys, (now, job_id, priority), _done_or(Outcome.NOT_FOUND))


def repair_tokens(keys: Keys, *, job_types: Sequence[str]) -> Call[int]:
    return _call("repair_tokens", keys, tuple(job_types), lambda raw: int(raw or 0))


def unlock(keys: Keys, *, lock: str, token: str) -> Call[bool]:
    """The lock is KEYS[1] (Kue's are unprefixed, so the queue's keys are not declared here)."""
    return Call("unlock", (lock,), (token,), lambda raw: bool(raw))


def retry(keys: Keys, *, now: int, job_id: int | str, force: bool) -> Call[Outcome | str]:
    """DONE, NOT_FOUND, or the state of a job that may not be retried without force."""
    return _call("retry", keys, (now, job_id, "1" if force else "0"), _retried)


def _retried(raw: Any) -> Outcome | str:
    if raw == 1:
        return Outcome.DONE
    return Outcome.NOT_FOUND if raw == 0 else _text(raw)


def watchdog(keys: Keys, *, now: int, stuck_after_ms: int, max_stalled: int, batch: int,
             orphan_after_ms: int) -> Call[list[int]]:  # fmt: skip
    """{owners dropped, marks dropped, requeued, failed, reindexed, strays dropped}."""
    return _call("watchdog", keys, (now, stuck_after_ms, max_stalled, batch, orphan_after_ms), _ints)


def expire_unowned(keys: Keys, *, now: int, grace_ms: int, jobs: Sequence[tuple[int, int]]) -> Call[list[int]]:
    """jobs: (id, retry delay ms) each; per job 0 skipped, 1 announced, 2 failed."""
    args: list[Any] = [now, grace_ms]
    for job in jobs:
        args += job
    return _call("expire_unowned", keys, args, _ints)


def repeat(keys: Keys, *, now: int, schedule: str, expected: int, next_run: int, job_type: str, priority: int,
           fields: Sequence[str]) -> Call[int]:  # fmt: skip
    """The new job's id, or 0 when the tick was already fired or the schedule removed."""
    args = (now, schedule, expected, next_run, job_type, priority, len(fields), *fields)
    return _call("repeat", keys, args, lambda raw: int(raw or 0))


def clean(keys: Keys, *, state: str, cutoff: int, start: int, scan: int, limit: int) -> Call[Cleaned]:
    return _call("clean", keys, (state, cutoff, start, scan, limit), lambda raw: Cleaned(int(raw[0]), _ints(raw[1:])))


# -- the seam ---------------------------------------------------------------------------------
class _Registry:
    def __init__(self, client: Any, raw_client: Any = None) -> None:
        raw = raw_client or client
        self._s = {name: (raw if name in UNDECODED else client).register_script(source(name)) for name in NAMES}


def _oom(exc: ResponseError) -> RedisOutOfMemoryError | None:
    """A script's write refused by a full Redis arrives as Lua error text; name it."""
    text = str(exc)
    if "OOM command not allowed" not in text and not text.startswith("command not allowed when used memory"):
        return None
    return RedisOutOfMemoryError(
        "Redis is out of memory (maxmemory reached, policy noeviction) and refused the write; "
        f"free memory or raise maxmemory. Redis said: {text}"
    )


def _outcome(call: Call[T], raw: Any) -> T:
    out = call.read(raw)
    refused = call.refusal(out)
    if refused:
        log.warning("pykue: %s", refused)
    return out


def _direct(client: Any) -> bool:
    """A plain pooled client: its script calls can skip redis-py's per-command layers (a
    cluster client routes, a pipeline queues, a single-connection client locks: those go
    through redis-py's own Script call)."""
    return type(client) in (redis.Redis, aredis.Redis) and client.connection is None


def _packed(conn: Any, sha: str, call: Call[Any]) -> bytes:
    """EVALSHA as RESP, in one pass, by hiredis (C): redis-py's pack_command costs about 1 µs
    per argument (redis.asyncio's is pure Python), and a batch completion carries four per job.
    Arguments are encoded as redis-py's Encoder does (str by the client's encoding, int and
    float by repr); other types go through that Encoder, which refuses what it refuses."""
    enc = conn.encoder
    args: list[Any] = [b"EVALSHA", sha, len(call.keys), *call.keys]
    for arg in call.args:
        kind = type(arg)
        if kind is float:
            arg = repr(arg)
        elif kind is not str and kind is not int and kind is not bytes:
            arg = enc.encode(arg)
        args.append(arg)
    if enc.encoding != "utf-8" or enc.encoding_errors != "strict":
        args = [a.encode(enc.encoding, enc.encoding_errors) if type(a) is str else a for a in args]
    return bytes(hiredis.pack_command(tuple(args)))


def _loaded_sha(sha: Any) -> str:
    return sha.decode() if isinstance(sha, bytes) else str(sha)


def _raise_oom(exc: ResponseError) -> None:
    oom = _oom(exc)
    if oom is not None:
        raise oom from exc


class Scripts(_Registry):
    """Sync: `scripts.run(claim(keys, now=..., ...))`."""

    def run(self, call: Call[T], client: Any = None, lane: Lane | None = None) -> T:
        """`lane` is for the asyncio twin: a sync call takes a pooled connection each (redis-py's
        sync hand-out is cheap; keeping one measured no better)."""
        script = self._s[call.script]
        target = script.registered_client if client is None else client
        try:
            if _direct(target):
                raw = self._evalsha(target, script, call)
            else:
                raw = script(keys=list(call.keys), args=list(call.args), client=client)
        except ResponseError as exc:
            _raise_oom(exc)
            raise
        return _outcome(call, raw)

    @staticmethod
    def _evalsha(client: Any, script: Any, call: Call[Any]) -> Any:
        """One EVALSHA on a pooled connection, with redis-py's retry policy for a dropped
        connection (as its execute_command has)."""
        pool = client.connection_pool
        conn = pool.get_connection()
        try:
            return conn.retry.call_with_retry(lambda: _send_sync(conn, script, call), lambda _: conn.disconnect())
        finally:
            pool.release(conn)

    def send(self, call: Call[Any], pipeline: Any) -> None:
        """Queue the call in a pipeline or transaction; read its reply with `call.read`."""
        self._s[call.script](keys=list(call.keys), args=list(call.args), client=pipeline)


def _send_sync(conn: Any, script: Any, call: Call[Any]) -> Any:
    """A Redis that restarted or ran SCRIPT FLUSH answers NOSCRIPT: load the script and
    send the call again (the script ran not at all, so sending it again is safe)."""
    conn.send_packed_command([_packed(conn, script.sha, call)])
    try:
        return conn.read_response()
    except NoScriptError:
        conn.send_command("SCRIPT", "LOAD", script.script)
        script.sha = _loaded_sha(conn.read_response())
        conn.send_packed_command([_packed(conn, script.sha, call)])
        return conn.read_response()


class AsyncScripts(_Registry):
    async def run(self, call: Call[T], client: Any = None, lane: Lane | None = None) -> T:
        """`lane`: a connection held for one caller's calls, one at a time (see Lane)."""
        script = self._s[call.script]
        target = script.registered_client if client is None else client
        try:
            if not _direct(target):
                raw = await script(keys=list(call.keys), args=list(call.args), client=client)
            elif lane is not None and not lane.busy:
                raw = await lane.evalsha(target, script, call)
            else:
                raw = await self._evalsha(target, script, call)
        except ResponseError as exc:
            _raise_oom(exc)
            raise
        return _outcome(call, raw)

    @staticmethod
    async def _evalsha(client: Any, script: Any, call: Call[Any]) -> Any:
        pool = client.connection_pool
        conn = await pool.get_connection()
        try:
            return await _on(conn, script, call)
        finally:
            await pool.release(conn)


def _on(conn: Any, script: Any, call: Call[Any]) -> Awaitable[Any]:
    """With redis-py's retry policy for a dropped connection, as its execute_command has."""
    return conn.retry.call_with_retry(lambda: _send_async(conn, script, call), lambda _: conn.disconnect())  # type: ignore[no-any-return]


def _roomy(pool: Any) -> bool:
    """Less than half the pool in use: a lane may keep one (many engines in one process, each
    with its lanes, must not leave a checkout waiting on a full pool)."""
    size = getattr(pool, "max_connections", 0) or 0
    return len(getattr(pool, "_in_use_connections", ())) < size // 2


class Lane:
    """A pooled connection kept by one caller whose script calls come one after another (the
    engine's claims, its completions, a queue's saves): a checkout and a return per call
    cost about as much as the call's own round trip. A call made while another is on the
    lane takes a pooled connection instead: replies never cross. The kept connection is
    checked before each use as the pool checks one it hands out, and anything but an error
    reply (a dropped connection, a cancellation half-way) disconnects and drops it, so no
    reply is left unread for the next call."""

    def __init__(self) -> None:
        self.busy = False
        self._held: dict[int, tuple[Any, Any]] = {}  # id(pool) -> (pool, connection)

    async def evalsha(self, client: Any, script: Any, call: Call[Any]) -> Any:
        self.busy = True
        try:
            pool = client.connection_pool
            held = self._held.get(id(pool))
            if held is None and not _roomy(pool):  # a pool near its size is not kept from others
                return await AsyncScripts._evalsha(client, script, call)
            if held is None:
                held = self._held[id(pool)] = (pool, await pool.get_connection())
            else:
                await _ready(held[1])
            try:
                return await _on(held[1], script, call)
            except ResponseError:
                raise  # its reply was read whole: the connection is fine
            except BaseException:
                del self._held[id(pool)]
                await held[1].disconnect(nowait=True)
                await pool.release(held[1])
                raise
        finally:
            self.busy = False

    async def close(self) -> None:
        """Give the connections back to their pools; one still in a call (its owner was
        cancelled) stays out, closed with its client, so no later caller reads its reply."""
        if self.busy:
            return
        held, self._held = self._held, {}
        for pool, conn in held.values():
            await pool.release(conn)


async def _ready(conn: Any) -> None:
    """What the pool checks when it hands a connection out: connected, and nothing to read
    (a reply left over, or the server's close), else connected again. Not the pool's own
    ensure_connection: redis-py 8 skips that check while maintenance notifications are on
    (their default, "auto"), and a kept connection the server closed then fails the call."""
    await conn.connect()
    try:
        if await conn.can_read():
            raise RedisConnectionError("Connection has data")
    except (RedisConnectionError, RedisTimeoutError, OSError):
        await conn.disconnect()
        await conn.connect()
        if await conn.can_read():
            raise RedisConnectionError("Connection not ready") from None


# Commands up to this size are written on the connection directly (a save is ~1 kB); bigger
# ones (save_many's batches) go through send_packed_command and its write timeout.
DIRECT_BYTES = 16 * 1024


async def _write(conn: Any, packed: bytes) -> None:
    """redis.asyncio's send wraps every write in asyncio.wait_for (a task per write, for the
    write timeout): more CPU than a small script call's own work. A small command fits the
    transport's buffer, so it is written directly."""
    writer = getattr(conn, "_writer", None)
    if writer is None or not conn.is_connected or conn.health_check_interval or len(packed) > DIRECT_BYTES:
        await conn.send_packed_command([packed])
        return
    try:
        writer.write(packed)
        await writer.drain()
    except OSError as exc:
        await conn.disconnect(nowait=True)
        raise RedisConnectionError(f"Error while writing to socket: {exc}") from exc


async def _send_async(conn: Any, script: Any, call: Call[Any]) -> Any:
    await _write(conn, _packed(conn, script.sha, call))
    try:
        return await conn.read_response()
    except NoScriptError:
        await conn.send_command("SCRIPT", "LOAD", script.script)
        script.sha = _loaded_sha(await conn.read_response())
        await _write(conn, _packed(conn, script.sha, call))
        return await conn.read_response()


@contextlib.contextmanager
def best_effort(what: str, job_id: Any) -> Iterator[None]:
    """job.log() and job.progress() are reports, not transitions: a full or unreachable
    Redis must neither fail nor stall the handler, so the write is dropped with a warning
    (once per process and kind; later ones at debug level)."""
    try:
        yield
    except (RedisError, OSError) as exc:
        level = logging.DEBUG if what in _warned else logging.WARNING
        _warned.add(what)
        log.log(level, "pykue: job %s: %s not recorded (%s); the handler goes on", job_id, what, exc)
