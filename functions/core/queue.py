"""The task queue: one small SQS message per task; the task's input stays in its record."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Protocol

import msgspec

from core.errors import MalformedRequest

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageRequestTypeDef


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
    def send(self, message: TaskMessage, delay_seconds: int = 0) -> None: ...


class SqsTaskQueue:
    def __init__(self, queue_url: str, client: SQSClient) -> None:
        self._queue_url = queue_url
        self._client = client

    def send(self, message: TaskMessage, delay_seconds: int = 0) -> None:
        """`delay_seconds`: hidden from the worker for that long (SQS allows up to 900)."""
        request: SendMessageRequestTypeDef = {
            "QueueUrl": self._queue_url,
            "MessageBody": message.to_body(),
            "MessageAttributes": {"task_id": {"DataType": "String", "StringValue": message.task_id}},
        }
        if delay_seconds:  # else the queue's own delay applies
            request["DelaySeconds"] = delay_seconds
        self._client.send_message(**request)
