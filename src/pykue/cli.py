"""`pykue`: the command line, thin over library calls.

Every command takes --redis URL (default $REDIS_URL, else 127.0.0.1:6379) and --prefix.
A user mistake (a bad option included) is one line on stderr and exit code 2, never a
traceback. SIGTERM and Ctrl-C stop every long-running command cleanly (exit 0): workers
finish or fail their jobs, servers close and remove their private Redis. Servers announce
one ready line with their URL only once their socket is bound and the app has started.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import click
import redis

import pykue
from pykue import cli_features
from pykue._handlers import handler_table
from pykue._joblog import configure as configure_logging
from pykue._keys import STATES
from pykue._watchdog import parse_duration_ms
from pykue.connection import redis_url as default_redis_url

redis_opt = click.option("--redis", "redis_url", default=None, envvar="REDIS_URL", help="Redis URL.")
prefix_opt = click.option("--prefix", default="q", show_default=True, help="Key prefix (Kue's default is q).")


USER_ERRORS = (pykue.PykueError, ValueError, TypeError, redis.RedisError, OSError)


def user_error(message: object) -> None:
    """The one line a user sees for a mistake; exit code 2."""
    click.echo(f"pykue: error: {' '.join(str(message).split())}", err=True)
    sys.exit(2)


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Kept for commands' decorator lists; the group catches the same errors too."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kw: Any) -> Any:
        try:
            return fn(*args, **kw)
        except USER_ERRORS as exc:
            user_error(exc)

    return wrapper


def _stop_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C does, so every `finally` (servers, private dirs) runs."""
    raise SystemExit(0)


class PykueGroup(click.Group):
    """Click's usage errors become one line and exit 2, like every other user mistake."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, **extra: Any) -> Any:  # type: ignore[override]
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _stop_on_sigterm)
        extra["standalone_mode"] = False
        try:
            code = super().main(args, prog_name, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.format_message(), err=True)  # `pykue` alone: the help, as click does
            sys.exit(2)
        except click.ClickException as exc:
            ctx = exc.ctx if isinstance(exc, click.UsageError) else None
            user_error(exc.format_message() + (f" (see {ctx.command_path} --help)" if ctx else ""))
        except (click.Abort, KeyboardInterrupt):
            sys.exit(0)
        except USER_ERRORS as exc:
            user_error(exc)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=PykueGroup)
@click.version_option(pykue.__version__)
def main() -> None:
    """pykue: a Kue-compatible Redis job queue."""


@main.command()
@click.option("--redis", "redis_url", default=None, help="Use this Redis instead of the embedded one.")
@click.option("--prefix", default="q", show_default=True)
@friendly
def demo(redis_url: str | None, prefix: str) -> None:
    """Run the seed's notification pipeline (creator + processor, concurrency 2)."""
    from pykue.apps.demo import run

    if redis_url:
        require_redis(redis_url)
    sys.exit(run(redis_url, prefix))


def require_redis(url: str) -> None:
    """Refuse to start against a Redis that is not there: one line, not a stream of retries."""
    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise pykue.ServerError(f"cannot reach Redis at {url}: {exc}") from None
    finally:
        client.close()


@main.command("redis")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port (default: a free one).")
@click.option("--dir", "data_dir", type=click.Path(file_okay=False, exists=True), default=None,
              help="Keep the data set here: loaded at start, saved at exit (default: kept nowhere).")  # fmt: skip
@click.option("--dbfilename", default="dump.rdb", show_default=True, help="The data set's file name in --dir.")
@click.option("--no-save", is_flag=True, help="With --dir: load the data set but never write it back.")
@friendly
def redis_cmd(port: int | None, data_dir: str | None, dbfilename: str, no_save: bool) -> None:
    """Run the embedded Redis server in the foreground until Ctrl-C or SIGTERM."""
    keep = data_dir is not None and not no_save
    srv = pykue.EmbeddedRedis(port=port, data_dir=data_dir, dbfilename=dbfilename, persist=keep)
    try:
        srv.start()
        where = f" (data: {srv.data_dir}/{dbfilename})" if data_dir else " (keeps no data)"
        click.echo(f"redis-server ({srv.binary}) listening: {srv.url}{where}")
        threading.Event().wait()
    finally:
        srv.stop(save=keep)
        srv.close()


def _load_handler(spec: str) -> Callable[..., Any]:
    fn = _load_object(spec, "MODULE:FUNCTION")
    if not callable(fn):
        raise ValueError(f"{spec} is not a callable")
    return fn  # type: ignore[no-any-return]


def _load_object(spec: str, shape: str) -> Any:
    """MODULE:NAME's object (None if the module has no NAME), imported as `python -m` would."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"handler must look like {shape}; got {spec!r}")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # handlers live beside the user, as with `python -m`
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the user's module: whatever it raised, say it in one line
        raise ValueError(f"cannot import {module_name!r} for {spec}: {type(exc).__name__}: {exc}") from None
    return getattr(module, attr, None)


DUE_SOON_MS = 60_000


class BurstEnd:
    """`--burst`'s stop condition: nothing of the types is inactive, active, or delayed and
    due within DUE_SOON_MS (a retry waiting out its backoff counts), or the timeout passed."""

    def __init__(self, queue: pykue.Queue, job_types: list[str], timeout: float | None) -> None:
        self.queue, self.job_types = queue, job_types
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.timed_out = False

    def __call__(self) -> bool:
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.timed_out = True
            return True
        return all(self._idle(t) for t in self.job_types)

    def _idle(self, job_type: str) -> bool:
        """Each answer comes from one MULTI snapshot, so no job slips between two sets unseen."""
        keys = self.queue.keys
        horizon = time.time() * 1000 + DUE_SOON_MS
        with self.queue.client.pipeline(transaction=True) as p:
            p.zcard(keys.state("inactive", job_type))
            p.zcard(keys.state("active", job_type))
            p.zcount(keys.state("delayed"), "-inf", horizon)  # due soon, of any type: usually none
            inactive, active, due_any = p.execute()
        if inactive or active or not due_any:
            return not (inactive or active)
        with self.queue.client.pipeline(transaction=True) as p:  # some job is due soon: is it one of ours?
            p.zcard(keys.state("inactive", job_type))
            p.zcard(keys.state("active", job_type))
            p.zrange(keys.state("delayed", job_type), 0, -1)
            inactive, active, delayed = p.execute()
        return inactive == 0 and active == 0 and not self._due_soon(delayed, horizon)

    def _due_soon(self, members: list[str], horizon: float) -> bool:
        if not members:
            return False
        with self.queue.client.pipeline(transaction=False) as p:
            for member in members:
                p.zscore(self.queue.keys.state("delayed"), member)
            due = p.execute()
        return any(at is None or at <= horizon for at in due)  # None: promoted since the snapshot


@main.command()
@click.argument("handler", required=False)
@click.option("--type", "job_types", multiple=True, help="Job type HANDLER processes (repeat for several).")
@click.option("--handlers", "table", help="MODULE:NAME of a dict job type -> handler or (concurrency, handler).")
@click.option("--concurrency", "-c", type=click.IntRange(min=1), default=1, show_default=True,
              help="Jobs run at once per type (the default for --handlers entries without one).")  # fmt: skip
@click.option("--burst", is_flag=True, help="Exit once no job of the types is inactive, active or due within a minute.")
@click.option("--burst-timeout", type=click.FloatRange(min=0), default=None,
              help="With --burst: give up after this many seconds (exit 1) even if jobs are left.")  # fmt: skip
@click.option("--stuck-after", help="Watchdog: re-queue active jobs no pykue worker owns, idle this long (30s, 5m).")
@click.option("--processes", "-p", type=click.IntRange(min=1), default=None,
              help="Supervised worker processes (default: one per core).")  # fmt: skip
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
              default="info", show_default=True, help="pykue's log level (job outcomes are info).")  # fmt: skip
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="One line per record, as text or as a JSON object.")  # fmt: skip
@redis_opt
@prefix_opt
@friendly
def worker(
    handler: str | None,
    job_types: tuple[str, ...],
    table: str | None,
    concurrency: int,
    burst: bool,
    burst_timeout: float | None,
    stuck_after: str | None,
    processes: int | None,
    log_level: str,
    log_format: str,
    redis_url: str | None,
    prefix: str,
) -> None:
    """Process jobs: HANDLER (module:function) for each --type, and/or a --handlers table;
    one line per job outcome on stderr; graceful on SIGTERM/Ctrl-C."""
    if burst_timeout is not None and not burst:
        raise ValueError("--burst-timeout only applies with --burst")
    # the supervisor's own records: warnings and errors (restarts), in the format asked for
    configure_logging("debug" if log_level == "debug" else "warning", log_format)
    after = parse_duration_ms(stuck_after) if stuck_after else 0
    _worker_plan(handler, job_types, table, concurrency)  # mistakes are exit 2 here, not a crash loop in the children
    require_redis(default_redis_url(redis_url))
    spec = (handler, job_types, table, concurrency)
    args = (spec, burst, burst_timeout, after, redis_url, prefix, (log_level, log_format))
    sys.exit(pykue.run_workers(_work, processes, args=args, restart=not burst))


def _work(spec: tuple[str | None, tuple[str, ...], str | None, int], burst: bool, burst_timeout: float | None,
          after: int, redis_url: str | None, prefix: str, logs: tuple[str, str]) -> None:  # fmt: skip
    """One worker process (run by the supervisor); a SIGTERM that comes during start-up still stops it gracefully."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    configure_logging(*logs)  # a spawned child starts with logging as Python leaves it
    settings = pykue.Settings(stuck_after_ms=after, orphan_after_ms=after) if after else None
    plan = _worker_plan(*spec)
    concurrency = spec[3]
    queue = pykue.create_queue(redis_url, prefix=prefix, settings=settings)
    queue.process_many(plan, concurrency)
    described = ", ".join(f"{t} x{n[0] if isinstance(n, tuple) else concurrency}" for t, n in plan.items())
    click.echo(f"pykue worker: {described} on {queue.url} (pid {os.getpid()})", err=True)
    until = BurstEnd(queue, list(plan), burst_timeout) if burst else None
    queue.run_forever(until=lambda: stop.is_set() or (until is not None and until()))
    if until is not None and until.timed_out:
        click.echo(f"pykue worker: --burst-timeout {burst_timeout}s passed with {', '.join(plan)} jobs left", err=True)
        sys.exit(1)


def _worker_plan(handler: str | None, job_types: tuple[str, ...], table: str | None,
                 concurrency: int) -> dict[str, Any]:  # fmt: skip
    """The worker's handler table: HANDLER for each --type, plus the --handlers table's entries."""
    if handler is not None and not job_types:
        raise ValueError("give the job type(s) HANDLER processes with --type")
    if job_types and handler is None:
        raise ValueError("--type needs a HANDLER (module:function); or use --handlers alone")
    if handler is None and table is None:
        raise ValueError("give a HANDLER with --type TYPE, or --handlers MODULE:NAME")
    plan: dict[str, Any] = {}
    if table is not None:
        loaded = _load_object(table, "MODULE:NAME")
        if not isinstance(loaded, dict) or not loaded:
            raise ValueError(f"{table} must be a non-empty dict of job type -> handler; got {type(loaded).__name__}")
        plan.update(loaded)
    if handler is not None:
        fn = _load_handler(handler)
        for t in job_types:
            if t in plan:
                raise ValueError(f"job type {t!r} is both in --handlers and given with --type")
            plan[t] = fn
    handler_table(plan, concurrency)  # every entry checked before any worker starts
    return plan


def _options(priority: str | None, delay: int | None, attempts: int | None, backoff: str | None) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    if priority is not None:
        opts["priority"] = int(priority) if priority.lstrip("-").isdigit() else priority
    if delay is not None:
        opts["delay"] = delay
    if attempts is not None:
        opts["attempts"] = attempts
    if backoff is not None:
        opts["backoff"] = True if backoff == "true" else json.loads(backoff)
    return opts


@main.command()
@click.argument("job_type")
@click.argument("data", default="{}")
@click.option("--priority")
@click.option("--delay", type=int, help="Milliseconds.")
@click.option("--attempts", type=int)
@click.option("--backoff", help='true or JSON such as {"type":"fixed","delay":1000}')
@click.option("--file", "jsonl", type=click.File("r"), help="Bulk: one JSON payload per line.")
@click.option("--unique", help="A key: while an unfinished job holds it, print that job's id instead.")
@click.option("--after", type=int, multiple=True, help="Run only after this job completes (repeatable).")
@click.option("--on-failure", type=click.Choice(["fail", "run"]), default="fail", show_default=True,
              help="With --after: what a failed dependency does to this job.")  # fmt: skip
@redis_opt
@prefix_opt
@friendly
def enqueue(job_type: str, data: str, priority: str | None, delay: int | None, attempts: int | None,
            backoff: str | None, jsonl: Any, unique: str | None, after: tuple[int, ...], on_failure: str,
            redis_url: str | None, prefix: str) -> None:  # fmt: skip
    """Create a job of JOB_TYPE with DATA (JSON), or many from --file."""
    opts = _options(priority, delay, attempts, backoff)
    with pykue.create_queue(redis_url, prefix=prefix) as queue:
        if jsonl is None:
            job = queue.create(job_type, _json(data, "DATA"), **opts)
            if unique is not None:
                job.unique(unique)
            if after:
                job.after(*after, on_failure=on_failure)
            click.echo(str(job.save().id))
            if job.deduplicated:
                click.echo(f"job {job.id} ({job.state}) holds the key {unique!r}: no new job", err=True)
            return
        from rich.progress import track

        lines = [ln for ln in jsonl.read().splitlines() if ln.strip()]
        jobs = [queue.create(job_type, _json(ln, f"line {n} of {jsonl.name}"), **opts) for n, ln in enumerate(lines, 1)]
        for i in track(range(0, len(jobs), 500), description="enqueueing", transient=True):
            queue.save_many(jobs[i : i + 500])
        click.echo(f"created {len(jobs)} jobs ({jobs[0].id}..{jobs[-1].id})" if jobs else "created 0 jobs")


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{what} is not JSON: {exc}") from None


@main.command()
@click.argument("job_type", required=False)
@click.option("--max", "max_jobs", type=int, help="Jobs of the type that may start per window.")
@click.option("--per", default="1s", show_default=True, help="The window: 500ms, 1s, 5m, 1h.")
@click.option("--clear", is_flag=True, help="Lift the type's limit.")
@redis_opt
@prefix_opt
@friendly
def limit(job_type: str | None, max_jobs: int | None, per: str, clear: bool, redis_url: str | None,
          prefix: str) -> None:  # fmt: skip
    """Rate-limit JOB_TYPE across every pykue worker (jobs over it wait); no JOB_TYPE lists the limits."""
    with pykue.create_queue(redis_url, prefix=prefix) as queue:
        if job_type is not None:
            if clear == (max_jobs is not None):
                raise ValueError("give --max N (with --per) or --clear")
            queue.limit(job_type, None if clear else max_jobs, per_ms=parse_duration_ms(per))
        limits = queue.limits()
    for t, (n, ms) in sorted(limits.items()):
        click.echo(f"{t}: {n} per {ms} ms")
    if job_type is not None and clear:
        click.echo(f"{job_type}: no limit")


@main.command()
@redis_opt
@prefix_opt
@friendly
def stats(redis_url: str | None, prefix: str) -> None:
    """Counts per state (Kue's /stats) and per type."""
    from rich.console import Console
    from rich.table import Table

    with pykue.create_queue(redis_url, prefix=prefix) as queue:
        s = queue.stats()
        table = Table("type", *STATES)
        table.add_row("(all)", *(str(s[f"{st}Count"]) for st in STATES))
        for t in queue.types():
            table.add_row(t, *(str(queue.card(st, t)) for st in STATES))
    Console().print(table)
    click.echo(f"work time: {s['workTime'] or 0} ms")


@main.command()
@click.argument("state", type=click.Choice(STATES))
@click.option("--type", "job_type")
@click.option("--limit", default=20, show_default=True)
@redis_opt
@prefix_opt
@friendly
def jobs(state: str, job_type: str | None, limit: int, redis_url: str | None, prefix: str) -> None:
    """List jobs in STATE."""
    with pykue.create_queue(redis_url, prefix=prefix) as queue:
        for job in queue.jobs(state, job_type, 0, limit - 1):
            click.echo(f"{job.id}\t{job.type}\t{job.state}\t{json.dumps(job.data, ensure_ascii=False)}")


@main.command()
@click.argument("job_id", type=int)
@redis_opt
@prefix_opt
@friendly
def job(job_id: int, redis_url: str | None, prefix: str) -> None:
    """Show one job as Kue's JSON API would, with its log."""
    with pykue.create_queue(redis_url, prefix=prefix) as queue:
        j = queue.get_job(job_id)
        click.echo(json.dumps({**j.to_json(), "log": j.logs()}, indent=2, ensure_ascii=False))


@main.command()
@click.argument("job_id", type=int, required=False)
@click.option("--all-failed", is_flag=True)
@click.option("--type", "job_type")
@click.option("--force", is_flag=True, help="Also re-run a job that has not failed (an active one is revoked).")
@redis_opt
@prefix_opt
@friendly
def retry(job_id: int | None, all_failed: bool, job_type: str | None, force: bool, redis_url: str | None,
          prefix: str) -> None:  # fmt: skip
    """Run a failed job (or all of them) again, attempts reset; other states only with --force."""
    if job_id is None and not all_failed:
        raise ValueError("give a JOB_ID or --all-failed")
    with pykue.create_queue(redis_url, prefix=prefix) as queue:
        ids = [job_id] if job_id is not None else queue.job_ids("failed", job_type)
        done, skipped = 0, []
        for i in ids:
            try:
                queue.retry(i, force)
                done += 1
            except pykue.JobStateError as exc:
                skipped.append(exc)
    click.echo(f"re-queued {done} job(s), attempts reset")
    for refused in skipped:
        click.echo(f"skipped job {refused.job_id}: it is {refused.state or 'in no state'} (--force retries it)",
                   err=True)  # fmt: skip
    if skipped and job_id is not None:
        sys.exit(2)


@main.command()
@click.argument("job_ids", type=int, nargs=-1, required=True)
@redis_opt
@prefix_opt
@friendly
def remove(job_ids: tuple[int, ...], redis_url: str | None, prefix: str) -> None:
    """Remove jobs by id."""
    with pykue.create_queue(redis_url, prefix=prefix) as queue:
        for job_id in job_ids:
            if not queue.get_job(job_id).remove():
                raise pykue.JobNotFoundError(job_id)
            click.echo(f"job {job_id} removed")


@main.command()
@click.option("--type", "job_type", required=True)
@click.option("--timeout", default=0.0, help="Give up after this many seconds (0: never).")
@redis_opt
@prefix_opt
@friendly
def wait(job_type: str, timeout: float, redis_url: str | None, prefix: str) -> None:
    """A progress bar until no job of the type is inactive, delayed or active."""
    from rich.progress import Progress

    start = time.monotonic()
    with pykue.create_queue(redis_url, prefix=prefix) as queue, Progress(transient=True) as bar:

        def left() -> int:
            return sum(queue.card(s, job_type) for s in ("inactive", "active", "delayed"))

        total = max(1, left())
        task = bar.add_task(f"waiting for {job_type}", total=total)
        while (n := left()) > 0:
            bar.update(task, completed=max(0, total - n))
            if timeout and time.monotonic() - start > timeout:
                raise TimeoutError(f"{n} {job_type} job(s) still pending after {timeout}s")
            time.sleep(0.2)
    click.echo(f"{job_type}: drained")


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything is announced: a busy port is one error line."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise pykue.ServerError(f"cannot resolve --host {host}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise pykue.ServerError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


@contextlib.contextmanager
def redis_for(redis_url: str | None, embedded: bool) -> Iterator[str]:
    """The Redis a service uses: a private embedded one (removed on exit) or a reachable URL."""
    if embedded and redis_url:
        raise ValueError("give --redis URL or --embedded, not both")
    if not embedded:
        url = default_redis_url(redis_url)
        require_redis(url)
        yield url
        return
    server = pykue.EmbeddedRedis()
    try:
        yield server.start().url
    finally:
        server.close()


def serve(name: str, app_factory: Callable[[str], Any], opts: dict[str, Any], note: str = "") -> None:
    """Run an ASGI app until SIGTERM/Ctrl-C; one ready line on stderr once it really listens."""
    import uvicorn

    sock = bind(opts["host"], opts["port"])
    with contextlib.closing(sock), redis_for(opts["redis_url"], opts["embedded"]) as url:
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        line = f"pykue {name}: listening on http://{shown}:{port}/{note}"
        line += f" (embedded Redis: {url})" if opts["embedded"] else ""
        server = _announcing(uvicorn.Config(app_factory(url), log_level="warning"), line)
        try:
            server.run(sockets=[sock])
        except SystemExit as exc:
            if exc.code == 3:  # uvicorn's "startup failed"; it has logged why
                raise pykue.ServerError(f"{name} failed to start (see the lines above)") from None
            raise


def _announcing(config: Any, line: str) -> Any:
    """A uvicorn server that prints `line` once the app has started on its socket."""
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                click.echo(line, err=True)

    return Server(config)


def served(port: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The options every HTTP service takes."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        for opt in reversed([
            click.option("--port", type=click.IntRange(0, 65535), default=port, show_default=True,
                         help="0: any free port (the ready line says which)."),
            click.option("--host", default="127.0.0.1", show_default=True),
            click.option("--redis", "redis_url", default=None, envvar="REDIS_URL", help="Redis URL."),
            click.option("--embedded", is_flag=True, help="Start a private embedded Redis (gone on exit)."),
        ]):  # fmt: skip
            fn = opt(fn)
        return fn

    return wrap


@main.command()
@served(1245)
@friendly
def stock(**opts: Any) -> None:
    """Seed task 12: the stock reservation service."""
    from pykue.apps.stock import create_app

    serve("stock", create_app, opts)


@main.command()
@served(1245)
@prefix_opt
@click.option("--reset", is_flag=True, help="Set the seats to 50 even if other seat servers are running.")
@friendly
def seats(prefix: str, reset: bool, **opts: Any) -> None:
    """Seed task 13: the seat reservation service (the first server on a Redis sets 50 seats)."""
    from pykue.apps.seats import create_app

    serve("seats", lambda url: create_app(url, prefix=prefix, reset=reset), opts)


web_opts = [
    click.option("--read-only", is_flag=True, help="Refuse every change."),
    click.option("--token", envvar="PYKUE_DASHBOARD_TOKEN", help="Require this token (Bearer, cookie or ?token=)."),
    click.option("--insecure", is_flag=True, help="Allow binding beyond loopback without a token."),
]


def _guarded(factory: Callable[..., Any], opts: dict[str, Any], **kw: Any) -> Callable[[str], Any]:
    """The app factory with the web guard's options; refuses a non-loopback bind without a token."""
    from pykue.web.security import exposure_error, hosts_for

    if problem := exposure_error(opts["host"], kw["token"], kw.pop("insecure")):
        raise ValueError(problem)
    return functools.partial(factory, hosts=hosts_for(opts["host"], kw["token"]), **kw)


@main.command()
@served(3000)
@web_opts[0]
@web_opts[1]
@web_opts[2]
@prefix_opt
@friendly
def api(read_only: bool, token: str | None, insecure: bool, prefix: str, **opts: Any) -> None:
    """Kue's JSON API alone (the dashboard serves it too), described at /openapi.json."""
    from pykue.web.api import create_app

    app = _guarded(create_app, opts, prefix=prefix, read_only=read_only, token=token, insecure=insecure)
    serve("api", app, opts, note=" (read-only)" if read_only else "")


@main.command()
@served(3000)
@web_opts[0]
@web_opts[1]
@web_opts[2]
@prefix_opt
@friendly
def dashboard(read_only: bool, token: str | None, insecure: bool, prefix: str, **opts: Any) -> None:
    """The web dashboard, Kue's JSON API and /metrics."""
    from pykue.web.dashboard import create_dashboard

    app = _guarded(create_dashboard, opts, prefix=prefix, read_only=read_only, token=token, insecure=insecure)
    serve("dashboard", app, opts, note=" (read-only)" if read_only else "")


for _command in cli_features.COMMANDS:  # issue 12's commands (schedules, pause, resume, clean, ...)
    main.add_command(_command)


if __name__ == "__main__":
    main()
