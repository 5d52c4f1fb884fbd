"""`pykue`: the command line, thin over library calls.

Every command takes --redis URL (default $REDIS_URL, else 127.0.0.1:6379) and --prefix.
A user mistake is one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import click
import redis

import pykue
from pykue._keys import STATES

redis_opt = click.option("--redis", "redis_url", default=None, envvar="REDIS_URL", help="Redis URL.")
prefix_opt = click.option("--prefix", default="q", show_default=True, help="Key prefix (Kue's default is q).")


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kw: Any) -> Any:
        try:
            return fn(*args, **kw)
        except (pykue.PykueError, ValueError, TypeError, redis.RedisError, OSError) as exc:
            click.echo(f"pykue: error: {exc}", err=True)
            sys.exit(2)

    return wrapper


@click.group()
@click.version_option(pykue.__version__)
def main() -> None:
    """pykue: a Kue-compatible Redis job queue."""


@main.command()
@click.option("--redis", "redis_url", default=None, help="Use this Redis instead of the embedded one.")
@click.option("--prefix", default="q", show_default=True)
def demo(redis_url: str | None, prefix: str) -> None:
    """Run the seed's notification pipeline (creator + processor, concurrency 2)."""
    from pykue.apps.demo import run

    sys.exit(run(redis_url, prefix))


@main.command("redis")
@click.option("--port", type=int, default=None, help="Port (default: a free one).")
@friendly
def redis_cmd(port: int | None) -> None:
    """Run the embedded Redis server in the foreground until Ctrl-C."""
    srv = pykue.EmbeddedRedis(port=port).start()
    click.echo(f"redis-server ({srv.binary}) listening: {srv.url}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    srv.close()


def _load_handler(spec: str) -> Callable[..., Any]:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"handler must look like MODULE:FUNCTION; got {spec!r}")
    sys.path.insert(0, ".")
    fn = getattr(importlib.import_module(module_name), attr, None)
    if not callable(fn):
        raise ValueError(f"{spec} is not a callable")
    return fn  # type: ignore[no-any-return]


@main.command()
@click.argument("handler")
@click.option("--type", "job_type", required=True, help="Job type to process.")
@click.option("--concurrency", "-c", default=1, show_default=True)
@click.option("--burst", is_flag=True, help="Exit once no job of the type is left.")
@click.option("--processes", "-p", type=click.IntRange(min=1), default=None,
              help="Supervised worker processes (default: one per core).")  # fmt: skip
@redis_opt
@prefix_opt
@friendly
def worker(handler: str, job_type: str, concurrency: int, burst: bool, processes: int | None, redis_url: str | None,
           prefix: str) -> None:  # fmt: skip
    """Process jobs with HANDLER (module:function); graceful on SIGTERM/Ctrl-C."""
    _load_handler(handler)  # a bad spec is exit 2 here, not a crash loop in the children
    sys.exit(pykue.run_workers(_work, processes, args=(handler, job_type, concurrency, burst, redis_url, prefix)))


def _work(handler: str, job_type: str, concurrency: int, burst: bool, redis_url: str | None, prefix: str) -> None:
    """One worker process (run by the supervisor); a SIGTERM that comes during start-up still stops it gracefully."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    fn = _load_handler(handler)
    queue = pykue.create_queue(redis_url, prefix=prefix)
    queue.process(job_type, concurrency, fn)
    click.echo(f"pykue worker: {job_type} x{concurrency} on {queue.url} (pid {os.getpid()})", err=True)

    def drained() -> bool:
        return queue.inactive_count(job_type) == 0 and queue.active_count(job_type) == 0

    queue.run_forever(until=lambda: stop.is_set() or (burst and drained()))


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
@redis_opt
@prefix_opt
@friendly
def enqueue(job_type: str, data: str, priority: str | None, delay: int | None, attempts: int | None,
            backoff: str | None, jsonl: Any, redis_url: str | None, prefix: str) -> None:  # fmt: skip
    """Create a job of JOB_TYPE with DATA (JSON), or many from --file."""
    opts = _options(priority, delay, attempts, backoff)
    queue = pykue.create_queue(redis_url, prefix=prefix)
    try:
        if jsonl is not None:
            from rich.progress import track

            lines = [ln for ln in jsonl.read().splitlines() if ln.strip()]
            payloads = []
            for n, line in enumerate(lines, 1):
                try:
                    payloads.append(json.loads(line))
                except ValueError as exc:
                    raise ValueError(f"line {n} of {jsonl.name} is not JSON: {exc}") from None
            jobs = [queue.create(job_type, p, **opts) for p in payloads]
            for i in track(range(0, len(jobs), 500), description="enqueueing", transient=True):
                queue.save_many(jobs[i : i + 500])
            click.echo(f"created {len(jobs)} jobs ({jobs[0].id}..{jobs[-1].id})" if jobs else "created 0 jobs")
        else:
            try:
                payload = json.loads(data)
            except ValueError as exc:
                raise ValueError(f"DATA is not JSON: {exc}") from None
            job = queue.create(job_type, payload, **opts).save()
            click.echo(str(job.id))
    finally:
        queue.shutdown()


@main.command()
@redis_opt
@prefix_opt
@friendly
def stats(redis_url: str | None, prefix: str) -> None:
    """Counts per state (Kue's /stats) and per type."""
    from rich.console import Console
    from rich.table import Table

    queue = pykue.create_queue(redis_url, prefix=prefix)
    s = queue.stats()
    table = Table("type", *STATES)
    table.add_row("(all)", *(str(s[f"{st}Count"]) for st in STATES))
    for t in queue.types():
        table.add_row(t, *(str(queue.card(st, t)) for st in STATES))
    Console().print(table)
    click.echo(f"work time: {s['workTime'] or 0} ms")
    queue.shutdown()


@main.command()
@click.argument("state", type=click.Choice(STATES))
@click.option("--type", "job_type")
@click.option("--limit", default=20, show_default=True)
@redis_opt
@prefix_opt
@friendly
def jobs(state: str, job_type: str | None, limit: int, redis_url: str | None, prefix: str) -> None:
    """List jobs in STATE."""
    queue = pykue.create_queue(redis_url, prefix=prefix)
    for job in queue.jobs(state, job_type, 0, limit - 1):
        click.echo(f"{job.id}\t{job.type}\t{job.state}\t{json.dumps(job.data, ensure_ascii=False)}")
    queue.shutdown()


@main.command()
@click.argument("job_id", type=int)
@redis_opt
@prefix_opt
@friendly
def job(job_id: int, redis_url: str | None, prefix: str) -> None:
    """Show one job as Kue's JSON API would, with its log."""
    queue = pykue.create_queue(redis_url, prefix=prefix)
    j = queue.get_job(job_id)
    click.echo(json.dumps({**j.to_json(), "log": j.logs()}, indent=2, ensure_ascii=False))
    queue.shutdown()


@main.command()
@click.argument("job_id", type=int, required=False)
@click.option("--all-failed", is_flag=True)
@click.option("--type", "job_type")
@redis_opt
@prefix_opt
@friendly
def retry(job_id: int | None, all_failed: bool, job_type: str | None, redis_url: str | None, prefix: str) -> None:
    """Send a failed job (or all of them) back to inactive."""
    if job_id is None and not all_failed:
        raise ValueError("give a JOB_ID or --all-failed")
    queue = pykue.create_queue(redis_url, prefix=prefix)
    targets = [queue.get_job(job_id)] if job_id is not None else queue.jobs("failed", job_type)
    for j in targets:
        j.inactive()
    click.echo(f"re-queued {len(targets)} job(s)")
    queue.shutdown()


@main.command()
@click.argument("job_ids", type=int, nargs=-1, required=True)
@redis_opt
@prefix_opt
@friendly
def remove(job_ids: tuple[int, ...], redis_url: str | None, prefix: str) -> None:
    """Remove jobs by id."""
    queue = pykue.create_queue(redis_url, prefix=prefix)
    for job_id in job_ids:
        if not queue.get_job(job_id).remove():
            raise pykue.JobNotFoundError(job_id)
        click.echo(f"job {job_id} removed")
    queue.shutdown()


@main.command()
@click.option("--type", "job_type", required=True)
@click.option("--timeout", default=0.0, help="Give up after this many seconds (0: never).")
@redis_opt
@prefix_opt
@friendly
def wait(job_type: str, timeout: float, redis_url: str | None, prefix: str) -> None:
    """A progress bar until no job of the type is inactive, delayed or active."""
    from rich.progress import Progress

    queue = pykue.create_queue(redis_url, prefix=prefix)
    start = time.monotonic()

    def left() -> int:
        return sum(queue.card(s, job_type) for s in ("inactive", "active", "delayed"))

    total = max(1, left())
    with Progress(transient=True) as bar:
        task = bar.add_task(f"waiting for {job_type}", total=total)
        while (n := left()) > 0:
            bar.update(task, completed=max(0, total - n))
            if timeout and time.monotonic() - start > timeout:
                raise TimeoutError(f"{n} {job_type} job(s) still pending after {timeout}s")
            time.sleep(0.2)
    click.echo(f"{job_type}: drained")
    queue.shutdown()


def _serve(app_factory: Callable[[str], Any], port: int, redis_url: str | None, embedded: bool, host: str) -> None:
    import uvicorn

    server = pykue.EmbeddedRedis().start() if embedded else None
    url = server.url if server else (redis_url or pykue._core.redis_url(None))
    try:
        uvicorn.run(app_factory(url), host=host, port=port, log_level="warning")
    finally:
        if server is not None:
            server.close()


def served(port: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The options every HTTP service takes."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        for opt in reversed([
            click.option("--port", default=port, show_default=True),
            click.option("--host", default="127.0.0.1", show_default=True),
            click.option("--redis", "redis_url", default=None, envvar="REDIS_URL", help="Redis URL."),
            click.option("--embedded", is_flag=True, help="Start the embedded Redis."),
        ]):  # fmt: skip
            fn = opt(fn)
        return fn

    return wrap


@main.command()
@served(1245)
@friendly
def stock(port: int, host: str, redis_url: str | None, embedded: bool) -> None:
    """Seed task 12: the stock reservation service."""
    from pykue.apps.stock import create_app

    _serve(create_app, port, redis_url, embedded, host)


@main.command()
@served(1245)
@prefix_opt
@friendly
def seats(port: int, host: str, redis_url: str | None, embedded: bool, prefix: str) -> None:
    """Seed task 13: the seat reservation service."""
    from pykue.apps.seats import create_app

    _serve(lambda url: create_app(url, prefix=prefix), port, redis_url, embedded, host)


@main.command()
@served(3000)
@prefix_opt
@friendly
def api(port: int, host: str, redis_url: str | None, embedded: bool, prefix: str) -> None:
    """Kue's JSON API alone (the dashboard serves it too), with an OpenAPI document at /docs."""
    from pykue.web.api import create_app

    _serve(lambda url: create_app(url, prefix=prefix), port, redis_url, embedded, host)


LOOPBACK = ("127.0.0.1", "localhost", "::1")


@main.command()
@served(3000)
@click.option("--read-only", is_flag=True, help="Refuse every write.")
@click.option("--token", envvar="PYKUE_DASHBOARD_TOKEN", help="Require this token (Bearer, cookie or ?token=).")
@click.option("--insecure", is_flag=True, help="Allow binding beyond loopback without a token.")
@prefix_opt
@friendly
def dashboard(port: int, host: str, redis_url: str | None, embedded: bool, read_only: bool, token: str | None,
              insecure: bool, prefix: str) -> None:  # fmt: skip
    """The web dashboard, Kue's JSON API and /metrics."""
    if host not in LOOPBACK and not token and not insecure:
        raise ValueError(f"binding to {host} exposes the queue: give --token (or --insecure to accept that)")
    from pykue.web.dashboard import create_dashboard

    click.echo(f"pykue dashboard on http://{host}:{port}/" + (" (read-only)" if read_only else ""), err=True)
    _serve(lambda url: create_dashboard(url, prefix=prefix, read_only=read_only, token=token), port, redis_url,
           embedded, host)  # fmt: skip


if __name__ == "__main__":
    main()
