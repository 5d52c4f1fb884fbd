"""Seed task 5 (5-publisher.js): publish four messages 100 ms apart."""

from __future__ import annotations

import threading

from redis_client import connect

CHANNEL = "holberton school channel"
client = connect()


def publish_message(message: str, time: int) -> threading.Timer:
    """After `time` ms, say so and publish `message` (the seed's setTimeout)."""

    def send() -> None:
        print(f"About to send {message}", flush=True)
        client.publish(CHANNEL, message)

    timer = threading.Timer(time / 1000, send)
    timer.start()
    return timer


if __name__ == "__main__":
    timers = [
        publish_message("Holberton Student #1 starts course", 100),
        publish_message("Holberton Student #2 starts course", 200),
        publish_message("KILL_SERVER", 300),
        publish_message("Holberton Student #3 starts course", 400),
    ]
    for t in timers:
        t.join()
