"""The task queue: one small SQS message per task; the task's input stays in its record. AWS failures leave as
QueueUnavailable."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Protocol

import msgspec

from core.adapters.aws_errors import AwsError
from core.errors import MalformedRequest, QueueUnavailable

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import (
        MessageAttributeValueTypeDef,
        SendMessageBatchRequestEntryTypeDef,
        SendMessageRequestTypeDef,
    )

# One SendMessageBatch takes at most ten messages.
SQS_MAX_BATCH = 10


class TaskMessage(msgspec.Struct, frozen=True):
    task_id: str
    task: str

    def to_body(self) -> str:
        return json.dumps({"task_id": self.task_id, "task": self.task}, separators=(",", ":"))

    @classmethod
    def from_body(cls, body: str) -> TaskMessage:
        try:
            data = json.loads(body)
            return cls(task_id=str(data["task_id"]), task=str(data["task"]))
        except (ValueError, TypeError, KeyError) as exc:
            raise MalformedRequest(f"not a task message: {body[:200]!r}") from exc


class TaskQueue(Protocol):
    def send(self, message: TaskMessage, delay_seconds: int = 0) -> None:
        """Queue one message, hidden for `delay_seconds`; QueueUnavailable when it was not taken."""

    def send_all(self, messages: Sequence[TaskMessage]) -> set[str]:
        """Queue several messages; the task ids of those the queue did not take."""


class MessageVisibility(Protocol):
    """What keeps a received message hidden while its task runs."""

    @property
    def visibility_timeout(self) -> float:
        """The queue's visibility timeout, in seconds."""

    def keep_hidden(self, receipt_handle: str, seconds: float) -> None:
        """Hide the received message for `seconds` more from now."""


class SqsTaskQueue:
    """`client` is built on first use: a worker invocation whose tasks neither wait nor run long never sends to the
    queue, and does not pay for SQS's client at its cold start."""

    def __init__(self, queue_url: str, client: Callable[[], SQSClient], visibility_timeout: float = 0.0) -> None:
        self._queue_url = queue_url
        self._client_factory = client
        self._visibility_timeout = visibility_timeout

    @cached_property
    def _client(self) -> SQSClient:
        return self._client_factory()

    def send(self, message: TaskMessage, delay_seconds: int = 0) -> None:
        """`delay_seconds`: hidden from the worker for that long (SQS allows up to 900)."""
        request: SendMessageRequestTypeDef = {
            "QueueUrl": self._queue_url,
            "MessageBody": message.to_body(),
            "MessageAttributes": _attributes(message),
        }
        if delay_seconds:  # else the queue's own delay applies
            request["DelaySeconds"] = delay_seconds
        try:
            self._client.send_message(**request)
        except AwsError as error:
            raise QueueUnavailable("the task queue is unavailable; try again") from error

    def send_all(self, messages: Sequence[TaskMessage]) -> set[str]:
        unsent: set[str] = set()
        for start in range(0, len(messages), SQS_MAX_BATCH):
            chunk = messages[start : start + SQS_MAX_BATCH]
            entries: list[SendMessageBatchRequestEntryTypeDef] = [
                {"Id": str(n), "MessageBody": m.to_body(), "MessageAttributes": _attributes(m)}
                for n, m in enumerate(chunk)
            ]
            try:
                response = self._client.send_message_batch(QueueUrl=self._queue_url, Entries=entries)
            except AwsError:
                unsent.update(m.task_id for m in chunk)
                continue
            unsent.update(chunk[int(failed["Id"])].task_id for failed in response.get("Failed", []))
        return unsent

    @property
    def visibility_timeout(self) -> float:
        """The queue's visibility timeout, as the function's settings give it (the worker's alone need it)."""
        if self._visibility_timeout <= 0:
            raise QueueUnavailable("the task queue's visibility timeout is not configured")
        return self._visibility_timeout

    def keep_hidden(self, receipt_handle: str, seconds: float) -> None:
        try:
            self._client.change_message_visibility(
                QueueUrl=self._queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=round(seconds)
            )
        except AwsError as error:
            raise QueueUnavailable("the task queue is unavailable; try again") from error


def _attributes(message: TaskMessage) -> dict[str, MessageAttributeValueTypeDef]:
    return {"task_id": {"DataType": "String", "StringValue": message.task_id}}
