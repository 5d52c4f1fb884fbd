"""`pykue demo`: the seed's task 8-9 pipeline, end to end, on a Redis of its own.

Starts the embedded Redis (unless a URL is given), runs the processor and the creator as
two processes (the seed's two terminals), prints their lines as they come, and stops
everything cleanly once all eleven jobs are settled.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import threading

from pykue.server import EmbeddedRedis


def run(redis_url: str | None = None, prefix: str = "q") -> int:
    server = None if redis_url else EmbeddedRedis().start()
    url = redis_url or (server.url if server else "")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "pykue.apps.notifications"]
    opts = ["--redis", url, "--prefix", prefix]
    print(f"pykue demo: Redis at {url}" + (" (embedded)" if server else ""), flush=True)
    lock = threading.Lock()

    def relay(proc: subprocess.Popen[str]) -> threading.Thread:
        """Whole lines from both processes, never two half-lines glued together."""

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                with lock:
                    sys.stdout.write(line)
                    sys.stdout.flush()

        t = threading.Thread(target=pump, daemon=True)
        t.start()
        return t

    spawn = functools.partial(subprocess.Popen, env=env, stdout=subprocess.PIPE, text=True)
    processor = spawn([*cmd, "processor", *opts])
    pumps = [relay(processor)]
    try:
        creator = spawn([*cmd, "creator", *opts])
        pumps.append(relay(creator))
        code = creator.wait()
    finally:
        processor.send_signal(signal.SIGTERM)
        try:
            processor.wait(15)
        except subprocess.TimeoutExpired:
            processor.kill()
        for t in pumps:
            t.join(5)
        if server is not None:
            server.close()
    print("pykue demo: done", flush=True)
    return code
