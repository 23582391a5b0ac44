"""What the API does with a task: submit it, show it, cancel it. Plain Python over a store and a queue."""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
from botocore.exceptions import BotoCoreError, ClientError

from core.errors import Conflict, MalformedRequest, QueueUnavailable, TaskNotFound
from core.queue import TaskMessage, TaskQueue
from core.records import TaskRecord, TaskStatus
from core.store import TaskStore, TransitionRefused

# The registry (and the task modules under it) is imported by submit only: GET and DELETE read the record, so the
# result function starts without them.
if TYPE_CHECKING:
    from core.registry import TaskDefinition

logger = logging.getLogger(__name__)

# Idempotent submissions get a name-based id, so that the conditional put itself detects the replay.
IDEMPOTENCY_NAMESPACE = uuid.UUID("0b5c3f0e-8f2a-4c59-9d1e-6f1b8a3c2d47")
MAX_IDEMPOTENCY_KEY_LENGTH = 255
SECONDS_PER_DAY = 86_400
# How long the message that an idempotent replay sends again for a still-queued task stays hidden: longer than the
# submit function's Timeout (10 s in template.yaml, and a template test keeps it below this), by when the first
# submission has sent its message or stopped, and its task has been claimed (after a second's run) or finished.
RESEND_DELAY_SECONDS = 15


class Submission(msgspec.Struct, frozen=True):
    record: TaskRecord
    # True when an Idempotency-Key matched an earlier submission and nothing new was queued.
    replayed: bool = False


def parse_task_id(task_id: str) -> str:
    try:
        return str(uuid.UUID(task_id))
    except ValueError as exc:
        raise MalformedRequest(f"task id {task_id!r} is not a UUID") from exc


class TaskService:
    def __init__(
        self,
        store: TaskStore,
        queue: TaskQueue | None = None,
        *,
        retention_days: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._queue = queue
        self._retention_seconds = retention_days * SECONDS_PER_DAY
        self._clock = clock

    def submit(
        self, definition: TaskDefinition, inputs: Any, *, idempotency_key: str | None = None, caller: str | None = None
    ) -> Submission:
        """Validate, record as queued, then enqueue. Nothing is stored or sent for invalid input."""
        task_name = definition.name
        if not isinstance(inputs, dict):
            raise MalformedRequest(f"the body must be a JSON object with the inputs of {task_name!r}")
        input_json = msgspec.json.encode(definition.validate(inputs)).decode()
        now = self._clock()
        request_hash = None
        task_id = str(uuid.uuid4())
        if idempotency_key is not None:
            if not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
                raise MalformedRequest(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters")
            # The caller's identity scopes the key: two callers choosing the same key never see each other's task.
            task_id = str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, json.dumps([task_name, caller, idempotency_key])))
            request_hash = hashlib.sha256(input_json.encode()).hexdigest()
        record = TaskRecord(
            task_id=task_id,
            task=task_name,
            status=TaskStatus.QUEUED,
            input_json=input_json,
            created_at=now,
            expires_at=int(now) + self._retention_seconds,
            request_hash=request_hash,
            retry_after_seconds=definition.retry_after_seconds,
        )
        try:
            self._store.create(record, now)
        except TransitionRefused as refused:
            existing = refused.current
            if existing is None or existing.request_hash != request_hash or existing.task != task_name:
                raise Conflict("this Idempotency-Key was used before with a different request") from refused
            if existing.status is TaskStatus.QUEUED:
                # The first submission may have stopped between recording the task and sending its message (its
                # function timed out in a slow send, or crashed), and then nothing would ever run the task: send it
                # again, delayed, so that the first message, if there is one, is worked on first (the worker then
                # drops the second as a duplicate, or holds the task under its lease) rather than run beside it.
                self._resend(existing)
            return Submission(existing.as_seen(now), replayed=True)
        self._enqueue(record)
        return Submission(record)

    def _send(self, record: TaskRecord, delay_seconds: int = 0) -> None:
        if self._queue is None:
            raise RuntimeError("TaskService.submit needs a queue")
        self._queue.send(TaskMessage(task_id=record.task_id, task=record.task), delay_seconds)

    def _resend(self, accepted: TaskRecord) -> None:
        """The message of a task accepted earlier, again. When it cannot be sent, the record stays: this task was
        answered 202 before, and its first message may well be in the queue (removing the record would make the
        worker drop that message, and lose the task)."""
        try:
            self._send(accepted, delay_seconds=RESEND_DELAY_SECONDS)
        except (BotoCoreError, ClientError) as send_error:
            logger.error("could not send a queued task again", extra={"task_id": accepted.task_id})
            raise QueueUnavailable("the task queue is unavailable; try again") from send_error

    def _enqueue(self, record: TaskRecord) -> None:
        """The message of a task just recorded. When it cannot be sent, the record goes: nothing would run it."""
        try:
            self._send(record)
        except (BotoCoreError, ClientError) as send_error:
            logger.error("could not enqueue task; removing its record", extra={"task_id": record.task_id})
            try:
                self._store.delete_queued(record.task_id)
            except (BotoCoreError, ClientError, TransitionRefused):
                # The record stays queued with no message; its TTL removes it. Logged so an operator sees it.
                logger.exception("could not remove the record of an unqueued task", extra={"task_id": record.task_id})
            raise QueueUnavailable("the task queue is unavailable; nothing was queued, try again") from send_error

    def get(self, task_name: str, task_id: str) -> TaskRecord:
        task_id = parse_task_id(task_id)
        record = TaskRecord.visible(self._store.get(task_id), self._clock())
        if record is None or record.task != task_name:
            raise TaskNotFound(f"no {task_name} task with id {task_id}")
        return record

    def cancel(self, task_name: str, task_id: str) -> TaskRecord:
        """A queued or running task becomes cancelled; the worker skips or stops it."""
        record = self.get(task_name, task_id)
        if record.status.is_terminal:
            return self._cancelled_already_or_conflict(record)
        try:
            return self._store.cancel(record.task_id, self._clock())
        except TransitionRefused as refused:
            current = refused.current
            if current is None or current.is_expired(self._clock()):
                raise TaskNotFound(f"no {task_name} task with id {task_id}") from refused
            return self._cancelled_already_or_conflict(current)

    @staticmethod
    def _cancelled_already_or_conflict(record: TaskRecord) -> TaskRecord:
        if record.status is TaskStatus.CANCELLED:
            return record  # cancelling twice is not an error: DELETE is idempotent
        raise Conflict(f"task {record.task_id} is {record.status.value} and can no longer be cancelled")
