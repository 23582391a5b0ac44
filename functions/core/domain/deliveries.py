"""What became of one delivery of a task message, as the worker and the dead-letter consumer report it."""

from __future__ import annotations

from enum import StrEnum

import msgspec

from core.domain.records import TaskRecord, TaskStatus


class TaskBusy(Exception):
    """Another worker holds a live claim on this task; the message is tried again after its visibility timeout."""


class Disposition(StrEnum):
    SUCCEEDED = "succeeded"  # this delivery recorded the task's success
    FAILED = "failed"  # this delivery recorded the task's failure
    CANCELLED = "cancelled"  # the task was cancelled before or while this delivery ran it
    ALREADY_FINISHED = "already_finished"  # a duplicate or late delivery of a task that had finished
    GONE = "gone"  # no record: expired, or withdrawn at submit
    STARTED = "started"  # a durable task's execution was started (or found started): the durable runner runs it

    @classmethod
    def of(cls, status: TaskStatus) -> Disposition:
        """What a delivery that moved a task to `status` (a terminal one) did."""
        return cls(status.value)


class Outcome(msgspec.Struct, frozen=True):
    """What became of one delivery, for logs and metrics."""

    task_id: str
    task: str
    disposition: Disposition
    record: TaskRecord | None = None
