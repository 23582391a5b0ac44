"""What the dead-letter consumer does with a task message that used up its deliveries: the task fails, with a
clear error, unless it has finished or a live claim still holds it.

A message reaches the dead-letter queue after `maxReceiveCount` receives. Most of those tasks the worker has failed
already on their last delivery; what is left are tasks whose message was received without a finished attempt: the
worker was throttled on every delivery, or never reached the message in a batch. Without this, such a task would
read as queued until its record expires.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from core.adapters.queue import TaskMessage
from core.domain.deliveries import Disposition, Outcome, TaskBusy
from core.domain.lifecycle import view
from core.domain.records import TaskFailure, TaskRecord, TaskStatus
from core.domain.store import TaskStore, TransitionRefused

logger = logging.getLogger(__name__)


def gave_up(max_receive_count: int) -> TaskFailure:
    return TaskFailure(
        type="GaveUp",
        message=f"gave up: the task's message was delivered {max_receive_count} times without a finished attempt "
        "(the worker was throttled or could not take it on every delivery) and went to the dead-letter queue",
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
        failure = self._failure
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
        logger.error("task failed: its message reached the dead-letter queue", extra={"task_id": message.task_id})
        self._on_failed(failed)
        return Outcome(message.task_id, message.task, Disposition.FAILED, failed)

    def _done_with(self, message: TaskMessage, current: TaskRecord | None) -> Outcome | None:
        """The outcome when the task needs nothing more; None when it must be failed; TaskBusy while it runs."""
        if current is None:
            return Outcome(message.task_id, message.task, Disposition.GONE)
        if current.status.is_terminal:
            return Outcome(message.task_id, message.task, Disposition.ALREADY_FINISHED, current)
        if current.status is TaskStatus.RUNNING and (current.lease_until or 0) >= self._clock():
            raise TaskBusy(f"task {message.task_id} is running under a live claim")
        return None
