"""`pykue schedules`, `unrepeat`, `pause`, `resume` and `clean`: issue 12's operator commands,
added to the `pykue` group by cli.py (kept here so cli.py stays its owner's). A mistake is
one line and exit code 2: the group turns pykue's errors into that."""

from __future__ import annotations

import re

import click

import pykue

redis_opt = click.option("--redis", "redis_url", default=None, envvar="REDIS_URL", help="Redis URL.")
prefix_opt = click.option("--prefix", default="q", show_default=True, help="Key prefix (Kue's default is q).")

UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def duration_ms(text: str) -> int:
    """'1h', '30m', '45s', '7d', '250ms', or a bare number of milliseconds."""
    m = re.fullmatch(r"\s*(\d+)\s*(ms|s|m|h|d)?\s*", text)
    if not m:
        raise ValueError(f"--older-than: expected a duration such as 1h, 30m, 45s, 7d or 250ms; got {text!r}")
    return int(m.group(1)) * UNITS_MS[m.group(2) or "ms"]


def _when(ms: int | None) -> str:
    import datetime as dt

    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@click.command()
@redis_opt
@prefix_opt
def schedules(redis_url: str | None, prefix: str) -> None:
    """Repeatable jobs (queue.repeat): key, type, when, next run."""
    with pykue.create_queue(redis_url, prefix=prefix) as queue:
        rows = queue.schedules()
    if not rows:
        click.echo("no schedules")
    for s in rows:
        when = f"cron {s.cron}" + (f" ({s.tz})" if s.tz else "") if s.cron else f"every {s.every_ms} ms"
        click.echo(f"{s.key}\t{s.type}\t{when}\tnext {_when(s.next_run_ms)}")


@click.command()
@click.argument("key")
@redis_opt
@prefix_opt
def unrepeat(key: str, redis_url: str | None, prefix: str) -> None:
    """Remove the schedule KEY (jobs it already enqueued stay)."""
    with pykue.create_queue(redis_url, prefix=prefix) as queue:
        if not queue.unrepeat(key):
            raise ValueError(f"no schedule with key {key!r} (see pykue schedules)")
    click.echo(f"schedule {key} removed")


@click.command()
@click.argument("job_type")
@redis_opt
@prefix_opt
def pause(job_type: str, redis_url: str | None, prefix: str) -> None:
    """Stop every pykue worker claiming JOB_TYPE (running jobs finish)."""
    with pykue.create_queue(redis_url, prefix=prefix) as queue:
        queue.pause(job_type)
        paused = queue.paused()
    click.echo(f"{job_type}: paused (paused types: {', '.join(paused)})")


@click.command()
@click.argument("job_type")
@redis_opt
@prefix_opt
def resume(job_type: str, redis_url: str | None, prefix: str) -> None:
    """Let pykue workers claim JOB_TYPE again."""
    with pykue.create_queue(redis_url, prefix=prefix) as queue:
        queue.resume(job_type)
    click.echo(f"{job_type}: resumed")


@click.command()
@click.argument("state", type=click.Choice(["complete", "failed"]))
@click.option("--older-than", "older_than", required=True, help="Age, e.g. 1h, 30m, 7d (bare number: ms).")
@click.option("--limit", type=click.IntRange(min=1), default=1000, show_default=True)
@redis_opt
@prefix_opt
def clean(state: str, older_than: str, limit: int, redis_url: str | None, prefix: str) -> None:
    """Remove finished jobs in STATE last updated longer ago than --older-than."""
    age = duration_ms(older_than)
    with pykue.create_queue(redis_url, prefix=prefix) as queue:
        removed = queue.clean(state, age, limit)
    click.echo(f"removed {len(removed)} {state} job(s)")


COMMANDS = [schedules, unrepeat, pause, resume, clean]
