"""The `pykue` command through its real entry point, against a private Redis."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import pykue
from pykue import EmbeddedRedis
from tests.conftest import PY, ROOT, py_env
from tests.helpers import wait_for

_SCRIPT = shutil.which("pykue")
EXE: list[str] = [_SCRIPT] if _SCRIPT else [PY, "-m", "pykue.cli"]


@pytest.fixture
def url(server: EmbeddedRedis) -> str:
    return server.url


def cli(*args: str, ok: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([*EXE, *args], env=py_env(), capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if ok:
        assert out.returncode == 0, out.stderr
    return out


@pytest.fixture
def q(url: str, prefix: str) -> Iterator[pykue.Queue]:
    queue = pykue.create_queue(url, prefix=prefix)
    yield queue
    queue.shutdown()


def test_enqueue_stats_jobs_job_and_worker(url: str, prefix: str, q: pykue.Queue, tmp_path: Path) -> None:
    common = ["--redis", url, "--prefix", prefix]
    assert cli("enqueue", "calc", '{"n": 21}', "--priority", "high", "--attempts", "2", *common).stdout.strip() == "1"
    lines = tmp_path / "jobs.jsonl"
    lines.write_text("".join(json.dumps({"n": i}) + "\n" for i in range(50)))
    assert "created 50 jobs (2..51)" in cli("enqueue", "calc", "--file", str(lines), *common).stdout
    assert q.inactive_count("calc") == 51 and q.get_job(1).opts.priority == -10
    stats = cli("stats", *common).stdout
    assert "calc" in stats and "51" in stats
    listed = cli("jobs", "inactive", "--type", "calc", "--limit", "3", *common).stdout.splitlines()
    assert [ln.split("\t")[0] for ln in listed] == ["1", "2", "3"]
    shown = json.loads(cli("job", "1", *common).stdout)
    assert shown["data"] == {"n": 21} and shown["attempts"]["max"] == 2 and shown["log"] == []

    cli("worker", "tests.cli_handlers:double", "--type", "calc", "-c", "4", "--burst", *common)
    assert q.complete_count("calc") == 51 and q.get_job(1).result == 42
    assert "calc: drained" in cli("wait", "--type", "calc", *common).stdout


def test_retry_and_remove(url: str, prefix: str, q: pykue.Queue) -> None:
    common = ["--redis", url, "--prefix", prefix]
    for _ in range(3):
        cli("enqueue", "boom", "{}", *common)
    cli("worker", "tests.cli_handlers:explode", "--type", "boom", "--burst", *common)
    assert q.failed_count("boom") == 3
    assert "re-queued 1 job(s)" in cli("retry", "1", *common).stdout
    assert q.inactive_count("boom") == 1
    assert "re-queued 2 job(s)" in cli("retry", "--all-failed", "--type", "boom", *common).stdout
    assert q.inactive_count("boom") == 3
    assert cli("remove", "2", "3", *common).stdout.splitlines() == ["job 2 removed", "job 3 removed"]
    assert q.card() == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["enqueue", "t", "{not json"], "DATA is not JSON"),
        (["enqueue", "t", "{}", "--priority", "urgent"], "priority must be an integer or one of"),
        (["job", "999"], 'job "999" doesnt exist'),
        (["retry"], "give a JOB_ID or --all-failed"),
        (["worker", "nomodule", "--type", "t"], "handler must look like MODULE:FUNCTION"),
        (["stats", "--redis", "redis://127.0.0.1:1/0"], "Error"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_2(url: str, prefix: str, args: list[str], message: str) -> None:
    extra = [] if "--redis" in args else ["--redis", url, "--prefix", prefix]
    out = cli(*args, *extra, ok=False)
    assert out.returncode == 2
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


def test_worker_is_graceful_on_sigterm(url: str, prefix: str, q: pykue.Queue) -> None:
    args = [*EXE, "worker", "tests.cli_handlers:double", "--type", "calc", "--redis", url, "--prefix", prefix]
    proc = subprocess.Popen(args, env=py_env(), cwd=ROOT, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None and "pykue worker: calc x1" in proc.stderr.readline()
    q.create("calc", {"n": 5}).save()
    wait_for(lambda: q.complete_count("calc") == 1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    proc.stderr.close()


def test_embedded_redis_in_the_foreground() -> None:
    proc = subprocess.Popen([*EXE, "redis"], env=py_env(), stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "listening: redis://127.0.0.1:" in line
    client_url = line.split("listening: ")[1].strip()
    q = pykue.create_queue(client_url)
    assert q.create("x", {}).save().id == 1
    q.shutdown()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    proc.stdout.close()
