"""Seed task 0: write a dump.rdb (Holberton -> School) with a real Redis server.

    python examples/make_dump.py                 # a fresh file in a temporary directory (printed)
    python examples/make_dump.py --output FILE   # FILE (also: make_dump.py FILE)
    python examples/make_dump.py --force         # regenerate the tracked dump.rdb at the repository root

The tracked dump.rdb is never rewritten unless asked (--force, or --output naming it).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import redis

from pykue import EmbeddedRedis

TRACKED = Path(__file__).resolve().parent.parent / "dump.rdb"


def make_dump(out: Path) -> None:
    with EmbeddedRedis() as srv:
        client = redis.Redis.from_url(srv.url)
        client.set("Holberton", "School")
        client.save()
        client.close()
        shutil.copy(Path(srv.dir) / "dump.rdb", out)


def output_path(args: argparse.Namespace) -> Path:
    chosen = args.output or args.file
    if chosen:
        return Path(chosen)
    if args.force:
        return TRACKED
    return Path(tempfile.mkdtemp(prefix="make-dump-")) / "dump.rdb"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", nargs="?", help="where to write (same as --output)")
    parser.add_argument("--output", help="where to write")
    parser.add_argument("--force", action="store_true", help="rewrite the tracked dump.rdb")
    out = output_path(parser.parse_args())
    make_dump(out)
    print(f"wrote {out}")
