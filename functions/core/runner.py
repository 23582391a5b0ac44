"""What the worker does with one task message: claim the task, run it, record the outcome.

Every step is a conditional write keyed on the task id, so a duplicate or late delivery never runs a
finished task again nor overwrites a terminal state. A transient error is raised so that SQS delivers
the message again; on the last delivery the task is failed and the message goes to the dead-letter queue.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from pydantic import BaseModel

from core.errors import RetryableTaskError, TaskCancelled, TaskError, TaskLost
from core.queue import TaskMessage
from core.records import TaskFailure, TaskRecord, TaskStatus
from core.registry import get_task
from core.store import TaskStore, TransitionRefused

logger = logging.getLogger(__name__)

# A result must fit in the task's DynamoDB item (400 KB) beside its input.
MAX_RESULT_BYTES = 350_000
PROGRESS_INTERVAL_SECONDS = 1.0
_THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ServiceUnavailable",
        "InternalServerError",
        "InternalFailure",
    }
)


class TaskBusy(Exception):
    """Another worker holds a live claim on this task; the message is tried again after its visibility timeout."""


def is_transient(error: BaseException) -> bool:
    """Errors that a later attempt may not meet: throttling, timeouts, lost connections."""
    if isinstance(error, RetryableTaskError | TimeoutError | ConnectionError | BotoConnectionError | TaskBusy):
        return True
    if isinstance(error, ClientError):
        return error.response.get("Error", {}).get("Code") in _THROTTLING_CODES
    return isinstance(error, BotoCoreError)


def describe(error: BaseException) -> TaskFailure:
    return TaskFailure(type=type(error).__name__, message=str(error)[:2000] or type(error).__name__)


def encode_result(value: Any) -> str:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    try:
        encoded = json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the task's result is not JSON: {exc}") from exc
    if len(encoded.encode()) > MAX_RESULT_BYTES:
        raise ValueError(f"the task's result is {len(encoded.encode())} bytes; at most {MAX_RESULT_BYTES} are kept")
    return encoded


@dataclass(frozen=True)
class Outcome:
    """What became of one delivery, for logs and metrics."""

    task_id: str
    task: str
    status: str
    record: TaskRecord | None = None


class ProgressReporter:
    """Writes a task's progress at most once per interval; raises TaskCancelled once the task is cancelled."""

    def __init__(self, store: TaskStore, record: TaskRecord, clock: Callable[[], float]) -> None:
        self._store = store
        self._record = record
        self._clock = clock
        self._last_write = clock()

    def __call__(self, fraction: float) -> None:
        now = self._clock()
        if now - self._last_write < PROGRESS_INTERVAL_SECONDS:
            return
        self._last_write = now
        try:
            self._store.report_progress(
                self._record.task_id, self._record.attempts, min(max(float(fraction), 0.0), 1.0)
            )
        except TransitionRefused as refused:
            if refused.current is not None and refused.current.status is TaskStatus.CANCELLED:
                raise TaskCancelled(self._record.task_id) from refused
            raise TaskLost(self._record.task_id) from refused
        except (BotoCoreError, ClientError) as error:
            if not is_transient(error):
                raise
            # A progress report is advisory: a throttled write must not cost the task its run.
            logger.warning("progress not recorded", extra={"task_id": self._record.task_id, "error": str(error)})


class TaskRunner:
    def __init__(
        self,
        store: TaskStore,
        *,
        max_receive_count: int,
        lease_seconds: float,
        clock: Callable[[], float] = time.time,
        on_finished: Callable[[TaskRecord], None] = lambda record: None,
    ) -> None:
        self._store = store
        self._max_receive_count = max_receive_count
        self._lease_seconds = lease_seconds
        self._clock = clock
        # Called once per task that this runner moved to succeeded or failed (metrics).
        self._on_finished = on_finished

    def handle(self, message: TaskMessage, receive_count: int) -> Outcome:
        """Process one delivery. Returns when the message is done with; raises when SQS should deliver it again."""
        try:
            record = self._store.claim(message.task_id, self._clock(), self._lease_seconds)
        except TransitionRefused as refused:
            return self._not_claimed(message, refused.current)
        try:
            return self._run(record)
        except Exception as error:  # noqa: BLE001 - re-raised by _retry_or_give_up once the task is released
            # _run records every failure of the task's own; what reaches here is transient or our infrastructure's.
            return self._retry_or_give_up(record, error, receive_count)

    def _not_claimed(self, message: TaskMessage, current: TaskRecord | None) -> Outcome:
        if current is None or current.is_expired(self._clock()):
            logger.warning("message for a task that no longer exists", extra={"task_id": message.task_id})
            return Outcome(message.task_id, message.task, "gone")
        if current.status.is_terminal:
            logger.info("duplicate delivery of a finished task", extra={"task_id": message.task_id})
            return Outcome(message.task_id, message.task, "duplicate", current)
        raise TaskBusy(f"task {message.task_id} is running elsewhere until its lease ends")

    def _run(self, record: TaskRecord) -> Outcome:
        failure: TaskFailure | None = None
        result_json: str | None = None
        try:
            definition = get_task(record.task)
            inputs = definition.validate(record.inputs)
            result_json = encode_result(definition.function(inputs, ProgressReporter(self._store, record, self._clock)))
        except TaskCancelled:
            logger.info("task cancelled while running", extra={"task_id": record.task_id})
            return Outcome(record.task_id, record.task, TaskStatus.CANCELLED.value, record)
        except TaskLost:
            logger.warning("task was claimed by another worker; dropping this run", extra={"task_id": record.task_id})
            return Outcome(record.task_id, record.task, "lost", record)
        except (TaskError, ValueError, TypeError, ArithmeticError, LookupError) as error:
            failure = describe(error)
        except Exception as error:
            if is_transient(error):
                raise
            failure = describe(error)
        return self._finish(record, result_json=result_json, error=failure)

    def _finish(
        self, record: TaskRecord, *, result_json: str | None = None, error: TaskFailure | None = None
    ) -> Outcome:
        try:
            finished = self._store.finish(
                record.task_id, record.attempts, self._clock(), result_json=result_json, error=error
            )
        except TransitionRefused as refused:
            current = refused.current
            status = current.status.value if current else "gone"
            logger.info("task changed while running; outcome dropped", extra={"task_id": record.task_id, "now": status})
            return Outcome(record.task_id, record.task, status, current)
        self._on_finished(finished)
        return Outcome(record.task_id, record.task, finished.status.value, finished)

    def _retry_or_give_up(self, record: TaskRecord, error: Exception, receive_count: int) -> Outcome:
        if receive_count >= self._max_receive_count:
            message = f"gave up after {receive_count} attempts: {describe(error).type}: {error}"
            self._finish(record, error=TaskFailure(type="GaveUp", message=message[:2000]))
            logger.error("task gave up; its message goes to the dead-letter queue", extra={"task_id": record.task_id})
        else:
            try:
                self._store.release(record.task_id, record.attempts)
            except TransitionRefused:
                logger.info("task changed before release", extra={"task_id": record.task_id})
        raise error
