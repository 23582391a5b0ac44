"""One worker invocation's batch of task messages, and its partial batch response.

Lambda returns a whole batch to the queue when the invocation times out, and every message's receive count has
risen by then: under a backlog a task could use up its deliveries (maxReceiveCount) in batches that never reached
it. So a message starts only when the invocation has the time its task may take (`max_seconds`) left; one that
cannot start goes back to the queue as a new message (its receive count starts again: no delivery of the task was
tried) and the original is reported done. Only when that send fails is the message named in batchItemFailures.

While a task runs, its message is kept hidden (a heartbeat extends its visibility at half the queue's visibility
timeout), so that SQS does not deliver it again to another worker, nor count a delivery, because the run outlasts the
visibility timeout. Deployed, the timeout is six times the worker's Timeout and the heartbeat never fires; it is
what keeps a run right under a shorter one (the local stack's --visibility-timeout, or a queue configured by hand).

Built here rather than with Powertools' BatchProcessor: the batch utility's package imports asyncio and every event
data class at start-up, a quarter of the worker's cold start (docs/design.md), for a loop of a few lines.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypedDict

import msgspec

from core.adapters.queue import MessageVisibility, TaskMessage, TaskQueue
from core.domain.deliveries import Outcome, TaskBusy
from core.errors import MalformedRequest, QueueUnavailable
from core.observability import logger
from core.services.scheduler import Scheduled, scheduler

# Kept free at the end of an invocation beyond a task's own max_seconds: its outcome's write and the response.
END_MARGIN_SECONDS = 2.0


class ItemFailure(TypedDict):
    itemIdentifier: str


class PartialBatchResponse(TypedDict):
    batchItemFailures: list[ItemFailure]


Handle = Callable[[TaskMessage, int], Outcome]
"""Handles one delivery (message, its ApproximateReceiveCount); raises when SQS should deliver it again."""


class Deferrals(msgspec.Struct, frozen=True):
    """When a message may start, and where the ones that may not go."""

    remaining_seconds: Callable[[], float]
    # A task's max_seconds; None: as long as a whole invocation allows.
    max_seconds: Callable[[str], float | None]
    queue: TaskQueue

    def has_time_for(self, task: str, invocation_seconds: float) -> bool:
        needed = self.max_seconds(task) or invocation_seconds
        return needed + END_MARGIN_SECONDS <= self.remaining_seconds()


class Heartbeat:
    """Keeps one received message hidden until stopped: extends its visibility by the queue's visibility timeout
    whenever half of it has passed."""

    def __init__(self, visibility: MessageVisibility, receipt_handle: str) -> None:
        self._visibility = visibility
        self._receipt_handle = receipt_handle
        self._timeout = visibility.visibility_timeout
        # stop() and a beat on the scheduler's thread: without it, a beat could schedule the next after the stop.
        self._lock = threading.Lock()
        self._next: Scheduled | None = scheduler.call_later(self._timeout / 2, self._beat)

    def _beat(self) -> None:
        with self._lock:
            if self._next is None:
                return
            self._next = scheduler.call_later(self._timeout / 2, self._beat)
        self._visibility.keep_hidden(self._receipt_handle, self._timeout)

    def stop(self) -> None:
        with self._lock:
            if self._next is not None:
                self._next.cancelled = True
                self._next = None


def _heartbeat(visibility: MessageVisibility, record: Mapping[str, Any]) -> Heartbeat | None:
    try:
        return Heartbeat(visibility, str(record["receiptHandle"]))
    except QueueUnavailable as error:
        # The run goes on; should it outlast the visibility timeout, a later delivery finds its claim and waits.
        logger.warning("cannot keep the message hidden while its task runs", error=str(error))
        return None


def run_batch(
    records: Sequence[Mapping[str, Any]],
    handle: Handle,
    *,
    deferrals: Deferrals | None = None,
    visibility: MessageVisibility | None = None,
    parse: Callable[[str], TaskMessage] = TaskMessage.from_body,
) -> PartialBatchResponse:
    """Handle each record in turn (with `deferrals`, while the invocation has time for its task; the rest are queued
    again). A failure of one message sends that message back, never the batch: a batch whose every message failed
    is still a partial response, not an invocation error (retries of tasks must not trip the Errors alarm)."""
    invocation_seconds = deferrals.remaining_seconds() if deferrals else 0.0
    failures: list[str] = []
    deferred: list[tuple[str, TaskMessage]] = []
    started = 0
    for record in records:
        message_id = str(record["messageId"])
        try:
            message = parse(record["body"])
        except MalformedRequest:
            logger.exception("unreadable task message; SQS will deliver it again", message_id=message_id)
            failures.append(message_id)
            continue
        if deferrals and not deferrals.has_time_for(message.task, invocation_seconds):
            if started:
                deferred.append((message_id, message))
                continue
            # The first of the batch runs whatever it says: in no invocation would it have more time.
            logger.warning("the task may run longer than this invocation has left", task=message.task)
        started += 1
        logger.set_correlation_id(message.task_id)
        heartbeat = _heartbeat(visibility, record) if visibility else None
        try:
            if not _handled(record, message, handle):
                failures.append(message_id)
        finally:
            if heartbeat:
                heartbeat.stop()
            logger.set_correlation_id(None)
    if deferrals and deferred:
        failures += _requeue(deferred, deferrals.queue)
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failures]}


def _handled(record: Mapping[str, Any], message: TaskMessage, handle: Handle) -> bool:
    """Whether the message is done with (else SQS delivers it again)."""
    try:
        outcome = handle(message, int(record["attributes"]["ApproximateReceiveCount"]))
    except TaskBusy as busy:
        # Expected: another delivery holds the task (or just put it back); a later delivery sees to it.
        logger.info("task held by another delivery; SQS will deliver it again", reason=str(busy))
        return False
    except Exception:  # noqa: BLE001 - one message's failure sends that message back, never the batch
        logger.exception("task message failed; SQS will deliver it again")
        return False
    logger.info("task message handled", task=outcome.task, outcome=outcome.disposition.value)
    return True


def _requeue(deferred: list[tuple[str, TaskMessage]], queue: TaskQueue) -> list[str]:
    """Send the messages this invocation has no time for again, as new messages; the ids of those not sent."""
    unsent = queue.send_all([message for _, message in deferred])
    logger.info(
        "no time left in this invocation for these tasks; queued again", deferred=len(deferred), unsent=len(unsent)
    )
    return [message_id for message_id, message in deferred if message.task_id in unsent]
