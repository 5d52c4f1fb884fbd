"""pykue: a Redis job queue that speaks Kue 0.11's protocol, with atomic transitions.

import pykue
queue = pykue.create_queue()                       # kue.createQueue()
queue.create("email", {"to": "a@b"}).priority("high").save()
queue.process("email", 2, lambda job: send(job.data))
"""

from ._api_async import AsyncJob
from ._api_sync import Job
from ._aqueue import AsyncQueue, create_async_queue
from ._codec import PRIORITIES, register_backoff
from ._errors import (
    InvalidJobError,
    JobFailedError,
    JobNotFoundError,
    JobStateError,
    LoopThreadError,
    NoQueueError,
    PykueError,
    RedisOutOfMemoryError,
    ServerError,
    ShutdownError,
    WaitTimeoutError,
)
from ._handler_client import AsyncSharedRedis, SharedRedis
from ._keys import STATES, TERMINAL_STATES, WAITING_STATES, Keys, State
from ._queue import Queue, create_queue
from ._schedule import Schedule
from ._supervisor import run_workers
from ._worker import Settings
from .connection import ConnectionSettings
from .server import EmbeddedRedis

__version__ = "0.1.0"

__all__ = [
    "PRIORITIES",
    "STATES",
    "TERMINAL_STATES",
    "WAITING_STATES",
    "AsyncJob",
    "AsyncQueue",
    "AsyncSharedRedis",
    "ConnectionSettings",
    "EmbeddedRedis",
    "InvalidJobError",
    "Job",
    "JobFailedError",
    "JobNotFoundError",
    "JobStateError",
    "Keys",
    "LoopThreadError",
    "NoQueueError",
    "PykueError",
    "Queue",
    "RedisOutOfMemoryError",
    "Schedule",
    "ServerError",
    "Settings",
    "SharedRedis",
    "ShutdownError",
    "State",
    "WaitTimeoutError",
    "create_async_queue",
    "create_queue",
    "register_backoff",
    "run_workers",
]
