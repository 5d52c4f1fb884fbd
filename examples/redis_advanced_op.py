"""Seed task 4 (4-redis_advanced_op.js): a hash set field by field, then read whole."""

from __future__ import annotations

from redis_client import connect, redis_print, with_callback

SCHOOLS = {"Portland": 50, "Seattle": 80, "New York": 20, "Bogota": 20, "Cali": 40, "Paris": 2}

if __name__ == "__main__":
    client = connect()
    for city, value in SCHOOLS.items():
        with_callback(lambda c=city, v=value: client.hset("HolbertonSchools", c, v), redis_print)
    with_callback(lambda: client.hgetall("HolbertonSchools"), lambda err, reply: print(reply, flush=True))
