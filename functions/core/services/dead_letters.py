"""What the dead-letter consumer does with a task message that used up its deliveries, or with a durable task's
execution that ended: the task fails, with a clear error, unless it has finished or a live claim still holds it.

A message reaches the dead-letter queue after `maxReceiveCount` receives. Most of those tasks the worker has failed
already on their last delivery; what is left are tasks whose message was received without a finished attempt: the
worker was throttled on every delivery, or never reached the message in a batch. Without this, such a task would
read as queued until its record expires.

A durable task's execution that ends failed, timed out or stopped (Lambda's "Durable Execution Status Change" event,
routed here by the template's DurableExecutionEndsRule) ends its task too, if the runner did not: its invocations
crashed on every try until the execution's timeout, or someone stopped it by hand. The runner's last lease is waited
out first (TaskBusy), so that a runner still writing its outcome is never overtaken.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from core.adapters.queue import TaskMessage
from core.domain.deliveries import Disposition, Outcome, TaskBusy
from core.domain.lifecycle import view
from core.domain.records import TaskFailure, TaskRecord, TaskStatus
from core.domain.store import TaskStore, TransitionRefused
from core.errors import MalformedRequest

logger = logging.getLogger(__name__)


def gave_up(max_receive_count: int) -> TaskFailure:
    return TaskFailure(
        type="GaveUp",
        message=f"gave up: the task's message was delivered {max_receive_count} times without a finished attempt "
        "(the worker was throttled or could not take it on every delivery) and went to the dead-letter queue",
    )


# Lambda's event when a durable execution's status changes (source aws.lambda, on the account's default bus).
EXECUTION_STATUS_CHANGE = "Durable Execution Status Change"


class ExecutionEnd(TaskMessage, frozen=True):
    """A durable task's execution ended (its name is the task's id) in `status`: FAILED, TIMED_OUT or STOPPED."""

    status: str = ""
    execution_arn: str = ""


def dead_letter_message(body: str) -> TaskMessage:
    """A dead letter (a task message) or a durable execution's end (the EventBridge event as the rule delivers it)."""
    try:
        event = json.loads(body)
    except ValueError as exc:
        raise MalformedRequest(f"not a task message: {body[:200]!r}") from exc
    if isinstance(event, dict) and event.get("detail-type") == EXECUTION_STATUS_CHANGE:
        detail = event.get("detail") or {}
        try:
            return ExecutionEnd(
                task_id=str(detail["durableExecutionName"]),
                task="",
                status=str(detail["status"]),
                execution_arn=str(detail.get("durableExecutionArn", "")),
            )
        except KeyError as exc:
            raise MalformedRequest(f"a durable execution's event without {exc}: {body[:200]!r}") from exc
    return TaskMessage.from_body(body)


def execution_ended(status: str) -> TaskFailure:
    return TaskFailure(
        type="DurableExecutionEnded",
        message=f"the task's durable execution ended {status} before the task finished (its runner crashed, ran out "
        "of memory or time on every try until DurableTaskTimeout, or the execution was stopped)",
    )


class DeadLetters:
    def __init__(
        self,
        store: TaskStore,
        *,
        max_receive_count: int,
        clock: Callable[[], float] = time.time,
        on_failed: Callable[[TaskRecord], None] = lambda record: None,
    ) -> None:
        self._store = store
        self._failure = gave_up(max_receive_count)
        self._clock = clock
        self._on_failed = on_failed

    def settle(self, message: TaskMessage) -> Outcome:
        """Fail the message's task unless it is done with; TaskBusy while a live claim holds it (its run records its
        own outcome; should that worker stop, the next delivery of this dead letter fails the task)."""
        stored = self._store.get(message.task_id)
        current = view(stored, self._clock())
        failure = execution_ended(message.status) if isinstance(message, ExecutionEnd) else self._failure
        if stored is not None and current is not None and current.status.is_terminal and not stored.status.is_terminal:
            # Failed only as read (core.domain.lifecycle.view: the last attempt's worker stopped and its lease lapsed): the
            # record is written failed now, with that reason, so that the task's end is a write like any other's
            # (its completion event and webhook come from that write: core.services.events).
            failure = current.error or failure
            current = stored
        done = self._done_with(message, current)
        if done is not None:
            return done
        try:
            failed = self._store.give_up(message.task_id, self._clock(), failure)
        except TransitionRefused as refused:
            done = self._done_with(message, view(refused.current, self._clock()))
            if done is not None:
                return done
            raise TaskBusy(f"task {message.task_id} changed while it was being failed") from refused
        logger.error("task failed: %s", failure.type, extra={"task_id": message.task_id})
        self._on_failed(failed)
        return Outcome(message.task_id, message.task, Disposition.FAILED, failed)

    def _done_with(self, message: TaskMessage, current: TaskRecord | None) -> Outcome | None:
        """The outcome when the task needs nothing more; None when it must be failed; TaskBusy while it runs."""
        if current is None:
            return Outcome(message.task_id, message.task, Disposition.GONE)
        if isinstance(message, ExecutionEnd) and current.execution_arn not in (None, message.execution_arn):
            # Another execution of the same name (the retention of the ended one ran out first): not this task's end.
            return Outcome(message.task_id, current.task, Disposition.ALREADY_FINISHED, current)
        if current.status.is_terminal:
            return Outcome(message.task_id, message.task, Disposition.ALREADY_FINISHED, current)
        if current.status is TaskStatus.RUNNING and (current.lease_until or 0) >= self._clock():
            raise TaskBusy(f"task {message.task_id} is running under a live claim")
        return None
