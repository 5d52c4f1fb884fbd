"""The handlers' shared Redis client (`queue.redis`): many callers on one auto-pipelined
connection, each answered in its own order, errors per command, a dropped connection failing
only what was in flight (never sent twice), and the thread-safe sync twin. Real Redis only."""

from __future__ import annotations

import asyncio
import subprocess
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import redis
import uvloop

import pykue
from pykue import AsyncSharedRedis, EmbeddedRedis, SharedRedis
from pykue._errors import LoopThreadError
from pykue._handler_client import ClientClosedError, ConnectionLostError
from tests.conftest import FAST, PY, ROOT, py_env
from tests.helpers import wait_for


def arun(body: Callable[[], Awaitable[Any]], loop: str = "asyncio") -> Any:
    factory = uvloop.new_event_loop if loop == "uvloop" else None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(body())  # type: ignore[arg-type]


LOOPS = pytest.mark.parametrize("loop", ["asyncio", "uvloop"])  # supervised workers run on uvloop


def connected(r: redis.Redis) -> int:
    return int(r.info("clients")["connected_clients"])


@pytest.fixture
def own() -> Iterator[EmbeddedRedis]:
    """A private server: these tests kill connections and restart Redis."""
    with EmbeddedRedis() as srv:
        yield srv


# -- asyncio -------------------------------------------------------------------------------
@LOOPS
def test_many_concurrent_callers_share_one_connection_and_get_their_own_replies_in_order(
    url: str, prefix: str, r: redis.Redis, loop: str
) -> None:
    callers, each = 300, 20
    before = connected(r)

    async def body() -> None:
        client = AsyncSharedRedis(url)

        async def caller(i: int) -> list[Any]:
            key = f"{prefix}:list:{i}"
            got = [await client.rpush(key, f"{i}-{n}") for n in range(each)]  # lengths 1..each, in order
            got.append(await client.lrange(key, 0, -1))
            return got

        results = await asyncio.gather(*(caller(i) for i in range(callers)))
        assert connected(r) == before + 1  # 300 callers, one connection: nothing to run out of
        for i, got in enumerate(results):
            assert got[:each] == list(range(1, each + 1))
            assert got[each] == [f"{i}-{n}" for n in range(each)]
        assert client.writes <= each + 3  # one write per loop iteration, not one per command
        await client.aclose()

    arun(body, loop)


def test_commands_issued_in_one_iteration_go_out_in_one_write_and_resolve_in_order(url: str, prefix: str) -> None:
    async def body() -> None:
        client = AsyncSharedRedis(url)
        await client.ping()
        writes = client.writes
        replies = await asyncio.gather(*(client.incr(f"{prefix}:n") for _ in range(1000)))
        assert replies == list(range(1, 1001))
        assert client.writes == writes + 1
        await client.aclose()

    arun(body)


@LOOPS
def test_calls_are_coroutines_as_redis_pys_queued_in_the_order_they_are_made(url: str, prefix: str, loop: str) -> None:
    async def body() -> None:
        client = AsyncSharedRedis(url)
        first = client.set(f"{prefix}:k", "a")
        second = client.append(f"{prefix}:k", "b")  # made second: runs second, whichever is awaited first
        task = asyncio.create_task(client.get(f"{prefix}:k"))
        assert await second == 2
        assert await first is True
        assert await task == "ab"
        await client.aclose()

    arun(body, loop)


@LOOPS
def test_an_error_reply_fails_its_caller_only(url: str, prefix: str, loop: str) -> None:
    async def body() -> Any:
        client = AsyncSharedRedis(url)
        await client.set(f"{prefix}:s", "text")
        calls = [client.incr(f"{prefix}:n"), client.lpush(f"{prefix}:s", 1), client.get(f"{prefix}:s"),
                 client.eval("return redis.error_reply('MINE no')", 0), client.incr(f"{prefix}:n"),
                 client.hgetall(f"{prefix}:missing"), client.incr(f"{prefix}:s")]  # fmt: skip
        got = await asyncio.gather(*calls, return_exceptions=True)
        await client.aclose()
        return got

    ok1, wrongtype, text, mine, ok2, empty, not_int = arun(body, loop)
    assert (ok1, text, ok2, empty) == (1, "text", 2, {})
    assert isinstance(wrongtype, redis.ResponseError) and "WRONGTYPE" in str(wrongtype)
    assert isinstance(mine, redis.ResponseError) and "MINE no" in str(mine)
    assert isinstance(not_int, redis.ResponseError) and "not an integer" in str(not_int)


def test_a_dropped_connection_fails_what_was_in_flight_and_never_sends_it_again(own: EmbeddedRedis) -> None:
    """The server holds the INCR (CLIENT PAUSE WRITE), then the connection is killed: the INCR
    never ran, the caller is told so, the client does not resend it, and the next call works."""
    admin = redis.Redis.from_url(own.url)

    async def body() -> None:
        client = AsyncSharedRedis(own.url)
        conn_id = await client.client_id()
        admin.client_pause(5000, all=False)  # write commands wait; CLIENT KILL does not
        held = client.incr("counter")
        await asyncio.to_thread(wait_for, lambda: _held(admin, conn_id), 5, "the INCR to be held by the server")
        admin.client_kill_filter(_id=conn_id)
        with pytest.raises(ConnectionLostError, match="may or may not have run"):
            await held
        admin.client_unpause()
        assert admin.get("counter") is None  # not sent again on a new connection
        assert await client.incr("counter") == 1  # reconnected on demand
        assert await client.client_id() != conn_id
        await client.aclose()

    arun(body)
    admin.close()


def _held(admin: redis.Redis, conn_id: int) -> bool:
    """The server has read the client's INCR and holds it, not run, for the pause (flag b)."""
    return any(int(c["id"]) == conn_id and "b" in c["flags"] and c["cmd"] == "incrby" for c in admin.client_list())


@LOOPS
def test_a_redis_restart_mid_stream_fails_callers_then_later_calls_work(own: EmbeddedRedis, loop: str) -> None:
    async def body() -> None:
        client = AsyncSharedRedis(own.url)
        errors: list[BaseException] = []
        ok = 0
        stop = asyncio.Event()

        async def caller() -> None:
            nonlocal ok
            while not stop.is_set():
                try:
                    await client.incr("n")
                    ok += 1
                except redis.ConnectionError as exc:
                    errors.append(exc)
                    await asyncio.sleep(0.01)

        tasks = [asyncio.create_task(caller()) for _ in range(50)]
        try:
            await asyncio.to_thread(wait_for, lambda: ok > 500, 10, "traffic")
            await asyncio.to_thread(own.stop)  # SIGKILL: whatever is in flight is lost with it
            await asyncio.to_thread(wait_for, lambda: errors, 10, "callers to be told")
            await asyncio.to_thread(own.start)
            after = ok
            await asyncio.to_thread(wait_for, lambda: ok > after + 500, 10, "calls to work again")
        finally:
            stop.set()
            await asyncio.gather(*tasks)
        assert all(isinstance(e, (ConnectionLostError, redis.ConnectionError)) for e in errors)
        assert await client.get("n") is not None
        await client.aclose()

    arun(body, loop)


def test_blocking_commands_wait_on_their_own_connections_not_the_shared_one(url: str, prefix: str) -> None:
    async def body() -> None:
        client = AsyncSharedRedis(url)
        waiting = [asyncio.ensure_future(client.blpop([f"{prefix}:q"], timeout=10)) for _ in range(120)]
        assert await client.incr(f"{prefix}:n") == 1  # answered while 120 BLPOPs wait
        for i in range(120):
            await client.rpush(f"{prefix}:q", i)
        got = await asyncio.gather(*waiting)  # past redis-py's 100: the pool waits, never raises
        assert sorted(int(v) for _, v in got) == list(range(120))
        await client.aclose()

    arun(body)


def test_commands_that_change_the_shared_connection_are_refused_and_pipeline_works(url: str, prefix: str) -> None:
    async def body() -> None:
        client = AsyncSharedRedis(url)
        with pytest.raises(redis.DataError, match="pipeline"):
            await client.execute_command("SELECT", 2)
        with pytest.raises(redis.DataError):
            await client.execute_command("MULTI")
        async with client.pipeline() as pipe:
            got = await pipe.incr(f"{prefix}:p").incr(f"{prefix}:p").execute()
        assert got == [1, 2]
        script = client.register_script("return redis.call('incrby', KEYS[1], ARGV[1])")
        assert await script(keys=[f"{prefix}:p"], args=[5]) == 7
        await client.aclose()
        with pytest.raises(ClientClosedError):
            await client.get(f"{prefix}:p")

    arun(body)


# -- sync -------------------------------------------------------------------------------------
def test_the_sync_twin_from_many_threads(url: str, prefix: str, r: redis.Redis) -> None:
    client = SharedRedis(url)
    client.ping()
    before = connected(r)
    r.set(f"{prefix}:s", "text")
    results: dict[int, list[Any]] = {}
    errors: list[BaseException] = []

    def thread(i: int) -> None:
        got = [client.rpush(f"{prefix}:t:{i}", n) for n in range(100)]
        try:
            client.lpush(f"{prefix}:s", 1)
        except redis.ResponseError as exc:
            errors.append(exc)
        got.append(client.get(f"{prefix}:s"))
        results[i] = got

    threads = [threading.Thread(target=thread, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert connected(r) == before  # 32 threads, still the one connection
    assert len(errors) == 32 and all("WRONGTYPE" in str(e) for e in errors)
    assert all(results[i] == [*range(1, 101), "text"] for i in range(32))
    assert client.incr(f"{prefix}:n") == 1
    client.close()
    with pytest.raises(ClientClosedError):
        client.get(f"{prefix}:n")


def test_the_sync_twin_refuses_to_block_its_own_loop(url: str) -> None:
    client = SharedRedis(url)
    future = asyncio.run_coroutine_threadsafe(_call_on_loop(client), client._loop)
    with pytest.raises(LoopThreadError):
        future.result(10)
    client.close()


async def _call_on_loop(client: SharedRedis) -> Any:
    return client.ping()


# -- the queues' hook ---------------------------------------------------------------------------
def test_async_handlers_use_queue_redis(url: str, prefix: str, r: redis.Redis) -> None:
    async def body() -> None:
        q = pykue.create_async_queue(url, prefix=prefix, settings=FAST)

        async def handler(job: pykue.AsyncJob) -> int:
            return int(await q.redis.incr(f"{prefix}:done"))

        await q.save_many(q.create("hc", {"i": i}) for i in range(300))
        await q.process("hc", 100, handler)
        await asyncio.to_thread(wait_for, lambda: r.get(f"{prefix}:done") == "300", 20, "300 jobs")
        shared = q.redis
        assert shared is q.redis  # one per queue
        await q.shutdown()
        with pytest.raises(ClientClosedError):
            await shared.get("x")

    arun(body)
    assert r.zcard(f"{prefix}:jobs:complete") == 300


def test_sync_handlers_use_queue_redis(queue: pykue.Queue, prefix: str, r: redis.Redis) -> None:
    queue.save_many(queue.create("hc", {"i": i}) for i in range(300))
    queue.process("hc", 32, lambda job: queue.redis.incr(f"{prefix}:done"))
    wait_for(lambda: r.get(f"{prefix}:done") == "300", 20, "300 jobs")
    wait_for(lambda: r.zcard(f"{prefix}:jobs:complete") == 300, 10, "completions")
    results = sorted(int(queue.get_job(i).result) for i in range(1, 301))
    assert results == list(range(1, 301))  # every INCR answered its own caller


def test_queue_redis_keeps_the_queues_credentials_and_db() -> None:
    with EmbeddedRedis() as srv:
        with redis.Redis.from_url(srv.url) as admin:
            admin.acl_setuser("worker", enabled=True, passwords=["+wpass"], keys=["*"], commands=["+@all"])
            admin.config_set("requirepass", "secret")
        q = pykue.create_queue(f"redis://worker:wpass@127.0.0.1:{srv.port}/3")
        assert q.redis.incr("n") == 1
        assert q.redis.acl_whoami() == "worker"
        q.shutdown(1)
        with redis.Redis(port=srv.port, password="secret", db=3, decode_responses=True) as check:
            assert check.get("n") == "1"


def test_the_readme_example_runs() -> None:
    out = subprocess.run([PY, str(ROOT / "examples" / "features" / "handler_redis.py")], env=py_env(),
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "asyncio: {'about': '2', 'home': '3', 'pricing': '1'} pages seen: 3",
        "sync: {'about': '2', 'home': '3', 'pricing': '1'}",
    ]
