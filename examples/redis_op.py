"""Seed task 2 (1-redis_op.js): set and read a key, callback style, with a reply printer."""

from __future__ import annotations

import redis

from redis_client import connect, redis_print, with_callback

client: redis.Redis = connect()


def set_new_school(school_name: str, value: str) -> None:
    with_callback(lambda: client.set(school_name, value), redis_print)


def display_school_value(school_name: str) -> None:
    with_callback(lambda: client.get(school_name), lambda err, reply: print(reply, flush=True))


if __name__ == "__main__":
    display_school_value("Holberton")
    set_new_school("HolbertonSanFrancisco", "100")
    display_school_value("HolbertonSanFrancisco")
