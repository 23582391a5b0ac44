"""Task records in DynamoDB: every change of state is one conditional write, so races resolve in the table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import ClientError

from core.records import TaskFailure, TaskRecord, TaskStatus

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class TransitionRefused(Exception):
    """A conditional change did not apply; `current` is the record as it stood (None: no such task)."""

    def __init__(self, current: TaskRecord | None) -> None:
        super().__init__(f"refused; task is {current.status if current else 'absent'}")
        self.current = current


class TaskStore(Protocol):
    def create(self, record: TaskRecord, now: float) -> None:
        """Store a new record; TransitionRefused(existing) when a live record has its id already."""

    def get(self, task_id: str) -> TaskRecord | None: ...

    def delete_queued(self, task_id: str) -> None:
        """Remove a record that never reached the queue."""

    def cancel(self, task_id: str, now: float) -> TaskRecord:
        """queued | running -> cancelled."""

    def claim(self, task_id: str, now: float, lease_seconds: float, *, last_attempt: bool = False) -> TaskRecord:
        """queued, or running with a lapsed lease -> running, counting one more attempt (marked as the last one
        SQS delivers when `last_attempt`)."""

    def report_progress(self, expected: TaskRecord, fraction: float) -> None:
        """Record progress of a claimed task, if it is still as `expected`."""

    def mark_last_attempt(self, expected: TaskRecord) -> None:
        """Mark a running task's claim as its last attempt, if it is still as `expected`."""

    def release(self, expected: TaskRecord, *, claimed: bool) -> None:
        """Count a failed attempt; a claimed task goes back to queued for the next one."""

    def finish(
        self,
        expected: TaskRecord,
        now: float,
        *,
        claimed: bool,
        started_at: float,
        result_json: str | None = None,
        error: TaskFailure | None = None,
    ) -> TaskRecord:
        """-> succeeded (with result_json) or failed (with error), if the task is still as `expected`: neither
        cancelled nor taken by another attempt. An unclaimed run counts its attempt here, in the same write."""


_STATUS = "#status"
_NAMES = {_STATUS: "status"}


def _s(value: str) -> dict[str, Any]:
    return {"S": value}


def _n(value: float) -> dict[str, Any]:
    return {"N": repr(value) if isinstance(value, float) else str(value)}


def to_item(record: TaskRecord) -> dict[str, Any]:
    item: dict[str, Any] = {
        "task_id": _s(record.task_id),
        "task": _s(record.task),
        "status": _s(record.status.value),
        "input": _s(record.input_json),
        "created_at": _n(record.created_at),
        "expires_at": _n(record.expires_at),
        "attempts": _n(record.attempts),
    }
    optional_numbers = {
        "progress": record.progress,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "lease_until": record.lease_until,
    }
    item.update({key: _n(value) for key, value in optional_numbers.items() if value is not None})
    if record.result_json is not None:
        item["result"] = _s(record.result_json)
    if record.error is not None:
        item["error_type"] = _s(record.error.type)
        item["error_message"] = _s(record.error.message)
    if record.request_hash is not None:
        item["request_hash"] = _s(record.request_hash)
    item["retry_after"] = _n(record.retry_after_seconds)
    if record.last_attempt:
        item["last_attempt"] = {"BOOL": True}
    return item


def from_item(item: dict[str, Any]) -> TaskRecord:
    def number(key: str) -> float | None:
        return float(item[key]["N"]) if key in item else None

    def text(key: str) -> str | None:
        return item[key]["S"] if key in item else None

    error_type = text("error_type")
    return TaskRecord(
        task_id=item["task_id"]["S"],
        task=item["task"]["S"],
        status=TaskStatus(item["status"]["S"]),
        input_json=item["input"]["S"],
        created_at=float(item["created_at"]["N"]),
        expires_at=int(item["expires_at"]["N"]),
        attempts=int(item.get("attempts", {"N": "0"})["N"]),
        progress=number("progress"),
        started_at=number("started_at"),
        finished_at=number("finished_at"),
        lease_until=number("lease_until"),
        result_json=text("result"),
        error=TaskFailure(error_type, text("error_message") or "") if error_type else None,
        request_hash=text("request_hash"),
        retry_after_seconds=int(item["retry_after"]["N"]),
        last_attempt=item.get("last_attempt", {}).get("BOOL", False),
    )


class DynamoTaskStore:
    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        self._table = table_name
        self._client = client

    def _key(self, task_id: str) -> dict[str, Any]:
        return {"task_id": _s(task_id)}

    def _update(
        self, task_id: str, update: str, condition: str, values: dict[str, Any], names: dict[str, str] = _NAMES
    ) -> TaskRecord:
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=self._key(task_id),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            raise _refused_or(error) from error
        return from_item(response["Attributes"])

    def create(self, record: TaskRecord, now: float) -> None:
        try:
            self._client.put_item(
                TableName=self._table,
                Item=to_item(record),
                # An expired record that DynamoDB has not deleted yet does not block its id.
                ConditionExpression="attribute_not_exists(task_id) OR expires_at <= :now",
                ExpressionAttributeValues={":now": _n(now)},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            raise _refused_or(error) from error

    def get(self, task_id: str) -> TaskRecord | None:
        # Strongly consistent: a GET right after the 202 must see the task it was told about.
        response = self._client.get_item(TableName=self._table, Key=self._key(task_id), ConsistentRead=True)
        item = response.get("Item")
        return from_item(item) if item else None

    def delete_queued(self, task_id: str) -> None:
        try:
            self._client.delete_item(
                TableName=self._table,
                Key=self._key(task_id),
                ConditionExpression=f"{_STATUS} = :queued",
                ExpressionAttributeNames=_NAMES,
                ExpressionAttributeValues={":queued": _s(TaskStatus.QUEUED)},
            )
        except ClientError as error:
            raise _refused_or(error) from error

    def cancel(self, task_id: str, now: float) -> TaskRecord:
        return self._update(
            task_id,
            f"SET {_STATUS} = :cancelled, finished_at = :now REMOVE lease_until",
            f"attribute_exists(task_id) AND expires_at > :now AND {_STATUS} IN (:queued, :running)",
            {
                ":cancelled": _s(TaskStatus.CANCELLED),
                ":queued": _s(TaskStatus.QUEUED),
                ":running": _s(TaskStatus.RUNNING),
                ":now": _n(now),
            },
        )

    def claim(self, task_id: str, now: float, lease_seconds: float, *, last_attempt: bool = False) -> TaskRecord:
        return self._update(
            task_id,
            f"SET {_STATUS} = :running, started_at = if_not_exists(started_at, :now), lease_until = :lease, "
            "attempts = if_not_exists(attempts, :zero) + :one, last_attempt = :last",
            f"attribute_exists(task_id) AND expires_at > :now AND "
            f"({_STATUS} = :queued OR ({_STATUS} = :running AND lease_until < :now))",
            {
                ":running": _s(TaskStatus.RUNNING),
                ":queued": _s(TaskStatus.QUEUED),
                ":now": _n(now),
                ":lease": _n(now + lease_seconds),
                ":zero": _n(0),
                ":one": _n(1),
                ":last": {"BOOL": last_attempt},
            },
        )

    def _unchanged(self, expected: TaskRecord) -> tuple[str, dict[str, Any]]:
        """The condition that the record is as this worker last wrote or read it."""
        return f"{_STATUS} = :expected_status AND attempts = :expected_attempts", {
            ":expected_status": _s(expected.status),
            ":expected_attempts": _n(expected.attempts),
        }

    def mark_last_attempt(self, expected: TaskRecord) -> None:
        condition, values = self._unchanged(expected)
        values[":last"] = {"BOOL": True}
        self._update(expected.task_id, "SET last_attempt = :last", condition, values)

    def report_progress(self, expected: TaskRecord, fraction: float) -> None:
        condition, values = self._unchanged(expected)
        self._update(expected.task_id, "SET progress = :progress", condition, {**values, ":progress": _n(fraction)})

    def release(self, expected: TaskRecord, *, claimed: bool) -> None:
        condition, values = self._unchanged(expected)
        if claimed:
            update = f"SET {_STATUS} = :queued REMOVE lease_until"
            values[":queued"] = _s(TaskStatus.QUEUED)
        else:
            update = "SET attempts = :next"
            values[":next"] = _n(expected.attempts + 1)
        self._update(expected.task_id, update, condition, values)

    def finish(
        self,
        expected: TaskRecord,
        now: float,
        *,
        claimed: bool,
        started_at: float,
        result_json: str | None = None,
        error: TaskFailure | None = None,
    ) -> TaskRecord:
        condition, values = self._unchanged(expected)
        values.update({":now": _n(now), ":started": _n(started_at)})
        assignments = [
            f"{_STATUS} = :outcome",
            "finished_at = :now",
            "started_at = if_not_exists(started_at, :started)",
        ]
        names = dict(_NAMES)
        if not claimed:
            assignments.append("attempts = :next")
            values[":next"] = _n(expected.attempts + 1)
        if error is None:
            assignments += ["progress = :done", "#result = :result"]
            values.update({":outcome": _s(TaskStatus.SUCCEEDED), ":done": _n(1), ":result": _s(result_json or "null")})
            names["#result"] = "result"
        else:
            assignments += ["error_type = :type", "error_message = :message"]
            values.update({":outcome": _s(TaskStatus.FAILED), ":type": _s(error.type), ":message": _s(error.message)})
        update = "SET " + ", ".join(assignments) + " REMOVE lease_until"
        return self._update(expected.task_id, update, condition, values, names)


def _refused_or(error: ClientError) -> Exception:
    if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
        return error
    # ReturnValuesOnConditionCheckFailure=ALL_OLD: the record as it stood, without a second read.
    item: dict[str, Any] | None = error.response.get("Item")  # type: ignore[assignment]
    return TransitionRefused(from_item(item) if item else None)
