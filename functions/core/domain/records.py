"""The task record: one per task, its whole lifecycle, and the view of it the API shows. The rules for changing it
are in core.domain.lifecycle."""

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
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED})


class TaskFailure(msgspec.Struct, frozen=True):
    """Why a task failed: the error's type and message, and for invalid input the same per-field errors as a 422."""

    type: str
    message: str
    errors: tuple[dict[str, str], ...] = ()
    # Per-field errors left out of `errors` (core.errors.MAX_FIELD_ERRORS).
    errors_omitted: int = 0

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.errors:
            body["errors"] = list(self.errors)
        if self.errors_omitted:
            body["errors_omitted"] = self.errors_omitted
        return body


class TaskRecord(msgspec.Struct, frozen=True):
    task_id: str
    task: str
    status: TaskStatus
    # Input and result are kept as JSON text: exact numbers, and no float <-> Decimal conversion. A large input or
    # result lives in the payload bucket instead (core.adapters.payloads), and the record keeps its key (input_ref, result_ref).
    input_json: str | None
    created_at: float
    expires_at: int
    # Who submitted it (core.domain.identity): only they see it.
    owner: str
    attempts: int = 0
    progress: float | None = None
    # When the run that holds the claim, or that recorded the outcome, began.
    started_at: float | None = None
    finished_at: float | None = None
    lease_until: float | None = None
    result_json: str | None = None
    error: TaskFailure | None = None
    request_hash: str | None = None
    # The task's declared polling interval and expected run time, stored at submit so that GET needs no task registry
    # to tell a client when to come back (core.domain.polling).
    retry_after_seconds: int = 1
    expected_seconds: float | None = None
    # When `progress` was written: the rate of a running task is progress / (progress_at - started_at).
    progress_at: float | None = None
    # Claimed on the last delivery SQS allows: once this lease runs out no worker takes the task again.
    last_attempt: bool = False
    # The payload bucket's key of an input too large for the record, or uploaded by the caller (input_json None).
    input_ref: str | None = None
    # An uploaded input's version as submit found it: the bytes the task was accepted with, whatever is posted after.
    input_version: str | None = None
    # The payload bucket's key of a result too large for the record (result_json None), and its size.
    result_ref: str | None = None
    result_bytes: int | None = None
    # Where the outcome is POSTed when the task ends (the Webhook-URL header at submit; core.services.webhooks): never an input.
    webhook_url: str | None = None
    # A durable task (core.services.durable): run step by step by the durable runner, across invocations.
    durable: bool = False
    # Its durable execution, once the runner has started it (recorded by the runner's first write).
    execution_arn: str | None = None
    # Steps completed before the current one, and the current one's name and how many times it has been started
    # (more than once: an invocation crashed, ran out of memory or time during it).
    steps_done: int = 0
    current_step: str | None = None
    step_attempts: int = 0

    def is_expired(self, now: float) -> bool:
        # DynamoDB deletes expired items up to a few days late: a record past its expiry is gone already.
        return self.expires_at <= now

    def to_public(self, result_url: str | None = None) -> dict[str, Any]:
        """The task as GET shows it; a result kept in the payload bucket as `result_url` (presigned by the caller of
        this method) instead of `result`."""
        body: dict[str, Any] = {
            "task_id": self.task_id,
            "task": self.task,
            "status": self.status.value,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
        }
        if self.status.is_terminal:
            body["finished_at"] = iso(self.finished_at)
        else:
            body["progress"] = self.progress if self.progress is not None else 0.0
        if self.attempts:
            body["attempts"] = self.attempts
        if self.durable:
            body["steps_done"] = self.steps_done
            if not self.status.is_terminal and self.current_step is not None:
                body["current_step"] = self.current_step
        if self.status is TaskStatus.SUCCEEDED and self.result_json is not None:
            body["result"] = json.loads(self.result_json)
        if self.status is TaskStatus.SUCCEEDED and self.result_ref is not None and result_url is not None:
            body["result_url"] = result_url
            body["result_bytes"] = self.result_bytes
        if self.status is TaskStatus.FAILED and self.error is not None:
            body["error"] = self.error.to_json()
        return body


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
