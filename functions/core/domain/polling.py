"""When a client polling a pending task should come back: the Retry-After of a 202, from what the record knows.

Worked out at each GET from the record alone (the task's declared `expected_seconds`, stored at submit; its claim's
`started_at`; its last progress report and when that was written), so that the result function needs no task
registry. The aim: a client that sleeps what it is told makes one or two GETs per task, and sees the outcome within
max(1 s, 10 % of the run) of its end.

- queued: the run has not started, so it cannot end before `expected_seconds` from now (plus the margin), nor
  before the rest of the queue wait that tasks of its kind have had lately (RecentRuns);
- running with progress: the rate so far (elapsed at the last report / progress) gives the remaining time;
- running without progress: started_at + expected_seconds;
- overdue, or nothing known: a tenth of the time the task has taken so far, so that the outcome is seen within 10 %
  of the run (polls spaced geometrically: O(log run time) of them), never less than the task's declared interval.

Always at least MIN_SECONDS (never "come back now") and at most MAX_SECONDS (an estimate may be wrong: a task
declared to take an hour that ends in a minute is still seen within the cap).
"""

from __future__ import annotations

import math

import msgspec

from core.domain.records import TaskRecord, TaskStatus

# Never "come back now": a task that ends at once is still given the time its run and outcome's write take.
MIN_SECONDS = 0.1
# A wrong estimate costs at most this much delay; also what the lrt client believes at most (lrt.client.PollPolicy).
MAX_SECONDS = 300.0
# Come back a little after the expected end rather than at it: the queue's pick-up and the outcome's write (tens of
# milliseconds), and the error of the estimate. Too early costs one more GET, which then finds the run's own start.
END_MARGIN_SECONDS = 0.1
END_MARGIN_FRACTION = 0.01
# Of the time taken so far, when nothing tells the end: the outcome is seen within this fraction of the run.
UNKNOWN_FRACTION = 0.1
# Progress below this says little about the rate (a task's first report is often 0 or nearly).
MIN_PROGRESS_FOR_RATE = 0.02


# How much each finished task moves the moving averages of RecentRuns.
RECENT_WEIGHT = 0.2


class _Average(msgspec.Struct):
    queue_wait: float
    run: float


class RecentRuns:
    """What one execution environment of the result function has seen of finished tasks, by kind: moving averages of
    their queue wait (started_at - created_at) and run (finished_at - started_at). Learned from the records its GETs
    read anyway, in memory: no request and no write. A new environment knows nothing yet, and answers as if the queue
    were empty and the run undeclared until it has seen a task of that kind end."""

    def __init__(self) -> None:
        self._by_task: dict[str, _Average] = {}

    def note(self, record: TaskRecord) -> None:
        if record.status is not TaskStatus.SUCCEEDED or record.started_at is None or record.finished_at is None:
            return
        wait, run = max(0.0, record.started_at - record.created_at), max(0.0, record.finished_at - record.started_at)
        seen = self._by_task.get(record.task)
        if seen is None:
            self._by_task[record.task] = _Average(wait, run)
        else:
            seen.queue_wait += RECENT_WEIGHT * (wait - seen.queue_wait)
            seen.run += RECENT_WEIGHT * (run - seen.run)

    def queue_wait(self, task: str) -> float | None:
        seen = self._by_task.get(task)
        return seen.queue_wait if seen else None

    def run_seconds(self, task: str) -> float | None:
        seen = self._by_task.get(task)
        return seen.run if seen else None


def retry_after(record: TaskRecord, now: float, recent: RecentRuns | None = None) -> float:
    """Seconds a client should wait before it polls this pending task again (MIN_SECONDS..MAX_SECONDS); `recent`:
    what this environment has seen of tasks of its kind lately."""
    if record.expected_seconds is None and recent is not None and (learned := recent.run_seconds(record.task)):
        record = msgspec.structs.replace(record, expected_seconds=learned)
    floor = max(MIN_SECONDS, float(record.retry_after_seconds) if record.expected_seconds is None else MIN_SECONDS)
    remaining = _remaining(record, now)
    if remaining is not None and record.status is TaskStatus.QUEUED:
        remaining += _queue_wait_left(record, now, recent)
    if remaining is None or (remaining <= 0 and record.status is TaskStatus.RUNNING):
        # Overdue or unknown: a tenth of the task's age so far.
        since = record.started_at if record.status is TaskStatus.RUNNING and record.started_at else record.created_at
        wait = UNKNOWN_FRACTION * max(0.0, now - since)
    else:
        wait = max(0.0, remaining) + END_MARGIN_SECONDS + END_MARGIN_FRACTION * (record.expected_seconds or remaining)
    return round(min(MAX_SECONDS, max(floor, wait)), 1)


def _remaining(record: TaskRecord, now: float) -> float | None:
    """The seconds until the task's expected end; None when nothing tells it."""
    if record.status is TaskStatus.QUEUED:
        # However long it has waited, once started it still has its whole run ahead.
        return record.expected_seconds
    if record.status is not TaskStatus.RUNNING or record.started_at is None:
        return None
    progress, reported = record.progress, record.progress_at
    if progress is not None and reported is not None and MIN_PROGRESS_FOR_RATE <= progress < 1.0:
        elapsed = reported - record.started_at
        if elapsed > 0:
            return record.started_at + elapsed / progress - now
    if record.expected_seconds is not None:
        return record.started_at + record.expected_seconds - now
    return None


def _queue_wait_left(record: TaskRecord, now: float, recent: RecentRuns | None) -> float:
    """How much longer a queued task may wait to start: what its kind has waited lately, less what it has waited so
    far; once it has waited longer than that, a tenth of its wait so far (a backlog drains at its own pace)."""
    waited = max(0.0, now - record.created_at)
    usual = recent.queue_wait(record.task) if recent is not None else None
    if usual is None:
        return 0.0
    return max(usual - waited, UNKNOWN_FRACTION * waited)


def header_value(seconds: float) -> str:
    """HTTP's Retry-After is whole seconds: rounded up, so that a client that honours it never comes back early."""
    return str(max(1, math.ceil(seconds)))
