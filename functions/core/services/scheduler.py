"""Callbacks at a due time, on one background thread per container: the worker's delayed claims and message
heartbeats. A thread per task run would cost more CPU than the rest of a quick task's handling."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)


class Scheduled:
    """A pending callback; `cancelled = True` skips it."""

    __slots__ = ("callback", "cancelled")

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.cancelled = False


class Scheduler:
    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._due: list[tuple[float, int, Scheduled]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def call_later(self, delay: float, callback: Callable[[], None]) -> Scheduled:
        entry = Scheduled(callback)
        with self._condition:
            item = (time.monotonic() + delay, next(self._order), entry)
            heapq.heappush(self._due, item)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="task-scheduler", daemon=True)
                self._thread.start()
            # Waking the thread costs a context switch per task; it only needs one when its next due time moved
            # earlier (runs schedule with the same delay, so usually it did not).
            if self._due[0] is item:
                self._condition.notify()
        return entry

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._due or self._due[0][0] > time.monotonic():
                    self._condition.wait(timeout=self._due[0][0] - time.monotonic() if self._due else None)
                now = time.monotonic()
                ready: list[Scheduled] = []
                while self._due and self._due[0][0] <= now:
                    ready.append(heapq.heappop(self._due)[2])
            for entry in ready:
                if entry.cancelled:
                    continue
                try:
                    entry.callback()
                except Exception:  # logged: one failed callback must not stop the claims of later runs
                    logger.exception("scheduled callback failed")


scheduler = Scheduler()
"""The container's one scheduler."""
