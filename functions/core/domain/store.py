"""Where task records live: the few operations the domain needs, each one transition of core.domain.lifecycle. Two
implementations keep the same contract: core.adapters.dynamodb_store (deployed) and core.adapters.memory_store (domain tests)."""

from __future__ import annotations

from typing import Protocol

from core.domain.listing import ListPosition, OwnedTasks
from core.domain.records import TaskFailure, TaskRecord


class TransitionRefused(Exception):
    """A conditional change did not apply; `current` is the record as it stood (None: no such task)."""

    def __init__(self, current: TaskRecord | None) -> None:
        super().__init__(f"refused; task is {current.status if current else 'absent'}")
        self.current = current


class UploadTaken(Exception):
    """The upload a new task names is the input of another task already (`task_id`); nothing was written."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"the upload serves task {task_id}")
        self.task_id = task_id


class TaskStore(Protocol):
    """Every method but `get` and `list_owned` is the lifecycle transition of the same name; each raises
    TransitionRefused with the record as it stood when its condition does not hold. Any method raises StoreUnavailable
    when the store cannot be reached."""

    def create(self, record: TaskRecord, now: float, *, upload: str | None = None) -> None:
        """Store a new queued record; with `upload` (its input's key), claim the upload for it in the same write:
        TransitionRefused when the record's condition fails (whatever the claim's), else UploadTaken when another
        task holds the upload (core.domain.lifecycle.UPLOAD_CLAIM_CONDITION)."""

    def get(self, task_id: str) -> TaskRecord | None:
        """The record as stored (strongly consistent), expired or not; None when there is none."""

    def withdraw(self, task_id: str) -> None:
        """Remove a queued record whose message never reached the queue."""

    def cancel(self, task_id: str, now: float) -> TaskRecord:
        """queued | running -> cancelled."""

    def claim(
        self, task_id: str, now: float, lease_seconds: float, *, started_at: float, last_attempt: bool = False
    ) -> TaskRecord:
        """-> running with a lease until now + lease_seconds, counting one more attempt whose run began at
        `started_at` (marked as the last one SQS delivers when `last_attempt`)."""

    def report_progress(self, expected: TaskRecord, fraction: float, now: float) -> None:
        """Record the progress of a claimed task, and when it was reported (`now`)."""

    def mark_last_attempt(self, expected: TaskRecord) -> None:
        """Mark a running task's claim as its last attempt."""

    def release(self, expected: TaskRecord, *, claimed: bool) -> None:
        """Count a failed attempt; a claimed task goes back to queued for the next one."""

    def finish(
        self,
        expected: TaskRecord,
        now: float,
        *,
        claimed: bool,
        started_at: float,
        result_json: str | None = None,
        error: TaskFailure | None = None,
        result_ref: str | None = None,
        result_bytes: int | None = None,
        steps_done: int | None = None,
    ) -> TaskRecord:
        """-> succeeded (with result_json, or the payload bucket's result_ref and the result's size) or failed (with
        error). An unclaimed run counts its attempt here. A durable task's run gives the steps it completed."""

    def give_up(self, task_id: str, now: float, error: TaskFailure) -> TaskRecord:
        """queued, or running under a lapsed lease -> failed with `error`."""

    def resume(self, task_id: str, now: float, lease_seconds: float, *, execution_arn: str) -> TaskRecord:
        """A durable task's invocation begins: queued | running -> running, its execution recorded, one more attempt
        counted, started_at set by the first, a lease until now + lease_seconds."""

    def begin_step(
        self, expected: TaskRecord, now: float, lease_seconds: float, *, name: str, steps_done: int, step_attempts: int
    ) -> TaskRecord:
        """A durable task's step starts: its name, the steps done before it, how often it has been started, and the
        invocation's lease renewed until now + lease_seconds."""

    def list_owned(
        self, owner: str, *, task: str | None, after: ListPosition | None, limit: int, now: float
    ) -> OwnedTasks:
        """Up to `limit` records of `owner` (of kind `task`, if given) that have not expired at `now`, newest first,
        from just after `after`; with where to go on from, None once there are no more. Not a transition: a read,
        and not a strongly consistent one (a task created a moment ago may be missing)."""
