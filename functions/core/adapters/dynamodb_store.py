"""Task records in DynamoDB: each transition of core.domain.lifecycle is one conditional write with the transition's own
condition, so races resolve in the table. AWS failures leave as domain errors (TransitionRefused, StoreUnavailable)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from core.adapters.aws_errors import AwsError, error_code, is_aws_unavailable
from core.domain.lifecycle import TRANSITIONS, UPLOAD_CLAIM_CONDITION, Write
from core.domain.listing import ListPosition, OwnedTasks
from core.domain.records import TaskFailure, TaskRecord, TaskStatus
from core.domain.store import TransitionRefused, UploadTaken
from core.errors import StoreUnavailable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import PutTypeDef

_STATUS = "#status"
_NAMES = {_STATUS: "status"}
# The table's global secondary index of each owner's tasks by creation time (template.yaml, TasksTable; a test keeps the
# two alike). Besides the keys it holds a task's name and expiry, which never change: a task's creation writes it once,
# and none of the updates of its run do (docs/design.md, "Listing and the dashboard").
OWNER_INDEX = "by-owner"
# The key of an upload's claim (core.domain.lifecycle.UploadClaim): never a task id, which is a UUID.
UPLOAD_CLAIM_PREFIX = "upload:"
# Index entries one Query reads when it filters by task name (≈ 150 bytes each: 200 are ≈ 4 read units at most).
TASK_FILTER_READ = 200
# Queries of the index one page makes at most before it answers with what it found and where to go on.
MAX_INDEX_QUERIES = 5
# BatchGetItem reads at most 100 items a call, and hands back what it could not read (UnprocessedKeys): asked again
# after these pauses, as AWS advises (exponential backoff), then the store is unavailable.
BATCH_GET_MAX_KEYS = 100
BATCH_GET_BACKOFF_SECONDS = (0.05, 0.1, 0.2, 0.4)


def _s(value: str) -> dict[str, Any]:
    return {"S": value}


def _n(value: float) -> dict[str, Any]:
    return {"N": repr(value) if isinstance(value, float) else str(value)}


def to_item(record: TaskRecord) -> dict[str, Any]:
    item: dict[str, Any] = {
        "task_id": _s(record.task_id),
        "task": _s(record.task),
        "status": _s(record.status.value),
        "created_at": _n(record.created_at),
        "expires_at": _n(record.expires_at),
        "owner": _s(record.owner),
        "attempts": _n(record.attempts),
    }
    optional_numbers = {
        "progress": record.progress,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "lease_until": record.lease_until,
        "expected_seconds": record.expected_seconds,
        "progress_at": record.progress_at,
    }
    item.update({key: _n(value) for key, value in optional_numbers.items() if value is not None})
    optional_texts = {
        "input": record.input_json,
        "input_ref": record.input_ref,
        "input_version": record.input_version,
        "result": record.result_json,
        "result_ref": record.result_ref,
        "webhook_url": record.webhook_url,
        "execution_arn": record.execution_arn,
        "current_step": record.current_step,
    }
    item.update({key: _s(value) for key, value in optional_texts.items() if value is not None})
    if record.durable:
        item["durable"] = {"BOOL": True}
    if record.steps_done:
        item["steps_done"] = _n(record.steps_done)
    if record.step_attempts:
        item["step_attempts"] = _n(record.step_attempts)
    if record.result_bytes is not None:
        item["result_bytes"] = _n(record.result_bytes)
    if record.error is not None:
        item.update(_error_attributes(record.error))
    if record.request_hash is not None:
        item["request_hash"] = _s(record.request_hash)
    item["retry_after"] = _n(record.retry_after_seconds)
    if record.last_attempt:
        item["last_attempt"] = {"BOOL": True}
    return item


def _error_attributes(error: TaskFailure) -> dict[str, Any]:
    attributes = {"error_type": _s(error.type), "error_message": _s(error.message)}
    if error.errors:
        attributes["error_fields"] = _s(_encode_fields(error.errors))
    if error.errors_omitted:
        attributes["error_fields_omitted"] = _n(error.errors_omitted)
    return attributes


def _encode_fields(errors: tuple[dict[str, str], ...]) -> str:
    return json.dumps(list(errors), separators=(",", ":"))


def _decode_fields(text: str | None) -> tuple[dict[str, str], ...]:
    return tuple(json.loads(text)) if text else ()


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
        input_json=text("input"),
        created_at=float(item["created_at"]["N"]),
        expires_at=int(item["expires_at"]["N"]),
        owner=item["owner"]["S"],
        attempts=int(item.get("attempts", {"N": "0"})["N"]),
        progress=number("progress"),
        started_at=number("started_at"),
        finished_at=number("finished_at"),
        lease_until=number("lease_until"),
        expected_seconds=number("expected_seconds"),
        progress_at=number("progress_at"),
        result_json=text("result"),
        error=TaskFailure(
            error_type,
            text("error_message") or "",
            _decode_fields(text("error_fields")),
            int(number("error_fields_omitted") or 0),
        )
        if error_type
        else None,
        request_hash=text("request_hash"),
        retry_after_seconds=int(item["retry_after"]["N"]),
        last_attempt=item.get("last_attempt", {}).get("BOOL", False),
        input_ref=text("input_ref"),
        input_version=text("input_version"),
        result_ref=text("result_ref"),
        result_bytes=int(item["result_bytes"]["N"]) if "result_bytes" in item else None,
        webhook_url=text("webhook_url"),
        durable=item.get("durable", {}).get("BOOL", False),
        execution_arn=text("execution_arn"),
        steps_done=int(item["steps_done"]["N"]) if "steps_done" in item else 0,
        current_step=text("current_step"),
        step_attempts=int(item["step_attempts"]["N"]) if "step_attempts" in item else 0,
    )


# Why DynamoDB cancels a transaction when a later attempt may succeed: another transaction on the same item in
# flight, or throttling.
_BUSY = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"})


class _Cancelled(Exception):
    """A transaction's conditions refused: for each of its items, None when its condition held, else the item as it
    stood ({} when there was none)."""

    def __init__(self, reasons: list[dict[str, Any] | None]) -> None:
        super().__init__("transaction cancelled")
        self.reasons = reasons


@contextmanager
def _domain_errors() -> Iterator[None]:
    """A refused condition as TransitionRefused (with the record as it stood: ReturnValuesOnConditionCheckFailure),
    a refused transaction as _Cancelled, a throttled or unreachable table as StoreUnavailable; anything else (a bug, a
    missing permission) as it is."""
    try:
        yield
    except AwsError as error:
        code = error_code(error)
        if code == "ConditionalCheckFailedException":
            item: dict[str, Any] | None = error.response.get("Item")  # type: ignore[union-attr,assignment]
            raise TransitionRefused(from_item(item) if item else None) from error
        if code == "TransactionCanceledException":
            reasons: list[dict[str, Any]] = error.response.get("CancellationReasons", [])  # type: ignore[union-attr,assignment]
            if any(reason.get("Code") == "ConditionalCheckFailed" for reason in reasons):
                raise _Cancelled(
                    [
                        reason.get("Item", {}) if reason.get("Code") == "ConditionalCheckFailed" else None
                        for reason in reasons
                    ]
                ) from error
            if any(reason.get("Code") in _BUSY for reason in reasons):
                raise StoreUnavailable("the task store is busy; try again") from error
        if is_aws_unavailable(error):
            raise StoreUnavailable("the task store is busy or unavailable; try again") from error
        raise


def _position(key: dict[str, Any]) -> ListPosition:
    return ListPosition(float(key["created_at"]["N"]), key["task_id"]["S"])


class DynamoTaskStore:
    def __init__(self, table_name: str, client: DynamoDBClient, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self._table = table_name
        self._client = client
        self._sleep = sleep

    def _key(self, task_id: str) -> dict[str, Any]:
        return {"task_id": _s(task_id)}

    def _update(
        self, task_id: str, write: Write, update: str, values: dict[str, Any], names: dict[str, str] = _NAMES
    ) -> TaskRecord:
        with _domain_errors():
            response = self._client.update_item(
                TableName=self._table,
                Key=self._key(task_id),
                UpdateExpression=update,
                ConditionExpression=TRANSITIONS[write].condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        return from_item(response["Attributes"])

    def create(self, record: TaskRecord, now: float, *, upload: str | None = None) -> None:
        put: PutTypeDef = {
            "TableName": self._table,
            "Item": to_item(record),
            "ConditionExpression": TRANSITIONS[Write.CREATE].condition,
            "ExpressionAttributeValues": {":now": _n(now)},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if upload is None:
            with _domain_errors():
                self._client.put_item(**put)
            return
        # The upload's claim is an item of its own in the same table (no second table to declare and grant), keyed
        # by the upload: it has no owner or created_at, so the owner index never holds it, and no status, so the
        # notifier's stream filter drops it. Written with the record or not at all.
        claim: PutTypeDef = {
            "TableName": self._table,
            "Item": {
                "task_id": _s(f"{UPLOAD_CLAIM_PREFIX}{upload}"),
                "claimed_by": _s(record.task_id),
                "expires_at": _n(record.expires_at),
            },
            "ConditionExpression": UPLOAD_CLAIM_CONDITION,
            "ExpressionAttributeValues": {":now": _n(now), ":task_id": _s(record.task_id)},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        try:
            with _domain_errors():
                self._client.transact_write_items(TransactItems=[{"Put": put}, {"Put": claim}])
        except _Cancelled as cancelled:
            record_refused, claim_refused = cancelled.reasons
            if record_refused is not None:
                raise TransitionRefused(from_item(record_refused) if record_refused else None) from cancelled
            raise UploadTaken(claim_refused["claimed_by"]["S"] if claim_refused else "") from cancelled

    def get(self, task_id: str) -> TaskRecord | None:
        with _domain_errors():
            # Strongly consistent: a GET right after the 202 must see the task it was told about.
            response = self._client.get_item(TableName=self._table, Key=self._key(task_id), ConsistentRead=True)
        item = response.get("Item")
        return from_item(item) if item else None

    def withdraw(self, task_id: str) -> None:
        with _domain_errors():
            self._client.delete_item(
                TableName=self._table,
                Key=self._key(task_id),
                ConditionExpression=TRANSITIONS[Write.WITHDRAW].condition,
                ExpressionAttributeNames=_NAMES,
                ExpressionAttributeValues={":queued": _s(TaskStatus.QUEUED)},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )

    def cancel(self, task_id: str, now: float) -> TaskRecord:
        return self._update(
            task_id,
            Write.CANCEL,
            f"SET {_STATUS} = :cancelled, finished_at = :now REMOVE lease_until",
            {
                ":cancelled": _s(TaskStatus.CANCELLED),
                ":queued": _s(TaskStatus.QUEUED),
                ":running": _s(TaskStatus.RUNNING),
                ":now": _n(now),
            },
        )

    def claim(
        self, task_id: str, now: float, lease_seconds: float, *, started_at: float, last_attempt: bool = False
    ) -> TaskRecord:
        return self._update(
            task_id,
            Write.CLAIM,
            f"SET {_STATUS} = :running, started_at = :started, lease_until = :lease, "
            "attempts = if_not_exists(attempts, :zero) + :one, last_attempt = :last",
            {
                ":running": _s(TaskStatus.RUNNING),
                ":queued": _s(TaskStatus.QUEUED),
                ":now": _n(now),
                ":started": _n(started_at),
                ":lease": _n(now + lease_seconds),
                ":zero": _n(0),
                ":one": _n(1),
                ":last": {"BOOL": last_attempt},
            },
        )

    def give_up(self, task_id: str, now: float, error: TaskFailure) -> TaskRecord:
        assignments, values = _failure_assignments(error)
        return self._update(
            task_id,
            Write.GIVE_UP,
            f"SET {_STATUS} = :failed, finished_at = :now, {assignments} REMOVE lease_until",
            values
            | {
                ":failed": _s(TaskStatus.FAILED),
                ":queued": _s(TaskStatus.QUEUED),
                ":running": _s(TaskStatus.RUNNING),
                ":now": _n(now),
            },
        )

    def resume(self, task_id: str, now: float, lease_seconds: float, *, execution_arn: str) -> TaskRecord:
        return self._update(
            task_id,
            Write.RESUME,
            f"SET {_STATUS} = :running, execution_arn = :execution, started_at = if_not_exists(started_at, :now), "
            "attempts = if_not_exists(attempts, :zero) + :one, lease_until = :lease",
            {
                ":running": _s(TaskStatus.RUNNING),
                ":queued": _s(TaskStatus.QUEUED),
                ":execution": _s(execution_arn),
                ":now": _n(now),
                ":zero": _n(0),
                ":one": _n(1),
                ":lease": _n(now + lease_seconds),
            },
        )

    def begin_step(
        self, expected: TaskRecord, now: float, lease_seconds: float, *, name: str, steps_done: int, step_attempts: int
    ) -> TaskRecord:
        return self._update_unchanged(
            expected,
            Write.BEGIN_STEP,
            "SET current_step = :step, steps_done = :done, step_attempts = :attempts, lease_until = :lease",
            {
                ":step": _s(name),
                ":done": _n(steps_done),
                ":attempts": _n(step_attempts),
                ":lease": _n(now + lease_seconds),
            },
        )

    def _update_unchanged(
        self, expected: TaskRecord, write: Write, update: str, values: dict[str, Any], names: dict[str, str] = _NAMES
    ) -> TaskRecord:
        """A write of a run that must find the record as it last saw it (the transition's condition)."""
        guard = {":expected_status": _s(expected.status), ":expected_attempts": _n(expected.attempts)}
        return self._update(expected.task_id, write, update, guard | values, names)

    def mark_last_attempt(self, expected: TaskRecord) -> None:
        self._update_unchanged(expected, Write.MARK_LAST_ATTEMPT, "SET last_attempt = :last", {":last": {"BOOL": True}})

    def report_progress(self, expected: TaskRecord, fraction: float, now: float) -> None:
        self._update_unchanged(
            expected,
            Write.REPORT_PROGRESS,
            "SET progress = :progress, progress_at = :now",
            {":progress": _n(fraction), ":now": _n(now)},
        )

    def release(self, expected: TaskRecord, *, claimed: bool) -> None:
        if claimed:
            self._update_unchanged(
                expected,
                Write.RELEASE,
                f"SET {_STATUS} = :queued REMOVE lease_until",
                {":queued": _s(TaskStatus.QUEUED)},
            )
        else:
            self._update_unchanged(
                expected, Write.RELEASE, "SET attempts = :next", {":next": _n(expected.attempts + 1)}
            )

    def finish(
        self,
        expected: TaskRecord,
        now: float,
        *,
        claimed: bool,
        started_at: float,
        result_json: str | None = None,
        error: TaskFailure | None = None,
        result_ref: str | None = None,
        result_bytes: int | None = None,
        steps_done: int | None = None,
    ) -> TaskRecord:
        values: dict[str, Any] = {":now": _n(now), ":started": _n(started_at)}
        assignments = [f"{_STATUS} = :outcome", "finished_at = :now", "started_at = :started"]
        names = dict(_NAMES)
        if not claimed:
            assignments.append("attempts = :next")
            values[":next"] = _n(expected.attempts + 1)
        if error is None and result_ref is not None:
            assignments += ["progress = :done", "result_ref = :result_ref", "result_bytes = :result_bytes"]
            values.update(
                {
                    ":outcome": _s(TaskStatus.SUCCEEDED),
                    ":done": _n(1),
                    ":result_ref": _s(result_ref),
                    ":result_bytes": _n(result_bytes or 0),
                }
            )
        elif error is None:
            assignments += ["progress = :done", "#result = :result"]
            values.update({":outcome": _s(TaskStatus.SUCCEEDED), ":done": _n(1), ":result": _s(result_json or "null")})
            names["#result"] = "result"
        else:
            failure, failure_values = _failure_assignments(error)
            assignments.append(failure)
            values.update(failure_values | {":outcome": _s(TaskStatus.FAILED)})
        removed = ["lease_until"]
        if steps_done is not None:
            assignments.append("steps_done = :steps_done")
            values[":steps_done"] = _n(steps_done)
            removed.append("current_step")
        update = "SET " + ", ".join(assignments) + " REMOVE " + ", ".join(removed)
        return self._update_unchanged(expected, Write.FINISH, update, values, names)

    def list_owned(
        self, owner: str, *, task: str | None, after: ListPosition | None, limit: int, now: float
    ) -> OwnedTasks:
        """The owner index, newest first, then the records it names (BatchGetItem, strongly consistent: a page shows
        each task as a GET right after would). Expired records and other kinds of task are filtered out in the index,
        before any record is read."""
        names = {"#owner": "owner"}
        values = {":owner": _s(owner), ":now": _n(now)}
        kept = "expires_at > :now"
        if task is not None:
            names["#task"] = "task"
            values[":task"] = _s(task)
            kept += " AND #task = :task"
        start = None if after is None else self._index_key(owner, after)
        keys: list[dict[str, Any]] = []
        position: ListPosition | None = None
        for _ in range(MAX_INDEX_QUERIES):
            request: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": OWNER_INDEX,
                "KeyConditionExpression": "#owner = :owner",
                "FilterExpression": kept,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
                "ScanIndexForward": False,
                # Limit counts the entries read, before the filter (a filtered page reads further).
                "Limit": limit if task is None else max(limit, TASK_FILTER_READ),
            }
            if start is not None:
                request["ExclusiveStartKey"] = start
            with _domain_errors():
                response = self._client.query(**request)
            items = response.get("Items", [])
            wanted = limit - len(keys)
            keys += items[:wanted]
            last = response.get("LastEvaluatedKey")
            if len(items) > wanted:
                position = _position(keys[-1])  # cut short inside this response: go on after the last one kept
                break
            position = None if last is None else _position(last)
            if last is None or len(keys) == limit:
                break
            start = last
        return OwnedTasks(self._records([key["task_id"]["S"] for key in keys]), position)

    @staticmethod
    def _index_key(owner: str, position: ListPosition) -> dict[str, Any]:
        return {"owner": _s(owner), "created_at": _n(position.created_at), "task_id": _s(position.task_id)}

    def _records(self, task_ids: Sequence[str]) -> tuple[TaskRecord, ...]:
        """The records of `task_ids`, in that order; one deleted since the index named it (withdrawn, or removed by
        its TTL) is left out."""
        if not task_ids:
            return ()
        if len(task_ids) > BATCH_GET_MAX_KEYS:
            raise ValueError(f"at most {BATCH_GET_MAX_KEYS} records at once, not {len(task_ids)}")
        found: dict[str, TaskRecord] = {}
        pending: dict[str, Any] = {
            self._table: {"Keys": [self._key(task_id) for task_id in task_ids], "ConsistentRead": True}
        }
        for pause in (*BATCH_GET_BACKOFF_SECONDS, None):
            with _domain_errors():
                response = self._client.batch_get_item(RequestItems=pending)
            for item in response.get("Responses", {}).get(self._table, []):
                record = from_item(item)
                found[record.task_id] = record
            pending = response.get("UnprocessedKeys") or {}
            if not pending:
                return tuple(found[task_id] for task_id in task_ids if task_id in found)
            if pause is not None:
                self._sleep(pause)
        raise StoreUnavailable("the task store is busy: some tasks of this page could not be read; try again")


def _failure_assignments(error: TaskFailure) -> tuple[str, dict[str, Any]]:
    attributes = _error_attributes(error)
    return ", ".join(f"{name} = :{name}" for name in attributes), {
        f":{name}": value for name, value in attributes.items()
    }
