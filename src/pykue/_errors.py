"""Every error pykue raises on purpose.

PykueError
├── InvalidJobError        bad job options or data, refused before anything is written
├── JobNotFoundError       no job hash under that id
├── JobStateError          the job is not in a state that allows the operation
├── ServerError            the Redis server could not start, or refused the work
│   └── RedisOutOfMemoryError  Redis is full (maxmemory) and refused a write
├── ShutdownError          the queue is shutting down / was shut down
├── LoopThreadError        a sync call made from the sync queue's own event-loop thread
├── NoQueueError           Job.get without a queue before any queue was created
├── JobFailedError         job.wait(): the job failed for good (carries its error text)
└── WaitTimeoutError       job.wait(): no outcome within the timeout (also a TimeoutError)
"""

from __future__ import annotations

from redis.exceptions import OutOfMemoryError


class PykueError(Exception):
    """Base class of pykue's own errors."""


class InvalidJobError(PykueError, ValueError):
    """A job option or payload is invalid; nothing was written to Redis."""


class JobNotFoundError(PykueError, LookupError):
    """No job exists with that id."""

    def __init__(self, job_id: int | str) -> None:
        super().__init__(f'job "{job_id}" doesnt exist')
        self.job_id = job_id


class JobStateError(PykueError, ValueError):
    """The job's state refuses the operation (retrying a job that has not failed)."""

    def __init__(self, job_id: int | str, state: str, hint: str = "") -> None:
        super().__init__(f"job {job_id} is {state or 'in no state'}" + (f": {hint}" if hint else ""))
        self.job_id, self.state = job_id, state


class ServerError(PykueError, RuntimeError):
    """The embedded Redis server could not be started, or Redis refused the work."""


class RedisOutOfMemoryError(ServerError, OutOfMemoryError):
    """Redis reached `maxmemory` (policy noeviction) and refused to store the change.

    Also a redis-py `OutOfMemoryError` (so a `RedisError`), which code that retries Redis
    errors already handles. Free memory, raise maxmemory, or drain queues, then retry.
    """


class ShutdownError(PykueError, RuntimeError):
    """The queue is shut down."""


class LoopThreadError(PykueError, RuntimeError):
    """A sync queue call that needs the engine's loop was made from that loop's thread
    (it would wait for itself): do it from another thread."""


class NoQueueError(PykueError, LookupError):
    """No queue of that kind has been created yet."""


class JobFailedError(PykueError):
    """The job a caller waited for failed for good; `error` is the text it failed with."""

    def __init__(self, job_id: int | str, error: str) -> None:
        super().__init__(f"job {job_id} failed: {error}")
        self.job_id = job_id
        self.error = error


class WaitTimeoutError(PykueError, TimeoutError):
    """job.wait() saw no outcome in time; the job itself is untouched and may still finish."""
