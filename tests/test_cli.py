"""The `pykue` command through its real entry point, against a private Redis."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

import pykue
from pykue import EmbeddedRedis
from pykue.server import free_port
from tests.conftest import PY, ROOT, py_env
from tests.helpers import wait_for
from tests.procs import Proc, children, redis_child, running

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


def test_burst_waits_for_a_retry_in_its_backoff(url: str, prefix: str, q: pykue.Queue) -> None:
    """The first attempt fails; the retry sits in `delayed` for 1.5 s: burst must wait for it."""
    job = q.create("flaky", {}, attempts=2, backoff={"type": "fixed", "delay": 1500}).save()
    cli("worker", "tests.cli_handlers:flaky", "--type", "flaky", "--burst", "--redis", url, "--prefix", prefix)
    done = q.get_job(job.id)
    assert (done.state, done.result) == ("complete", "second attempt")


def test_burst_leaves_far_future_jobs_and_honours_its_timeout(url: str, prefix: str, q: pykue.Queue) -> None:
    common = ["--redis", url, "--prefix", prefix]
    far = q.create("later", {"n": 1}, delay=600_000).save()  # due in ten minutes: not burst's business
    cli("worker", "tests.cli_handlers:double", "--type", "later", "--burst", *common, timeout=20)
    assert q.get_job(far.id).state == "delayed"
    soon = q.create("soon", {"n": 1}, delay=30_000).save()  # due within the minute: burst waits, up to its timeout
    out = cli("worker", "tests.cli_handlers:double", "--type", "soon", "--burst", "--burst-timeout", "1", *common,
              ok=False, timeout=20)  # fmt: skip
    assert out.returncode == 1 and "--burst-timeout 1.0s passed with soon jobs left" in out.stderr
    assert q.get_job(soon.id).state == "delayed"


def one_line_exit_2(out: subprocess.CompletedProcess[str], message: str) -> None:
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert out.stderr.startswith("pykue: error: ") and message in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert out.stdout == "", out.stdout


DOWN = "redis://127.0.0.1:1/0"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["worker", "nosuchmod:fn", "--type", "t"], "cannot import 'nosuchmod'"),
        (["worker", "tests.cli_handlers:nothing", "--type", "t"], "is not a callable"),
        (["worker", "tests.cli_handlers:double", "--type", "t", "-c", "0"], "Invalid value for '--concurrency'"),
        (["worker", "tests.cli_handlers:double", "--type", "t", "--burst-timeout", "5"], "only applies with --burst"),
        (["worker", "tests.cli_handlers:double", "--type", "t", "--redis", DOWN], f"cannot reach Redis at {DOWN}"),
        (["redis", "--port", "70000"], "70000 is not in the range"),
        (["dashboard", "--redis", DOWN, "--port", "0"], f"cannot reach Redis at {DOWN}"),
        (["api", "--redis", DOWN, "--port", "0"], f"cannot reach Redis at {DOWN}"),
        (["seats", "--redis", DOWN, "--port", "0"], f"cannot reach Redis at {DOWN}"),
        (["demo", "--redis", DOWN], f"cannot reach Redis at {DOWN}"),
        (["stock", "--embedded", "--redis", DOWN, "--port", "0"], "give --redis URL or --embedded, not both"),
        (["nosuchcommand"], "No such command"),
    ],
)
def test_every_user_error_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    one_line_exit_2(cli(*args, ok=False, timeout=30), message)


@pytest.mark.parametrize("service", ["dashboard", "stock", "seats", "api"])
def test_a_busy_port_is_one_line_and_nothing_announced(service: str, url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        one_line_exit_2(cli(service, "--port", port, "--redis", url, ok=False, timeout=30), "Address already in use")


def test_pykue_redis_on_a_busy_port_fails_instead_of_claiming_the_other_server(server: EmbeddedRedis) -> None:
    """The readiness check once reached the server already on the port and said `listening`."""
    out = cli("redis", "--port", str(server.port), ok=False, timeout=15)
    one_line_exit_2(out, f"could not listen on {server.url}")


@pytest.mark.parametrize("service", ["dashboard", "api", "seats", "stock"])
def test_a_service_announces_its_url_and_embedded_redis_only_once_listening(service: str) -> None:
    svc = Proc([*EXE, service, "--embedded", "--port", "0"])
    try:
        line = svc.line("listening on http://")
        assert len(svc.err) == 1 and svc.out == []
        base = line.split("listening on ")[1].split()[0]
        redis_url = line.split("(embedded Redis: ")[1].rstrip(")")
        assert httpx.get(base, timeout=5).status_code in (200, 404)  # answers at once: no retry
        queue = pykue.create_queue(redis_url)
        assert queue.client.ping() and queue.create("x", {}).save().id >= 1
        queue.shutdown()
    finally:
        svc.proc.send_signal(signal.SIGTERM)
        assert svc.finish() == 0


def answers(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
    except httpx.TransportError:
        return False
    return True


def private_redis_of(proc: Proc) -> tuple[int, str]:
    pid, directory = wait_for(lambda: redis_child(proc.proc.pid), what="the private redis-server")
    assert Path(directory).name.startswith("pykue-redis-"), directory
    return int(pid), str(directory)


def assert_left_nothing(pid: int, directory: str) -> None:
    wait_for(lambda: not running(pid), what=f"redis-server {pid} to stop")
    assert not os.path.exists(directory), f"{directory} left behind"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("service", ["stock", "seats", "dashboard", "api"])
def test_a_service_with_embedded_redis_stops_cleanly_and_leaves_nothing(service: str, sig: int) -> None:
    port = free_port()
    svc = Proc([*EXE, service, "--embedded", "--port", str(port)])
    try:
        wait_for(lambda: answers(port), timeout=20, what=f"{service} to answer")
        pid, directory = private_redis_of(svc)
        svc.proc.send_signal(sig)
        assert svc.finish() == 0, svc.err
    finally:
        svc.kill()
    assert not any("Traceback" in ln for ln in svc.err), svc.err
    assert_left_nothing(pid, directory)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_pykue_redis_stops_cleanly_and_leaves_nothing(sig: int) -> None:
    proc = Proc([*EXE, "redis"])
    try:
        proc.line("listening: redis://127.0.0.1:")
        pid, directory = private_redis_of(proc)
        proc.proc.send_signal(sig)
        assert proc.finish() == 0, proc.err
    finally:
        proc.kill()
    assert [ln for ln in proc.err if ln.strip()] == []  # click ends a Ctrl-C with a newline
    assert_left_nothing(pid, directory)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_wait_and_worker_stop_cleanly_on_either_signal(url: str, prefix: str, q: pykue.Queue, sig: int) -> None:
    q.create("stuck", {}).save()  # nobody works `stuck`: wait waits
    waiting = Proc([*EXE, "wait", "--type", "stuck", "--redis", url, "--prefix", prefix])
    working = Proc([*EXE, "worker", "tests.cli_handlers:double", "--type", "calc", "--redis", url, "--prefix", prefix])
    try:
        working.line("pykue worker: calc x1")
        polling = lambda: any(c["cmd"] == "zcard" for c in q.client.client_list())  # noqa: E731
        wait_for(polling, timeout=20, what="`wait` to poll the counts")
        for p in (waiting, working):
            p.proc.send_signal(sig)
            assert p.finish() == 0, p.err
    finally:
        waiting.kill()
        working.kill()
    assert not any("Traceback" in ln for ln in waiting.err + working.err)


def test_redis_client_example_stops_on_sigterm_while_it_retries() -> None:
    port = free_port()
    prog = Proc(
        [PY, str(ROOT / "examples" / "redis_client.py")], {**py_env(), "REDIS_URL": f"redis://127.0.0.1:{port}/0"}
    )
    try:
        wait_for(lambda: sum("not connected" in ln for ln in prog.out) >= 2, what="two failed attempts")
        prog.proc.send_signal(signal.SIGTERM)
        assert prog.finish(timeout=10) == 0
    finally:
        prog.kill()


def test_make_dump_leaves_the_tracked_dump_alone_unless_asked(tmp_path: Path) -> None:
    tracked = ROOT / "dump.rdb"
    before = (tracked.read_bytes(), tracked.stat().st_mtime_ns)
    out = subprocess.run([PY, str(ROOT / "examples" / "make_dump.py")], env=py_env(), capture_output=True,
                         text=True, timeout=30, check=True)  # fmt: skip
    written = Path(out.stdout.strip().removeprefix("wrote "))
    assert (tracked.read_bytes(), tracked.stat().st_mtime_ns) == before
    assert written != tracked and written.read_bytes()[:5] == b"REDIS"
    with EmbeddedRedis(data_dir=written.parent) as srv:
        assert redis.Redis.from_url(srv.url, decode_responses=True).get("Holberton") == "School"
    shutil.rmtree(written.parent)


def test_pykue_redis_serves_dump_rdb_to_redis_op_and_keeps_data_only_when_asked(tmp_path: Path) -> None:
    """The README's recipe: `pykue redis --dir . --dbfilename dump.rdb`, then redis_op.py shows School."""
    shutil.copy(ROOT / "dump.rdb", tmp_path / "dump.rdb")
    pristine = (tmp_path / "dump.rdb").read_bytes()
    for save in (False, True):
        proc = Proc(
            [*EXE, "redis", "--dir", str(tmp_path), "--dbfilename", "dump.rdb", *([] if save else ["--no-save"])]
        )
        try:
            redis_url = proc.line("listening: ").split("listening: ")[1].split()[0]
            op = subprocess.run([PY, str(ROOT / "examples" / "redis_op.py")], env={**py_env(), "REDIS_URL": redis_url},
                                capture_output=True, text=True, timeout=30)  # fmt: skip
            assert op.stdout.splitlines() == ["Redis client connected to the server", "School", "Reply: OK", "100"]
            proc.proc.send_signal(signal.SIGTERM)
            assert proc.finish() == 0
        finally:
            proc.kill()
        assert ((tmp_path / "dump.rdb").read_bytes() == pristine) is not save
    with EmbeddedRedis(data_dir=tmp_path) as srv:  # the saved run kept redis_op's key
        assert redis.Redis.from_url(srv.url, decode_responses=True).get("HolbertonSanFrancisco") == "100"


def test_demo_stops_its_processes_on_sigterm() -> None:
    """Writes paused mid-demo (CLIENT PAUSE): SIGTERM must still stop the creator and the processor."""
    with EmbeddedRedis() as srv:
        r = redis.Redis.from_url(srv.url)
        r.execute_command("CLIENT", "PAUSE", 4000, "WRITE")  # the creator's first save blocks
        demo = Proc([*EXE, "demo", "--redis", srv.url])
        kids: list[int] = []
        try:
            demo.line("pykue demo: Redis at")
            kids = wait_for(lambda: len(found := children(demo.proc.pid)) == 2 and found, what="creator and processor")
            demo.proc.send_signal(signal.SIGTERM)
            assert demo.finish() == 0, demo.err
            outlived = [pid for pid in kids if running(pid)]
            assert not outlived, "a demo process outlived the demo"
        finally:
            for pid in kids:  # never leave the test's own processes behind, even when it fails
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            demo.kill()
        assert "pykue demo: done" not in demo.out
        r.close()
