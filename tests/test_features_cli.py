"""Issue 12's CLI: `pykue limit` and `pykue enqueue --unique/--after`, as an operator runs them."""

from __future__ import annotations

import redis

import pykue
from tests.test_cli import cli


def test_limit_command_sets_lists_and_clears(url: str, prefix: str, r: redis.Redis) -> None:
    common = ["--redis", url, "--prefix", prefix]
    assert cli("limit", "mail", "--max", "10", "--per", "1s", *common).stdout == "mail: 10 per 1000 ms\n"
    cli("limit", "sms", "--max", "2", "--per", "5m", *common)
    assert cli("limit", *common).stdout == "mail: 10 per 1000 ms\nsms: 2 per 300000 ms\n"
    assert r.hgetall(f"{prefix}:pykue:limits") == {"mail": "10:1000", "sms": "2:300000"}
    assert cli("limit", "mail", "--clear", *common).stdout == "sms: 2 per 300000 ms\nmail: no limit\n"
    for bad in (
        ["mail"],
        ["mail", "--max", "0"],
        ["mail", "--max", "2", "--per", "soon"],
        ["mail", "--clear", "--max", "1"],
    ):
        out = cli("limit", *bad, *common, ok=False)
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert r.hgetall(f"{prefix}:pykue:limits") == {"sms": "2:300000"}


def test_enqueue_unique_and_after(url: str, prefix: str) -> None:
    common = ["--redis", url, "--prefix", prefix]
    first = cli("enqueue", "report", '{"day": 1}', "--unique", "day1", *common).stdout.strip()
    again = cli("enqueue", "report", '{"day": 1}', "--unique", "day1", *common)
    assert again.stdout.strip() == first and "holds the key 'day1'" in again.stderr
    child = cli("enqueue", "mail", "{}", "--after", first, "--on-failure", "run", *common).stdout.strip()
    with pykue.create_queue(url, prefix=prefix) as q:
        assert q.card() == 2
        job = q.get_job(child)
        assert job.state == "delayed" and job.fields["pykue_after"] == first
    missing = cli("enqueue", "mail", "{}", "--after", "999", *common, ok=False)
    assert missing.returncode == 2 and "dependency job '999' does not exist" in missing.stderr
