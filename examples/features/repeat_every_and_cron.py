"""Repeatable jobs: every N ms or on a cron schedule, fired once per tick by whichever worker
process sees it first (no beat process), with missed ticks not replayed in a burst.

python examples/features/repeat_every_and_cron.py
"""

from __future__ import annotations

import itertools
import threading

import pykue
from pykue import Settings

with pykue.create_queue(embedded=True, settings=Settings(repeat_interval=0.02)) as queue:
    nightly = queue.repeat("report", {"kind": "daily"}, cron="0 9 * * *", tz="Europe/Paris", key="daily-report")
    print(f"{nightly.key}: cron {nightly.cron} in {nightly.tz}")

    beats: list[int] = []
    enough = threading.Event()

    def beat(job: pykue.Job) -> None:
        beats.append(int(job.fields["pykue_tick"]))
        if len(beats) == 3:
            enough.set()

    queue.repeat("heartbeat", {"from": "example"}, every_ms=100, key="hb")
    queue.process("heartbeat", beat)
    enough.wait(10)
    queue.unrepeat("hb")
    # a tick no process could fire in time (a busy machine) is skipped, never fired twice or late in a burst
    gaps = [b - a for a, b in itertools.pairwise(beats[:3])]
    print("three heartbeats, each on its own 100 ms tick:", all(g > 0 and g % 100 == 0 for g in gaps))
    print("schedules left:", [s.key for s in queue.schedules()])
