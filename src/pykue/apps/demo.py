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
    children = [spawn([*cmd, "processor", *opts])]
    pumps = [relay(children[0])]
    try:
        children.append(spawn([*cmd, "creator", *opts]))
        pumps.append(relay(children[1]))
        code = children[1].wait()
    finally:  # also on SIGTERM/Ctrl-C: no child and no private Redis outlives the demo
        for child in reversed(children):
            stop(child)
        for t in pumps:
            t.join(5)
        if server is not None:
            server.close()
    print("pykue demo: done" if code == 0 else f"pykue demo: the creator exited with code {code}", flush=True)
    return code


def stop(child: subprocess.Popen[str]) -> None:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
    try:
        child.wait(15)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
