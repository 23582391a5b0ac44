"""The AWS side of completion events: EventBridge for the events, SQS for webhook deliveries and their retries.
AWS failures leave as positions not taken, or QueueUnavailable."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from core.adapters.aws_errors import AwsError
from core.errors import QueueUnavailable
from core.observability import logger
from core.services.events import TaskEvent
from core.services.webhooks import MAX_HIDE_SECONDS, MAX_SEND_DELAY_SECONDS, delivery_messages

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

# PutEvents and SendMessageBatch take at most ten entries a call.
MAX_ENTRIES = 10


class EventBridgePublisher:
    def __init__(self, bus_name: str, source: str, client: EventBridgeClient) -> None:
        self._bus = bus_name
        # The service name (POWERTOOLS_SERVICE_NAME): what users' rules match as `source`.
        self._source = source
        self._client = client

    def publish(self, events: Sequence[TaskEvent]) -> set[int]:
        failed: set[int] = set()
        for start in range(0, len(events), MAX_ENTRIES):
            chunk = events[start : start + MAX_ENTRIES]
            entries: list[PutEventsRequestEntryTypeDef] = [
                {
                    "EventBusName": self._bus,
                    "Source": self._source,
                    "DetailType": event.detail_type,
                    "Detail": event.detail_json(),
                    "Resources": [],
                }
                for event in chunk
            ]
            try:
                response = self._client.put_events(Entries=entries)
            except AwsError:
                logger.exception("could not put events", count=len(chunk))
                failed.update(range(start, start + len(chunk)))
                continue
            for index, entry in enumerate(response.get("Entries", [])):
                if entry.get("ErrorCode"):
                    logger.error("event not accepted", code=entry["ErrorCode"], task_id=chunk[index].task_id)
                    failed.add(start + index)
        return failed


class SqsDeliveryQueue:
    """The webhook queue, as the notifier fills it."""

    def __init__(self, queue_url: str, client: SQSClient) -> None:
        self._queue_url = queue_url
        self._client = client

    def enqueue(self, events: Sequence[TaskEvent]) -> set[int]:
        bodies = delivery_messages(events)
        failed: set[int] = set()
        for start in range(0, len(bodies), MAX_ENTRIES):
            chunk = bodies[start : start + MAX_ENTRIES]
            entries: list[SendMessageBatchRequestEntryTypeDef] = [
                {"Id": str(n), "MessageBody": body} for n, body in enumerate(chunk)
            ]
            try:
                response = self._client.send_message_batch(QueueUrl=self._queue_url, Entries=entries)
            except AwsError:
                logger.exception("could not queue webhook deliveries", count=len(chunk))
                failed.update(range(start, start + len(chunk)))
                continue
            failed.update(start + int(item["Id"]) for item in response.get("Failed", []))
        return failed


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
