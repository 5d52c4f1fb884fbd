"""Seed task 0: write dump.rdb (Holberton -> School) with a real Redis server.

python examples/make_dump.py [OUTPUT]    # default: dump.rdb at the repository root
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import redis

from pykue import EmbeddedRedis

if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "dump.rdb"
    with EmbeddedRedis() as srv:
        client = redis.Redis.from_url(srv.url)
        client.set("Holberton", "School")
        client.save()
        client.close()
        shutil.copy(Path(srv.dir) / "dump.rdb", out)
    print(f"wrote {out}")
