"""The AWS side of completion events: EventBridge for the events, SQS for webhook deliveries and their retries, and
the notifier's dead-letter queue. AWS failures leave as positions to retry or refused for good (Published), or
QueueUnavailable."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from core.adapters.aws_errors import AwsError, error_code, is_aws_unavailable
from core.errors import QueueUnavailable
from core.observability import logger
from core.services.events import Published, TaskEvent
from core.services.webhooks import MAX_HIDE_SECONDS, MAX_SEND_DELAY_SECONDS, delivery_messages

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

# PutEvents and SendMessageBatch take at most ten entries a call, of 256 KB together (PutEvents: "The total entry size
# must be less than 256KB", sized as "Calculating Amazon EventBridge PutEvents event entry size" says; SQS: a batch at
# most the queue's maximum message size, 256 KiB on a queue made before that rose to 1 MiB).
MAX_ENTRIES = 10
MAX_REQUEST_BYTES = 256 * 1000
# PutEvents entries that fail with these may be put later ("Retryable errors include", PutEventsResultEntry); any other
# code will never be accepted.
RETRYABLE_ENTRY_ERRORS = frozenset({"InternalFailure", "ThrottlingException"})


def chunks(sizes: Sequence[int]) -> Iterator[range]:
    """Consecutive positions, at most MAX_ENTRIES of at most MAX_REQUEST_BYTES together (a larger one alone)."""
    start, total = 0, 0
    for position, size in enumerate(sizes):
        if position > start and (position - start == MAX_ENTRIES or total + size > MAX_REQUEST_BYTES):
            yield range(start, position)
            start, total = position, 0
        total += size
    if start < len(sizes):
        yield range(start, len(sizes))


def _refused_for_good(error: Exception) -> bool:
    """A call AWS answered with a fault of the request itself (not throttling, not AWS's own fault, not a lost
    connection): sent again unchanged, it would be refused again."""
    return isinstance(error, ClientError) and not is_aws_unavailable(error)


class _Publishing:
    """Positions to retry and positions refused for good, as the calls of one publish find them."""

    def __init__(self) -> None:
        self.retry: set[int] = set()
        self.refused: dict[int, str] = {}

    def failed(self, positions: Sequence[int], error: Exception) -> None:
        if _refused_for_good(error):
            self.refused.update(dict.fromkeys(positions, f"{error_code(error)}: {error}"[:500]))
        else:
            self.retry.update(positions)

    def done(self) -> Published:
        return Published(frozenset(self.retry), self.refused)


class EventBridgePublisher:
    def __init__(self, bus_name: str, source: str, client: EventBridgeClient) -> None:
        self._bus = bus_name
        # The service name (POWERTOOLS_SERVICE_NAME): what users' rules match as `source`.
        self._source = source
        self._client = client

    def publish(self, events: Sequence[TaskEvent]) -> Published:
        entries: list[PutEventsRequestEntryTypeDef] = [
            {
                "EventBusName": self._bus,
                "Source": self._source,
                "DetailType": event.detail_type,
                "Detail": event.detail_json(),
                "Resources": [],
            }
            for event in events
        ]
        sizes = [len(e["Source"].encode()) + len(e["DetailType"].encode()) + len(e["Detail"].encode()) for e in entries]
        outcome = _Publishing()
        for positions in chunks(sizes):
            self._put(list(positions), entries, events, outcome)
        return outcome.done()

    def _put(
        self,
        positions: list[int],
        entries: list[PutEventsRequestEntryTypeDef],
        events: Sequence[TaskEvent],
        outcome: _Publishing,
    ) -> None:
        try:
            response = self._client.put_events(Entries=[entries[position] for position in positions])
        except AwsError as error:
            if len(positions) > 1 and _refused_for_good(error):
                # One entry may be at fault: each alone, so that only that one is refused.
                for position in positions:
                    self._put([position], entries, events, outcome)
                return
            logger.exception("could not put events", count=len(positions))
            outcome.failed(positions, error)
            return
        for position, entry in zip(positions, response.get("Entries", []), strict=False):
            if code := entry.get("ErrorCode"):
                logger.error("event not accepted", code=code, task_id=events[position].task_id)
                if code in RETRYABLE_ENTRY_ERRORS:
                    outcome.retry.add(position)
                else:
                    outcome.refused[position] = f"{code}: {entry.get('ErrorMessage', '')}"[:500]


class SqsDeliveryQueue:
    """The webhook queue, as the notifier fills it."""

    def __init__(self, queue_url: str, client: SQSClient) -> None:
        self._queue_url = queue_url
        self._client = client

    def enqueue(self, events: Sequence[TaskEvent]) -> Published:
        bodies = delivery_messages(events)
        outcome = _Publishing()
        for positions in chunks([len(body.encode()) for body in bodies]):
            self._send(list(positions), bodies, outcome)
        return outcome.done()

    def _send(self, positions: list[int], bodies: list[str], outcome: _Publishing) -> None:
        entries: list[SendMessageBatchRequestEntryTypeDef] = [
            {"Id": str(n), "MessageBody": bodies[position]} for n, position in enumerate(positions)
        ]
        try:
            response = self._client.send_message_batch(QueueUrl=self._queue_url, Entries=entries)
        except AwsError as error:
            if len(positions) > 1 and _refused_for_good(error):
                for position in positions:
                    self._send([position], bodies, outcome)
                return
            logger.exception("could not queue webhook deliveries", count=len(positions))
            outcome.failed(positions, error)
            return
        for item in response.get("Failed", []):
            position = positions[int(item["Id"])]
            if item.get("SenderFault"):
                outcome.refused[position] = f"{item.get('Code')}: {item.get('Message', '')}"[:500]
            else:
                outcome.retry.add(position)


class SqsDeadLetters:
    """The notifier's dead-letter queue, where it keeps the events it cannot publish (beside the records its event
    source mapping sends there after its retries)."""

    def __init__(self, queue_url: str, client: SQSClient) -> None:
        self._queue_url = queue_url
        self._client = client

    def keep(self, event: TaskEvent, reason: str) -> None:
        body = {
            "reason": reason,
            "task_id": event.task_id,
            "detail-type": event.detail_type,
            "detail": event.detail,
            "webhook_url": event.webhook_url,
        }
        try:
            self._client.send_message(QueueUrl=self._queue_url, MessageBody=json.dumps(body, separators=(",", ":")))
        except AwsError as error:
            raise QueueUnavailable("the notifier's dead-letter queue is unavailable") from error
        logger.error("event kept in the dead-letter queue", task_id=event.task_id, reason=reason)


class SqsRetryQueue:
    """The webhook queue and its dead-letter queue, as the webhook function sees them."""

    def __init__(self, queue_url: str, dead_letter_url: str, client: SQSClient) -> None:
        self._queue_url = queue_url
        self._dead_letter_url = dead_letter_url
        self._client = client

    def send_later(self, body: str, delay_seconds: int) -> None:
        if not 0 <= delay_seconds <= MAX_SEND_DELAY_SECONDS:
            raise ValueError(f"SQS delays a new message 0 to {MAX_SEND_DELAY_SECONDS} s, not {delay_seconds}")
        try:
            self._client.send_message(QueueUrl=self._queue_url, MessageBody=body, DelaySeconds=delay_seconds)
        except AwsError as error:
            raise QueueUnavailable("the webhook queue is unavailable") from error

    def hide(self, receipt_handle: str, seconds: int) -> None:
        if not 0 <= seconds <= MAX_HIDE_SECONDS:
            raise ValueError(f"a received delivery is hidden 0 to {MAX_HIDE_SECONDS} s at a time, not {seconds}")
        try:
            self._client.change_message_visibility(
                QueueUrl=self._queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
            )
        except AwsError as error:
            raise QueueUnavailable("the webhook queue is unavailable") from error

    def dead_letter(self, body: str) -> None:
        try:
            self._client.send_message(QueueUrl=self._dead_letter_url, MessageBody=body)
        except AwsError as error:
            raise QueueUnavailable("the webhook dead-letter queue is unavailable") from error
