"""The worker's one background thread that claims long runs: due order, cancellation, failures contained."""

from __future__ import annotations

import threading

from core.services.scheduler import Scheduler


def test_scheduler_runs_due_callbacks_in_order_and_skips_cancelled_ones() -> None:
    scheduler = Scheduler()
    ran: list[str] = []
    done = threading.Event()

    scheduler.call_later(0.10, lambda: (ran.append("late"), done.set()))
    cancelled = scheduler.call_later(0.02, lambda: ran.append("cancelled"))
    scheduler.call_later(0.05, lambda: ran.append("early"))
    cancelled.cancelled = True

    assert done.wait(timeout=5)
    assert ran == ["early", "late"]


def test_scheduler_keeps_running_after_a_callback_fails() -> None:
    scheduler = Scheduler()
    done = threading.Event()

    def fail() -> None:
        raise RuntimeError("claim failed")

    scheduler.call_later(0.01, fail)
    scheduler.call_later(0.03, done.set)

    assert done.wait(timeout=5)
