"""The task record: one per task, its whole lifecycle, and the view of it the API shows."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import msgspec


class TaskStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED)


class TaskFailure(msgspec.Struct, frozen=True):
    type: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"type": self.type, "message": self.message}


class TaskRecord(msgspec.Struct, frozen=True):
    task_id: str
    task: str
    status: TaskStatus
    # Input and result are kept as JSON text: exact numbers, and no float <-> Decimal conversion.
    input_json: str
    created_at: float
    expires_at: int
    attempts: int = 0
    progress: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    lease_until: float | None = None
    result_json: str | None = None
    error: TaskFailure | None = None
    request_hash: str | None = None
    # The task's Retry-After, stored at submit so that GET needs no task registry.
    retry_after_seconds: int = 1
    # Claimed on the last delivery SQS allows: once this lease runs out no worker takes the task again.
    last_attempt: bool = False

    def is_expired(self, now: float) -> bool:
        # DynamoDB deletes expired items up to a few days late: a record past its expiry is gone already.
        return self.expires_at <= now

    def as_seen(self, now: float) -> TaskRecord:
        """The task's state at `now`. A worker that is stopped (the function timed out, ran out of memory) records
        nothing; on an earlier attempt the next delivery takes the task over, but after the last one its message
        is in the dead-letter queue, and the task has failed once that attempt's lease has run out."""
        if self.status is not TaskStatus.RUNNING or not self.last_attempt or (self.lease_until or 0) >= now:
            return self
        return msgspec.structs.replace(
            self,
            status=TaskStatus.FAILED,
            finished_at=self.lease_until,
            error=TaskFailure(
                type="GaveUp",
                message="gave up: the worker stopped during the last attempt allowed, before the task finished "
                "(it timed out or ran out of memory)",
            ),
        )

    @staticmethod
    def visible(record: TaskRecord | None, now: float) -> TaskRecord | None:
        """What a reader of `record` sees at `now` (as_seen), or None when there is none or it has expired."""
        if record is None or record.is_expired(now):
            return None
        return record.as_seen(now)

    @property
    def inputs(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.input_json)
        return value

    def to_public(self) -> dict[str, Any]:
        """The task as GET shows it."""
        body: dict[str, Any] = {
            "task_id": self.task_id,
            "task": self.task,
            "status": self.status.value,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
        }
        if self.status.is_terminal:
            body["finished_at"] = _iso(self.finished_at)
        else:
            body["progress"] = self.progress if self.progress is not None else 0.0
        if self.attempts:
            body["attempts"] = self.attempts
        if self.status is TaskStatus.SUCCEEDED and self.result_json is not None:
            body["result"] = json.loads(self.result_json)
        if self.status is TaskStatus.FAILED and self.error is not None:
            body["error"] = self.error.to_json()
        return body


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
