"""Run N worker processes under one supervisor: Python's worker is one core at most.

One asyncio worker process saturates one core long before Redis does, so using a
machine means several processes. The supervisor starts them (spawned, never forked:
a fork of a process with a Redis client and an event-loop thread inherits their
sockets and locks), restarts one that dies with a growing delay (a crash loop must
not spin a core), and stops all of them gracefully on SIGTERM/SIGINT: each child
gets SIGTERM once, finishes or hands back its jobs, and exits; a second signal, or
a child still alive after `stop_timeout`, is met with SIGKILL. A child that exits 0
on its own (a burst worker that drained its queue) is done and is not restarted.

A child is signalled only once it told the supervisor it booted (a SIGTERM during the
interpreter's start-up would kill it with the default action, uncleanly); until the
target installs its own handlers, a stop unwinds it with SystemExit(0).

Children run in their own process group, so a terminal's Ctrl-C reaches only the
supervisor, which then signals each child exactly once; and each child asks the
kernel for SIGTERM when its parent dies, so a supervisor killed with -9 leaves no
worker behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

log = logging.getLogger("pykue.supervisor")

HEALTHY_AFTER = 10.0  # a child that lived this long resets its restart delay


def default_processes() -> int:
    """One per core this process may run on (the affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _unwind(signum: int, frame: FrameType | None) -> None:
    """A stop before the target took over signals: unwind (finally blocks run), exit clean."""
    raise SystemExit(0)


def use_uvloop() -> bool:
    """Make uvloop the event loop of this process (pykue's sync queue and asyncio.run take theirs
    from the policy): its loop costs less CPU per job than asyncio's. False if uvloop is absent
    or PYKUE_UVLOOP=0."""
    if os.environ.get("PYKUE_UVLOOP", "1") == "0":
        return False
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def _child_main(booted: Connection, target: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    """Entry point of a worker process: detach from the terminal's signals, die with the parent,
    then tell the supervisor it may be signalled (a SIGTERM during the interpreter's start-up
    would kill it uncleanly, so the supervisor waits for this before it stops a child)."""
    os.setpgid(0, 0)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent died before prctl: nobody would stop us
            return
    for sig in (signal.SIGINT, signal.SIGTERM):  # until the target installs its own graceful handlers
        signal.signal(sig, _unwind)
    use_uvloop()
    booted.send_bytes(b"up")
    booted.close()
    target(*args, **kwargs)


@dataclass
class _Slot:
    """One worker position: its current process and its restart bookkeeping."""

    index: int
    proc: BaseProcess | None = None
    booted: Connection | None = None  # readable once the child may be signalled
    started: float = 0.0
    delay: float = 0.0
    restart_at: float | None = None
    restarts: int = 0
    done: bool = False
    codes: list[int] = field(default_factory=list)


def _exit_code(proc: BaseProcess) -> int:
    code = proc.exitcode
    if code is None:
        return 0
    return 128 - code if code < 0 else code  # -9 (killed by SIGKILL) -> 137, like a shell


class Supervisor:
    """Keeps `processes` copies of `target` running; see the module docstring."""

    def __init__(self, target: Callable[..., Any], processes: int | None = None, *, args: Sequence[Any] = (),
                 kwargs: Mapping[str, Any] | None = None, restart_delay: float = 0.5, max_restart_delay: float = 30.0,
                 stop_timeout: float = 60.0, restart: bool = True) -> None:  # fmt: skip
        n = default_processes() if processes is None else processes
        if n < 1:
            raise ValueError(f"processes must be >= 1; got {n}")
        if restart_delay <= 0 or max_restart_delay < restart_delay:
            raise ValueError("restart_delay > 0 and max_restart_delay >= restart_delay are required")
        self.target, self.args, self.kwargs = target, tuple(args), dict(kwargs or {})
        self.restart_delay, self.max_restart_delay, self.stop_timeout = restart_delay, max_restart_delay, stop_timeout
        self.restart = restart
        self.slots = [_Slot(i) for i in range(n)]
        self._ctx = multiprocessing.get_context("spawn")
        self._signals = 0

    # -- running -----------------------------------------------------------------
    def run(self) -> int:
        """Block until every child is done or a stop signal arrived; the exit code (0: all clean)."""
        rfd, wfd = os.pipe()
        os.set_blocking(wfd, False)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        old_fd = signal.set_wakeup_fd(wfd)
        try:
            for slot in self.slots:
                self._start(slot)
            while not self._signals and not all(s.done for s in self.slots):
                self._step(rfd)
            if self._signals:
                self._stop_all(rfd)
        finally:
            signal.set_wakeup_fd(old_fd)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.close(rfd)
            os.close(wfd)
        return self._result()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals > 1:  # asked twice: stop now
            self._kill_all()

    def _start(self, slot: _Slot) -> None:
        booted, child_end = self._ctx.Pipe(duplex=False)
        proc = self._ctx.Process(target=_child_main, args=(child_end, self.target, self.args, self.kwargs),
                                 name=f"pykue-worker-{slot.index}", daemon=False)  # fmt: skip
        proc.start()
        child_end.close()
        slot.proc, slot.booted, slot.started, slot.restart_at = proc, booted, time.monotonic(), None
        log.info("worker %d started (pid %s)", slot.index, proc.pid)

    def _step(self, rfd: int) -> None:
        now = time.monotonic()
        pending = [s.restart_at for s in self.slots if s.restart_at is not None]
        timeout = max(0.0, min(pending) - now) if pending else None
        sentinels = [s.proc.sentinel for s in self.slots if s.proc is not None and s.restart_at is None and not s.done]
        ready = wait([*sentinels, rfd], timeout)
        if rfd in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(rfd, 64)
        for slot in self.slots:
            self._check(slot, time.monotonic())

    def _check(self, slot: _Slot, now: float) -> None:
        if slot.done or self._signals:
            return
        if slot.restart_at is not None:
            if now >= slot.restart_at:
                self._start(slot)
            return
        if slot.proc is None or slot.proc.is_alive():
            return
        code = _exit_code(slot.proc)
        slot.proc.close()
        slot.proc = None
        if slot.booted is not None:
            slot.booted.close()
            slot.booted = None
        slot.codes.append(code)
        if code == 0 or not self.restart:
            slot.done = True
            return
        lived = now - slot.started
        slot.delay = self.restart_delay if lived >= HEALTHY_AFTER or not slot.delay else slot.delay * 2
        slot.delay = min(slot.delay, self.max_restart_delay)
        slot.restart_at, slot.restarts = now + slot.delay, slot.restarts + 1
        log.warning("worker %d exited with %d after %.1f s; restarting in %.1f s", slot.index, code, lived, slot.delay)

    # -- stopping ----------------------------------------------------------------
    def _live(self) -> list[BaseProcess]:
        return [s.proc for s in self.slots if s.proc is not None and s.proc.is_alive()]

    def _stop_all(self, rfd: int) -> None:
        """SIGTERM each child once it has booted; wait for all until `stop_timeout`, then SIGKILL."""
        signalled: set[int] = set()
        deadline = time.monotonic() + self.stop_timeout
        while (live := self._live()) and time.monotonic() < deadline:
            waiting = []
            for slot in self.slots:
                proc = slot.proc
                if proc is None or proc not in live or id(proc) in signalled:
                    continue
                if slot.booted is not None and not slot.booted.poll():
                    waiting.append(slot.booted)
                    continue
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid or 0, signal.SIGTERM)
                signalled.add(id(proc))
            ready = wait([p.sentinel for p in live] + waiting + [rfd], max(0.0, deadline - time.monotonic()))
            if rfd in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(rfd, 64)
        self._kill_all()
        for slot in self.slots:
            if slot.proc is not None:
                slot.proc.join()
                slot.codes.append(_exit_code(slot.proc))

    def _kill_all(self) -> None:
        for proc in self._live():
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid or 0, signal.SIGKILL)

    def _result(self) -> int:
        """0 when the last exit of every slot was clean; otherwise the first bad one."""
        for slot in self.slots:
            if slot.codes and slot.codes[-1] != 0:
                return slot.codes[-1]
        return 0


def run_workers(target: Callable[..., Any], processes: int | None = None, *, args: Sequence[Any] = (),
                kwargs: Mapping[str, Any] | None = None, restart_delay: float = 0.5, max_restart_delay: float = 30.0,
                stop_timeout: float = 60.0, restart: bool = True) -> int:  # fmt: skip
    """Run `target(*args, **kwargs)` in `processes` supervised processes (default: one per core).

    `target` must be importable by name (a module-level function: children are spawned)
    and should process jobs until SIGTERM, e.g. `queue.process(...); queue.run_forever()`.
    restart=False: a child's exit, whatever its code, is final (one-shot runs such as `--burst`).
    Children run on uvloop when it is installed (PYKUE_UVLOOP=0: asyncio's own loop).
    Returns once all children exited 0 on their own, or after SIGTERM/SIGINT stopped them:
    0 if every child's last exit was clean, else that exit code (128+N for signal N).
    """
    delays = {"restart_delay": restart_delay, "max_restart_delay": max_restart_delay}
    return Supervisor(target, processes, args=args, kwargs=kwargs, stop_timeout=stop_timeout, restart=restart,
                      **delays).run()  # fmt: skip
