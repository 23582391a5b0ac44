"""Completion events: what the notifier makes of a task's move into a terminal state.

The table's stream (NEW_AND_OLD_IMAGES) carries every write; the notifier's event source passes on only the records
whose old image is not terminal and whose new image is (TERMINAL_TRANSITION, the template's FilterCriteria; a test
keeps the two alike). core.domain.lifecycle lets exactly one write per task make that move (FINISH, CANCEL or GIVE_UP, each
conditional on a non-terminal status), and a write refused by its condition leaves no stream record: so one task's
outcome is one stream record, and one event. What it builds is a function of the record alone (no clock, no random
id), so that a retried batch puts the very same event and enqueues the very same delivery (same webhook-id) again.
Plain Python: the AWS adapters are behind EventPublisher and DeliveryQueue.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypedDict

import msgspec

from core.adapters.dynamodb_store import from_item
from core.domain.records import TERMINAL_STATUSES, TaskRecord, TaskStatus, iso
from core.errors import QueueUnavailable

# The event's detail-type for each terminal status: what users' EventBridge rules match on.
DETAIL_TYPES = {
    TaskStatus.SUCCEEDED: "Task Succeeded",
    TaskStatus.FAILED: "Task Failed",
    TaskStatus.CANCELLED: "Task Cancelled",
}
# A result up to this size travels in the event (EventBridge takes 256 KB an event, and bills each 64 KB chunk as an
# event); a larger one, or one kept in the payload bucket, is named by the API path that returns it.
INLINE_RESULT_MAX_BYTES = 8 * 1024
# An event's detail of more than one such chunk (a failure's per-field errors, each up to 200 characters of the
# caller's text, can make one) is put without its large parts, and names the API path of the whole task instead.
MAX_DETAIL_BYTES = 64 * 1024
# The longest error message an event carries when it had to be cut down.
SHORT_MESSAGE_CHARS = 1000
NON_TERMINAL_STATUSES = tuple(status.value for status in TaskStatus if status not in TERMINAL_STATUSES)

# The notifier's event filter (template.yaml, NotifierFunction's FilterCriteria): only a record whose old image is
# not terminal and whose new image is. Lambda filters DynamoDB records on the `dynamodb` key only: an INSERT has no
# old image and a REMOVE (TTL) no new one, so neither matches.
TERMINAL_TRANSITION: dict[str, Any] = {
    "dynamodb": {
        "OldImage": {"status": {"S": list(NON_TERMINAL_STATUSES)}},
        "NewImage": {"status": {"S": sorted(status.value for status in TERMINAL_STATUSES)}},
    }
}


def is_terminal_transition(record: Mapping[str, Any]) -> bool:
    """TERMINAL_TRANSITION in Python: whether a stream record is a task's move into a terminal state. The notifier
    checks it again, so that a mapping deployed without its filter cannot emit an event per write."""
    images = record.get("dynamodb", {})
    old = images.get("OldImage", {}).get("status", {}).get("S")
    new = images.get("NewImage", {}).get("status", {}).get("S")
    return old in NON_TERMINAL_STATUSES and new in {status.value for status in TERMINAL_STATUSES}


class TaskEvent(msgspec.Struct, frozen=True):
    """One task's outcome, as it goes on the bus and, as the body of its webhook, to the caller."""

    task_id: str
    detail_type: str
    detail: dict[str, Any]
    webhook_url: str | None

    @property
    def webhook_id(self) -> str:
        """The same for every delivery and retry of this outcome (receivers deduplicate on it)."""
        return webhook_id(self.task_id, self.detail["status"])

    def detail_json(self) -> str:
        return json.dumps(self.detail, separators=(",", ":"), sort_keys=True)


def webhook_id(task_id: str, status: str) -> str:
    # A task reaches one terminal state once (core.domain.lifecycle): its id and that state name the outcome.
    return f"msg_{task_id}_{status}"


def result_path(record: TaskRecord) -> str:
    return f"/{record.task}/{record.task_id}/result"


def task_event(record: TaskRecord) -> TaskEvent:
    """The event of a task in a terminal state."""
    if not record.status.is_terminal:
        raise ValueError(f"task {record.task_id} is {record.status.value}, not finished")
    detail: dict[str, Any] = {
        "task": record.task,
        "task_id": record.task_id,
        "status": record.status.value,
        "created_at": iso(record.created_at),
        "started_at": iso(record.started_at),
        "finished_at": iso(record.finished_at),
        "error": record.error.to_json() if record.status is TaskStatus.FAILED and record.error else None,
    }
    if record.status is TaskStatus.SUCCEEDED:
        small = record.result_json is not None and len(record.result_json.encode()) <= INLINE_RESULT_MAX_BYTES
        if small and record.result_json is not None:
            detail["result"] = json.loads(record.result_json)
        else:
            detail["result_path"] = result_path(record)
    event = TaskEvent(record.task_id, DETAIL_TYPES[record.status], detail, record.webhook_url)
    if len(event.detail_json().encode()) > MAX_DETAIL_BYTES:
        event = _without_large_parts(event, record)
    return event


def _without_large_parts(event: TaskEvent, record: TaskRecord) -> TaskEvent:
    """The event of a task whose detail would be too large: the error's message cut short and its per-field errors
    counted, not listed (an inline result is at most INLINE_RESULT_MAX_BYTES), and `task_path` to GET it all."""
    detail = dict(event.detail)
    if record.error is not None and detail.get("error") is not None:
        error = record.error
        detail["error"] = {"type": error.type[:SHORT_MESSAGE_CHARS], "message": error.message[:SHORT_MESSAGE_CHARS]}
        if omitted := len(error.errors) + error.errors_omitted:
            detail["error"]["errors_omitted"] = omitted
    if "result" in detail:
        del detail["result"]
        detail["result_path"] = result_path(record)
    detail["task_path"] = f"/{record.task}/{record.task_id}"
    return msgspec.structs.replace(event, detail=detail)


def stream_event(record: Mapping[str, Any]) -> TaskEvent | None:
    """The event of one stream record; None for a record that is no terminal transition."""
    if not is_terminal_transition(record):
        return None
    return task_event(from_item(dict(record["dynamodb"]["NewImage"])))


class Published(msgspec.Struct, frozen=True):
    """What became of a call that put events or queued deliveries, by position in what it was given."""

    # Not taken this time (throttled, an AWS fault): the stream gives the record again.
    retry: frozenset[int] = frozenset()
    # Refused for good (the reason): the record's event is kept in the notifier's dead-letter queue instead.
    refused: dict[int, str] = msgspec.field(default_factory=dict)


class EventPublisher(Protocol):
    def publish(self, events: Sequence[TaskEvent]) -> Published:
        """Put the events on the bus."""


class DeliveryQueue(Protocol):
    def enqueue(self, events: Sequence[TaskEvent]) -> Published:
        """Queue a webhook delivery of each event."""


class DeadLetters(Protocol):
    def keep(self, event: TaskEvent, reason: str) -> None:
        """Keep an event that cannot be published, and why (QueueUnavailable when it was not taken)."""


class ItemFailure(TypedDict):
    itemIdentifier: str


class StreamBatchResponse(TypedDict):
    batchItemFailures: list[ItemFailure]


class Notifier:
    """Turns a batch of stream records into events on the bus and webhook deliveries.

    A stream is read in order: Lambda retries a partial failure from the first failed record's sequence number on,
    so only that one is reported, and the records after it come again (their event, the same, is put once more:
    EventBridge has no deduplication, so an event is delivered at least once and consumers deduplicate on the
    detail's task_id and status, which together never repeat for another outcome). Only a failure that may pass is
    reported so: an event refused for good (an entry EventBridge or SQS will never take) goes to the dead-letter
    queue at once, and the records after it are not held back by its retries."""

    def __init__(self, publisher: EventPublisher | None, deliveries: DeliveryQueue, dead_letters: DeadLetters) -> None:
        # None: the stack's TaskEvents parameter is Disabled; webhooks are still delivered.
        self._publisher = publisher
        self._deliveries = deliveries
        self._dead_letters = dead_letters

    def handle(self, records: Sequence[Mapping[str, Any]]) -> StreamBatchResponse:
        events: list[tuple[str, TaskEvent]] = []
        for record in records:
            event = stream_event(record)
            if event is not None:
                events.append((str(record["dynamodb"]["SequenceNumber"]), event))
        failed: set[int] = set()
        refused: dict[int, list[str]] = {}
        if self._publisher is not None and events:
            published = self._publisher.publish([event for _, event in events])
            failed |= published.retry
            for position, reason in published.refused.items():
                refused.setdefault(position, []).append(f"event: {reason}")
        hooked = [position for position, (_, event) in enumerate(events) if event.webhook_url]
        if hooked:
            queued = self._deliveries.enqueue([events[position][1] for position in hooked])
            failed |= {hooked[index] for index in queued.retry}
            for index, reason in queued.refused.items():
                refused.setdefault(hooked[index], []).append(f"webhook: {reason}")
        # The stream gives every record from the first failed one again: a refusal from there on is kept then.
        resume = min(failed, default=len(events))
        for position, reasons in sorted(refused.items()):
            if position >= resume:
                break
            try:
                self._dead_letters.keep(events[position][1], "; ".join(reasons))
            except QueueUnavailable:
                failed.add(position)
                break
        if not failed:
            return {"batchItemFailures": []}
        return {"batchItemFailures": [{"itemIdentifier": events[min(failed)][0]}]}
