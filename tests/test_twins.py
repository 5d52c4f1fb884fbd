"""The sync and asyncio twins are one API: generated from one source, the same public names,
no import cycle; sync listeners on their own thread; a creator hears all its job's events."""

from __future__ import annotations

import ast
import asyncio
import gc
import importlib.util
import inspect
import shutil
import subprocess
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import pytest
import redis

import pykue
from tests.conftest import FAST, PY, ROOT, py_env
from tests.helpers import wait_for
from tests.twins import Twin

PKG = ROOT / "src" / "pykue"


def _public(obj: Any) -> set[str]:
    return {n for n in dir(obj) if not n.startswith("_")}


# -- one source ---------------------------------------------------------------------
def test_generated_sync_twin_is_current() -> None:
    proc = subprocess.run([PY, "scripts/unasync.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_unasync_check_fails_on_a_stale_twin(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("unasync_copy", ROOT / "scripts" / "unasync.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for name in ("_api_async.py", "_api_sync.py"):
        shutil.copy(PKG / name, tmp_path / name)
    mod.SRC = tmp_path
    assert mod.main(["--check"]) == 0
    source = tmp_path / "_api_async.py"
    source.write_text(source.read_text() + "\n\nasync def added() -> None:\n    await added()\n")
    assert mod.main(["--check"]) == 1  # the source moved on, the twin did not
    assert mod.main([]) == 0 and mod.main(["--check"]) == 0
    assert "def added() -> None:\n    added()" in (tmp_path / "_api_sync.py").read_text()


@pytest.mark.parametrize(("sync_cls", "async_cls"), [(pykue.Queue, pykue.AsyncQueue), (pykue.Job, pykue.AsyncJob)])
def test_no_public_name_exists_on_one_twin_only(sync_cls: type, async_cls: type) -> None:
    assert _public(sync_cls) == _public(async_cls)
    for name in _public(async_cls):
        a, s = inspect.getattr_static(async_cls, name), inspect.getattr_static(sync_cls, name)
        if isinstance(a, (classmethod, staticmethod)):
            a, s = a.__func__, s.__func__
        if not inspect.isfunction(a):
            continue
        assert not inspect.iscoroutinefunction(s), f"{sync_cls.__name__}.{name} is a coroutine"
        assert list(inspect.signature(a).parameters) == list(inspect.signature(s).parameters), name


def test_instances_have_the_same_public_attributes() -> None:
    sq = pykue.create_queue("redis://127.0.0.1:1/0")  # clients connect lazily: no server needed
    aq = pykue.create_async_queue("redis://127.0.0.1:1/0")
    assert {n for n in vars(sq) if not n.startswith("_")} == {n for n in vars(aq) if not n.startswith("_")}
    sq.client.close()


def test_state_shortcuts_have_real_signatures() -> None:
    for cls in (pykue.Job, pykue.AsyncJob):
        for name in ("inactive", "active", "complete", "failed", "delayed", "set_state"):
            assert inspect.signature(getattr(cls, name)).return_annotation == "Self", (cls, name)
    assert inspect.iscoroutinefunction(pykue.AsyncJob.complete)
    assert not inspect.iscoroutinefunction(pykue.Job.complete)


def _imports(path: Path) -> set[str]:
    """pykue modules a module imports when it is loaded (not under TYPE_CHECKING, not in functions)."""
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(a.name for a in node.names)
    return found


def test_the_package_has_no_import_cycle() -> None:
    graph = {p.stem: _imports(p) for p in PKG.glob("*.py")}
    for name in ("_job", "_api_async", "_api_sync"):
        assert "_queue" not in graph[name] and "_aqueue" not in graph[name]

    def visit(node: str, path: list[str]) -> None:
        assert node not in path, f"import cycle: {' -> '.join([*path, node])}"
        for nxt in graph.get(node, ()):
            visit(nxt, [*path, node])

    for module in graph:
        visit(module, [])


def test_job_get_uses_the_last_queue_of_its_own_twin(queue: pykue.Queue) -> None:
    job = queue.create("g", {"x": 1}).save()
    assert pykue.Job.get(job.id or 0).data == {"x": 1}

    async def main() -> None:
        aq = pykue.create_async_queue(queue.url, prefix=queue.keys.prefix)
        got = await pykue.AsyncJob.get(job.id or 0)
        assert isinstance(got, pykue.AsyncJob) and got.queue is aq and got.data == {"x": 1}
        await aq.shutdown()

    asyncio.run(main())
    assert pykue.Job.get(job.id or 0).queue is queue  # the async queue did not replace the sync default


# -- sync listeners on their own thread ------------------------------------------------
def test_a_sync_call_from_the_engines_loop_raises_at_once(queue: pykue.Queue) -> None:
    outcome: list[BaseException] = []

    async def on_the_loop(job: pykue.Job) -> None:  # a coroutine handler runs on the engine's loop
        try:
            queue.process("other", lambda j: None)
        except BaseException as exc:
            outcome.append(exc)

    queue.create("t", {}).save()
    queue.process("t", on_the_loop)
    wait_for(lambda: outcome, timeout=10, what="process() to refuse (it used to wait 30 s)")
    assert isinstance(outcome[0], pykue.LoopThreadError)


def test_a_blocking_listener_does_not_stall_the_workers(queue: pykue.Queue) -> None:
    release = threading.Event()
    blocked = threading.Event()
    first = queue.create("t", {})
    first.on("complete", lambda result: (blocked.set(), release.wait(20)))
    first.save()
    queue.save_many(queue.create("t", {"i": i}) for i in range(30))
    try:
        queue.process("t", 2, lambda j: time.sleep(0.01))
        assert blocked.wait(10)
        wait_for(lambda: queue.complete_count("t") == 31, timeout=10, what="jobs to run while a listener blocks")
        assert not release.is_set()
    finally:
        release.set()


def test_a_listener_may_call_the_queue(queue: pykue.Queue) -> None:
    ran = threading.Event()
    errors: list[BaseException] = []

    def start_second(result: Any) -> None:
        try:
            queue.process("second", lambda j: ran.set())
        except BaseException as exc:
            errors.append(exc)

    job = queue.create("first", {})
    job.on("complete", start_second)
    job.save()
    queue.create("second", {}).save()
    queue.process("first", lambda j: None)
    assert ran.wait(10), errors  # used to deadlock for 30 s


def test_coroutine_listeners_of_the_sync_api_run_too(queue: pykue.Queue) -> None:
    heard = threading.Event()

    async def on_complete(result: Any) -> None:
        await asyncio.sleep(0)
        heard.set()

    job = queue.create("c", {})
    job.on("complete", on_complete)
    job.save()
    queue.process("c", lambda j: 1)
    assert heard.wait(10)


def test_finished_jobs_are_not_kept_alive_by_their_listeners(queue: pykue.Queue) -> None:
    refs = []
    heard = []
    for i in range(20):
        job = queue.create("gc", {"blob": "x" * 10_000, "i": i})
        job.on("complete", lambda result, j=job: heard.append(j.id))  # the idiom captures the job
        job.save()
        refs.append(weakref.ref(job))
    del job
    queue.process("gc", 4, lambda j: None)
    wait_for(lambda: len(heard) == 20, what="20 complete events")
    heard.clear()
    wait_for(lambda: gc.collect() >= 0 and sum(r() is not None for r in refs) == 0, what="finished jobs to be freed")


def test_async_queue_on_subscribes_by_itself(url: str, prefix: str, r: redis.Redis) -> None:
    producer = pykue.create_queue(url, prefix=prefix, settings=FAST)

    async def main() -> None:
        q = pykue.create_async_queue(url, prefix=prefix, settings=FAST)
        got = asyncio.Event()
        ids: list[int] = []
        q.on("job complete", lambda job_id, result: (ids.append(job_id), got.set()))
        deadline = time.monotonic() + 10
        while r.pubsub_numsub(f"{prefix}:events")[0][1] < 1:  # nothing but on() was called
            assert time.monotonic() < deadline, "AsyncQueue.on did not subscribe"
            await asyncio.sleep(0.01)
        job = producer.create("t", {}).save()  # saved and run elsewhere
        producer.process("t", lambda j: "ok")
        await asyncio.wait_for(got.wait(), 10)
        assert ids == [job.id]
        await q.shutdown()

    try:
        asyncio.run(asyncio.wait_for(main(), 60))
    finally:
        producer.shutdown(1)


# -- issue 10 item 6: a creator hears every event of its own job ---------------------------
EVENTS = ("enqueue", "start", "progress", "complete")


def test_a_creator_hears_every_event_of_its_own_jobs(twin: Twin, url: str, prefix: str) -> None:
    worker = subprocess.Popen([PY, str(ROOT / "tests" / "worker_proc.py"), url, prefix, "ev", "report", "4"],
                              env=py_env(), stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
        q = twin.queue(prefix)
        heard: dict[str, set[int]] = {ev: set() for ev in EVENTS}
        ids = []
        for i in range(200):
            job = q.create("ev", {"i": i})
            for ev in EVENTS:
                job.on(ev, lambda *args, ev=ev, j=job: heard[ev].add(j.id))
            ids.append(job.save().id)
        wait_for(lambda: len(heard["complete"]) == 200, timeout=30, what="200 complete events")
        assert {ev: len(got) for ev, got in heard.items()} == dict.fromkeys(EVENTS, 200)
        assert all(got == set(ids) for got in heard.values())
    finally:
        worker.terminate()
        worker.communicate(timeout=10)


# -- the README tells the truth about the twins ---------------------------------------
def test_readme_lists_each_twins_names() -> None:
    proc = subprocess.run([PY, "scripts/twin_names.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    block = (ROOT / "README.md").read_text().split("<!-- twin-names")[1].split("<!-- /twin-names -->")[0]
    assert "`save_many`" in block and "`set_state`" in block  # the list is really there


def test_readme_asyncio_quick_start_runs_as_written(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text()
    section = text.split("The same with asyncio")[1]
    code = section.split("```python\n")[1].split("```")[0]
    script = tmp_path / "quick_start.py"
    script.write_text(code)
    proc = subprocess.run([PY, str(script)], env=py_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "sent: ok\n"
