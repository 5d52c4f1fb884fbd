"""Seed task 5 (5-subscriber.js): print messages on the channel until KILL_SERVER."""

from __future__ import annotations

from redis_client import connect

CHANNEL = "holberton school channel"

if __name__ == "__main__":
    client = connect()
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(CHANNEL)
    for message in pubsub.listen():
        print(message["data"], flush=True)
        if message["data"] == "KILL_SERVER":
            pubsub.unsubscribe(CHANNEL)
            break
    pubsub.close()
    client.close()
