"""A worker process for the tests: python worker_proc.py URL PREFIX TYPE MODE [CONCURRENCY [LEASE_MS]]

MODE slow: each job appends its id to PREFIX:ran, sleeps 0.2 s, completes.
MODE report: progress 50%, then fails jobs whose data has "fail", completes the rest.
MODE record: each start is recorded (see `record_start`); the job works for data["ms"] ms.
MODE stall: as record; a job whose data has "stall" also stalls Redis (DEBUG SLEEP 1 on its
  own connection, from a thread), returns once Redis is seen stalled, and prints "stalled"
  0.2 s later, so the test can SIGSTOP this process while the claim it sent next waits in Redis.
Prints "ready" once it is processing; exits on SIGTERM after a graceful shutdown.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import threading
import time
from typing import Any

import redis
from redis.exceptions import OutOfMemoryError

import pykue
from pykue import Settings

SEP = "|"


def record_start(client: redis.Redis, prefix: str, job: pykue.Job, who: str, patience: float = 120) -> None:
    """Append "id|state|owned|who|lag_ms" to PREFIX:starts: the job's state when its handler
    started, whether Redis still named this worker's token as its owner, and how long after
    the worker's lease check that was read (a process paused right after the check reads
    late). Retried while Redis is down, loading or full: the record must not fail the job."""
    deadline = time.monotonic() + patience
    started = getattr(getattr(job, "lease", None), "started", None)
    while True:
        try:
            lag = "-" if started is None else str(int((time.monotonic() - started) * 1000))
            with client.pipeline(transaction=True) as p:
                p.hget(f"{prefix}:job:{job.id}", "state")
                p.hget(f"{prefix}:pykue:owners", str(job.id))
                state, owner = p.execute()
            client.rpush(f"{prefix}:starts", SEP.join((str(job.id), str(state), str(owner == job.token), who, lag)))
            return
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, OutOfMemoryError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def bad_start(record: list[str], lease_ms: int) -> str | None:
    """Classify a start record: None (fine), "defect" (a handler let start on a job that was
    finished or not ours) or "paused" (the job was ours at the lease check, but the process
    stalled longer than the check's margin, lease/3, before the handler's first read: the
    job was taken from a handler already running, an at-least-once re-run)."""
    _, state, owned, _, lag = record
    if state == "active" and owned == "True":
        return None
    return "paused" if lag != "-" and int(lag) > lease_ms / 3 else "defect"


def main() -> None:
    faulthandler.register(signal.SIGUSR1)  # a test that times out can ask where it hangs
    url, prefix, job_type, mode = sys.argv[1:5]
    concurrency = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    lease = int(sys.argv[6]) if len(sys.argv) > 6 else 1000
    settings = Settings(lease_ms=lease, promote_interval=0.05, reap_interval=0.1, block_timeout=0.2)
    queue = pykue.create_queue(url, prefix=prefix, settings=settings)
    recorder = redis.Redis.from_url(url, decode_responses=True)
    who = f"pid{os.getpid()}"

    def slow(job: pykue.Job) -> Any:
        queue.client.rpush(f"{prefix}:ran", job.id)
        time.sleep(0.2)
        return {"done": job.id}

    def report(job: pykue.Job) -> Any:
        job.progress(50, 100)
        if job.data.get("fail"):
            raise RuntimeError(f"job {job.id} asked to fail")
        return "ok"

    def stall_redis() -> None:
        sleeper = redis.Redis.from_url(url, socket_timeout=10)
        probe = redis.Redis.from_url(url, socket_timeout=0.05)
        sleeper.ping(), probe.ping()  # both connected before the stall
        threading.Thread(target=sleeper.execute_command, args=("DEBUG", "SLEEP", "1"), daemon=True).start()
        while True:
            try:
                probe.ping()
            except redis.TimeoutError:
                break  # Redis is stalled now: whatever we send next waits for it
            time.sleep(0.005)
        threading.Timer(0.2, lambda: print("stalled", flush=True)).start()

    def record(job: pykue.Job) -> Any:
        record_start(recorder, prefix, job, who)
        if mode == "stall" and job.data.get("stall"):
            stall_redis()
        if job.data.get("ms") and getattr(job, "lease", None) is not None:
            job.lease.revoked.wait(job.data["ms"] / 1000)  # work that stops early once the job is taken
        return job.id

    handlers = {"slow": slow, "report": report, "record": record, "stall": record}
    queue.process(job_type, concurrency, handlers[mode])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    while not stop.wait(0.2):  # a bare wait() may miss a signal delivered to another thread
        pass
    queue.shutdown(2)


if __name__ == "__main__":
    main()
