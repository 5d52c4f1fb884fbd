"""One worker for several job types, each with its own concurrency, logging one line per
job outcome (the records `pykue worker --log-format json` prints, here through the
standard logging module: pykue installs no handler of its own).

python examples/features/many_types_and_logging.py

The CLI equivalent: `pykue worker --handlers myapp.tasks:HANDLERS -c 2 --log-format json`.
"""

from __future__ import annotations

import logging
import sys
import threading

import pykue


def send_email(job: pykue.Job) -> str:
    return f"sent to {job.data['to']}"


def resize(job: pykue.Job) -> str:
    if job.data["file"].endswith(".bmp"):
        raise ValueError("bmp is not supported")
    return f"{job.data['file']} -> 128px"


# type -> handler (the default concurrency) or (concurrency, handler)
HANDLERS = {"email": send_email, "resize": (4, resize)}


class Outcomes(logging.Handler):
    """Each job outcome record carries its fields as attributes: print the ones we want."""

    def __init__(self, expected: int) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.expected, self.all_in = expected, threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        fields = ("job_id", "job_type", "outcome", "attempt", "error")
        self.lines.append(" ".join(str(getattr(record, f)) for f in fields).rstrip())
        if len(self.lines) == self.expected:
            self.all_in.set()


def main() -> None:
    outcomes = Outcomes(expected=4)
    logging.getLogger("pykue.jobs").addHandler(outcomes)
    logging.getLogger("pykue.jobs").setLevel(logging.INFO)
    queue = pykue.create_queue(embedded=True)
    queue.create("email", {"to": "ann@example.com"}).save()
    queue.create("resize", {"file": "a.png"}).save()
    queue.create("resize", {"file": "b.bmp"}, attempts=2).save()
    engines = queue.process_many(HANDLERS, concurrency=2)
    print("workers:", ", ".join(f"{e.type} x{e.concurrency}" for e in engines))
    if not outcomes.all_in.wait(30):
        sys.exit("timed out")
    queue.shutdown()
    for line in sorted(outcomes.lines):
        print(line)


main()
