"""pykue: a Redis job queue that speaks Kue 0.11's protocol, with atomic transitions.

import pykue
queue = pykue.create_queue()                       # kue.createQueue()
queue.create("email", {"to": "a@b"}).priority("high").save()
queue.process("email", 2, lambda job: send(job.data))
"""

from ._aqueue import AsyncQueue, create_async_queue
from ._codec import PRIORITIES, register_backoff
from ._errors import (
    InvalidJobError,
    JobNotFoundError,
    PykueError,
    RedisOutOfMemoryError,
    ServerError,
    ShutdownError,
)
from ._job import AsyncJob, Job
from ._keys import STATES, Keys
from ._queue import Queue, create_queue
from ._worker import Settings
from .server import EmbeddedRedis

__version__ = "0.1.0"

__all__ = [
    "PRIORITIES",
    "STATES",
    "AsyncJob",
    "AsyncQueue",
    "EmbeddedRedis",
    "InvalidJobError",
    "Job",
    "JobNotFoundError",
    "Keys",
    "PykueError",
    "Queue",
    "RedisOutOfMemoryError",
    "ServerError",
    "Settings",
    "ShutdownError",
    "create_async_queue",
    "create_queue",
    "register_backoff",
]
