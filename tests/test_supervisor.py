"""`pykue.run_workers` / `pykue worker --processes N`: supervised worker processes, real signals, real Redis."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

import pykue
from tests.conftest import PY, ROOT, py_env
from tests.helpers import wait_for

TARGETS = str(ROOT / "tests" / "supervisor_worker.py")


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def descendants(pid: int) -> list[int]:
    out = []
    for child in children(pid):
        out += [child, *descendants(child)]
    return out


def alive(pid: int) -> bool:
    """Running and not a zombie (a zombie's parent has not reaped it yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def stop_cleanly(sup: subprocess.Popen[str] | subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Signal the supervisor only: it must exit 0 and leave none of its processes behind."""
    everyone = descendants(sup.pid)
    sup.send_signal(sig)
    assert sup.wait(30) == 0
    wait_for(lambda: not any(alive(p) for p in everyone), 10, "no process left behind")


def is_worker(pid: int) -> bool:
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def workers(sup: int) -> set[int]:
    return {p for p in children(sup) if is_worker(p) and alive(p)}


@pytest.fixture
def events(url: str, prefix: str) -> Iterator[Counter[tuple[int, str]]]:
    """Every (job id, event) Kue's events channel carries during the test, counted."""
    seen: Counter[tuple[int, str]] = Counter()
    client = redis.Redis.from_url(url, decode_responses=True)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(f"{prefix}:events")
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            msg = pubsub.get_message(timeout=0.1)
            if msg is not None:
                body = json.loads(msg["data"])
                seen[(int(body["id"]), body["event"])] += 1

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    yield seen
    stop.set()
    thread.join(5)
    pubsub.close()
    client.close()


def test_a_killed_worker_is_restarted_and_every_job_completes_once(
    url: str, prefix: str, r: redis.Redis, queue: pykue.Queue, events: Counter[tuple[int, str]]
) -> None:
    n = 300
    queue.save_many(queue.create("sv", {"i": i}) for i in range(n))
    sup = subprocess.Popen([PY, TARGETS, "work", "2", url, prefix], env=py_env(), cwd=ROOT)
    try:
        wait_for(lambda: r.llen(f"{prefix}:ready") == 2, 30, "two workers up")
        first = workers(sup.pid)
        assert len(first) == 2
        wait_for(lambda: queue.complete_count("sv") >= 30, 30, "some jobs done")
        victim = sorted(first)[0]
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: r.llen(f"{prefix}:ready") == 3, 30, "the killed worker replaced")
        after = workers(sup.pid)
        assert victim not in after and len(after) == 2 and len(after & first) == 1

        wait_for(lambda: queue.complete_count("sv") == n, 60, "every job complete")
        assert queue.failed_count("sv") == 0 and queue.active_count("sv") == 0 and queue.inactive_count("sv") == 0
        wait_for(lambda: sum(v for (_, e), v in events.items() if e == "complete") >= n, 10, "complete events")
        completes = Counter(job_id for (job_id, e), v in events.items() if e == "complete" for _ in range(v))
        assert set(completes) == set(range(1, n + 1)) and set(completes.values()) == {1}
        runs = {int(k): int(v) for k, v in r.hgetall(f"{prefix}:runs").items()}
        assert set(runs) == set(range(1, n + 1))
        rerun = [j for j, v in runs.items() if v > 1]
        assert len(rerun) <= 4 and all(v == 2 for j, v in runs.items() if j in rerun)  # only what the victim held

        stop_cleanly(sup)
    finally:
        if sup.poll() is None:
            sup.kill()
            sup.wait()


def test_cli_processes_option_starts_n_workers_and_sigterm_stops_them_all(url: str, prefix: str) -> None:
    args = [PY, "-m", "pykue.cli", "worker", "tests.cli_handlers:double", "--type", "calc", "--processes", "3",
            "--redis", url, "--prefix", prefix]  # fmt: skip
    sup = subprocess.Popen(args, env=py_env(), cwd=ROOT, stderr=subprocess.PIPE, text=True)
    assert sup.stderr is not None
    try:
        lines = [sup.stderr.readline() for _ in range(3)]
        assert all("pykue worker: calc x1" in ln for ln in lines), lines
        pids = {int(ln.rsplit("pid ", 1)[1].rstrip(")\n")) for ln in lines}
        assert pids == workers(sup.pid) and len(pids) == 3
        stop_cleanly(sup, signal.SIGINT)  # Ctrl-C: reaches only the supervisor, which stops each child once
        assert "Traceback" not in sup.stderr.read()
    finally:
        if sup.poll() is None:
            sup.kill()
            sup.wait()
        sup.stderr.close()


def test_a_crash_loop_backs_off(tmp_path: Path) -> None:
    log = tmp_path / "starts"
    sup = subprocess.Popen([PY, TARGETS, "crash", "1", str(log)], env=py_env(), cwd=ROOT)
    try:
        wait_for(lambda: log.exists() and len(log.read_text().split()) >= 5, 30, "five starts")
        sup.send_signal(signal.SIGTERM)
        assert sup.wait(30) == 0  # the fifth start stayed up and stopped cleanly
    finally:
        if sup.poll() is None:
            sup.kill()
            sup.wait()
    starts = [float(t) for t in log.read_text().split()]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(gaps) == 4 and all(gap >= delay for gap, delay in zip(gaps, [0.05, 0.1, 0.2, 0.2], strict=True)), gaps


def test_a_worker_that_died_gives_its_exit_code_to_the_supervisor(tmp_path: Path) -> None:
    log = tmp_path / "starts"
    sup = subprocess.Popen([PY, TARGETS, "die", "1", str(log)], env=py_env(), cwd=ROOT)
    try:
        wait_for(lambda: log.exists() and not workers(sup.pid), 30, "the worker dead, its restart pending")
        sup.send_signal(signal.SIGTERM)
        assert sup.wait(30) == 3
        assert len(log.read_text().split()) == 1
    finally:
        if sup.poll() is None:
            sup.kill()
            sup.wait()


def test_without_restart_a_dead_worker_ends_the_run_with_its_code(tmp_path: Path) -> None:
    log = tmp_path / "starts"
    out = subprocess.run([PY, TARGETS, "die-once", "2", str(log)], env=py_env(), cwd=ROOT, timeout=60)
    assert out.returncode == 3
    assert len(log.read_text().split()) == 2  # each slot started once, none again


def test_workers_that_finish_are_not_restarted(tmp_path: Path) -> None:
    log = tmp_path / "starts"
    out = subprocess.run([PY, TARGETS, "finish", "3", str(log)], env=py_env(), cwd=ROOT, timeout=60)
    assert out.returncode == 0
    assert len(set(log.read_text().split())) == 3


def test_bad_arguments_are_named_errors() -> None:
    with pytest.raises(ValueError, match="processes must be >= 1"):
        pykue.run_workers(print, 0)


def test_a_stop_while_the_workers_boot_is_clean(url: str, prefix: str) -> None:
    sup = subprocess.Popen([PY, TARGETS, "work", "2", url, prefix], env=py_env(), cwd=ROOT)
    try:
        wait_for(lambda: len(workers(sup.pid)) == 2, 30, "two workers spawned")  # still importing, no handler yet
        stop_cleanly(sup)
    finally:
        if sup.poll() is None:
            sup.kill()
            sup.wait()


@pytest.mark.parametrize(("flag", "expected"), [("1", "uvloop"), ("0", "asyncio.unix_events")])
def test_workers_run_on_uvloop_unless_told_not_to(tmp_path: Path, flag: str, expected: str) -> None:
    log = tmp_path / "loops"
    env = {**py_env(), "PYKUE_UVLOOP": flag}
    out = subprocess.run([PY, TARGETS, "loop_kind", "2", str(log)], env=env, cwd=ROOT, timeout=60)
    assert out.returncode == 0
    assert log.read_text().split() == [expected, expected]
