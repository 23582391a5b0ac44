"""The local stack's DynamoDB stream event source (devstack/stream_source.py) on moto's stream of the task table:
the template's filter, batches, retries from the first failed record, and the on-failure queue after the last retry."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from core.adapters.aws import task_store
from core.services.events import TERMINAL_TRANSITION
from devstack.resources import LocalResources
from devstack.stream_source import StreamEventSource
from devstack.template import FunctionSpec
from tests.e2e.e2e_support import wait_until
from tests.support.driver import Driver


class FakeFunction:
    """Stands in for a LambdaFunction: records each batch and answers as `answer` says."""

    def __init__(self, answer: Callable[[list[dict[str, Any]], int], Any]) -> None:
        self.spec = FunctionSpec(
            name="Notifier", handler="notifier.app.lambda_handler", timeout=10, memory=256, environment={}
        )
        self.batches: list[list[str]] = []
        self._answer = answer
        self._lock = threading.Lock()

    def invoke(self, event: dict[str, Any]) -> Any:
        with self._lock:
            self.batches.append([record["dynamodb"]["NewImage"]["task_id"]["S"] for record in event["Records"]])
            return self._answer(event["Records"], len(self.batches))


def properties(**changes: Any) -> dict[str, Any]:
    return {
        "StartingPosition": "TRIM_HORIZON",
        "BatchSize": 10,
        "MaximumBatchingWindowInSeconds": 0.5,
        "FilterCriteria": {"Filters": [{"Pattern": json.dumps(TERMINAL_TRANSITION)}]},
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "MaximumRetryAttempts": 2,
    } | changes


def finish_tasks(driver: Driver, count: int) -> list[str]:
    """`count` tasks submitted, claimed and finished: three writes each, one of them a task end."""
    store, ids = task_store(), []
    for _ in range(count):
        task_id = driver.submit("multiply", {"x": 1, "y": 1}).body["task_id"]
        now = time.time()
        claimed = store.claim(task_id, now, 60, started_at=now)
        store.finish(claimed, now, claimed=True, started_at=now, result_json="1")
        ids.append(task_id)
    return ids


def start(aws: LocalResources, function: FakeFunction, **changes: Any) -> StreamEventSource:
    dynamodb = boto3.client("dynamodb")
    source = StreamEventSource(
        boto3.client("dynamodbstreams"),
        function,  # type: ignore[arg-type]
        stream_arn=dynamodb.describe_table(TableName=aws.table_name)["Table"]["LatestStreamArn"],
        properties=properties(**changes),
        sqs=boto3.client("sqs"),
        on_failure_url=aws["NotifierDeadLetterQueue"].ref,
    )
    source.start()
    return source


def test_only_task_ends_reach_the_function_in_one_batch(aws: LocalResources, driver: Driver) -> None:
    ids = finish_tasks(driver, 3)
    function = FakeFunction(lambda records, call: {"batchItemFailures": []})
    source = start(aws, function)
    try:
        wait_until(lambda: function.batches, timeout=10)
    finally:
        source.stop()

    assert function.batches == [ids]


def test_a_partial_failure_is_retried_from_the_first_failed_record(aws: LocalResources, driver: Driver) -> None:
    ids = finish_tasks(driver, 3)

    def second_fails_once(records: list[dict[str, Any]], call: int) -> Any:
        if call == 1:
            return {"batchItemFailures": [{"itemIdentifier": records[1]["dynamodb"]["SequenceNumber"]}]}
        return {"batchItemFailures": []}

    function = FakeFunction(second_fails_once)
    source = start(aws, function)
    try:
        wait_until(lambda: len(function.batches) >= 2, timeout=10)
    finally:
        source.stop()

    assert function.batches == [ids, ids[1:]]


def test_after_the_last_retry_the_batch_goes_to_the_on_failure_queue_and_the_stream_moves_on(
    aws: LocalResources, driver: Driver
) -> None:
    failing = set(finish_tasks(driver, 1))

    def fails_for_the_first_task(records: list[dict[str, Any]], call: int) -> Any:
        if records[0]["dynamodb"]["NewImage"]["task_id"]["S"] in failing:
            raise RuntimeError("the bus is down")
        return {"batchItemFailures": []}

    function = FakeFunction(fails_for_the_first_task)
    source = start(aws, function, MaximumRetryAttempts=1)
    try:
        wait_until(lambda: len(function.batches) >= 2, timeout=10)
        later = finish_tasks(driver, 1)
        wait_until(lambda: len(function.batches) >= 3, timeout=10)
    finally:
        source.stop()

    (first,) = failing
    assert function.batches == [[first], [first], later]  # one try, one retry, then the next record
    sqs = boto3.client("sqs")
    (message,) = sqs.receive_message(QueueUrl=aws["NotifierDeadLetterQueue"].ref)["Messages"]
    info = json.loads(message["Body"])["DDBStreamBatchInfo"]
    assert info["batchSize"] == 1


@pytest.mark.parametrize("pattern", [{"dynamodb": {"NewImage": {"status": {"S": [{"exists": True}]}}}}])
def test_a_content_filter_is_refused_not_misread(aws: LocalResources, driver: Driver, pattern: Any) -> None:
    from devstack.stream_source import passes

    with pytest.raises(NotImplementedError):
        passes([{"Pattern": json.dumps(pattern)}], {"dynamodb": {"NewImage": {"status": {"S": "failed"}}}})
