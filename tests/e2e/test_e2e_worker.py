"""The queue side, over real HTTP: cancellation, failures, the dead-letter queue, load."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from devstack import LocalStack
from tests.e2e.e2e_support import wait_until

pytestmark = pytest.mark.e2e


def submit(http: requests.Session, base_url: str, task: str, inputs: dict[str, Any]) -> str:
    response = http.post(f"{base_url}/{task}", json=inputs, timeout=30)
    assert response.status_code == 202, response.text
    task_id: str = response.json()["task_id"]
    return task_id


def test_cancel_pending_task(
    stack: LocalStack, http: requests.Session, base_url: str, finished: Callable[..., dict[str, Any]]
) -> None:
    # GIVEN a task that takes a while
    task_id = submit(http, base_url, "e2e-nap", {"seconds": 1.5})

    # WHEN it is cancelled before it finishes
    response = http.delete(f"{base_url}/e2e-nap/{task_id}", timeout=10)

    # THEN it is cancelled, stays so, and cancelling again is not an error
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert finished("e2e-nap", task_id)["status"] == "cancelled"
    assert http.delete(f"{base_url}/e2e-nap/{task_id}", timeout=10).status_code == 200


def test_failing_task_is_failed_with_its_error(
    stack: LocalStack, http: requests.Session, base_url: str, finished: Callable[..., dict[str, Any]]
) -> None:
    task_id = submit(http, base_url, "e2e-fail", {})
    result = finished("e2e-fail", task_id)
    assert result["status"] == "failed"
    assert result["error"] == {"type": "ValueError", "message": "this task always fails"}


def test_poison_message_ends_in_dead_letter_queue_and_task_failed(
    stack: LocalStack, http: requests.Session, base_url: str, finished: Callable[..., dict[str, Any]]
) -> None:
    # GIVEN a task that fails transiently on every delivery
    task_id = submit(http, base_url, "e2e-poison", {})

    # WHEN it has been delivered maxReceiveCount times
    result = finished("e2e-poison", task_id)

    # THEN the task is failed, and its message moves to the dead-letter queue, whose consumer takes it and leaves the
    # task's own failure as it was
    assert result["status"] == "failed"
    assert result["error"]["type"] == "GaveUp"
    assert "gave up after 3 attempts" in result["error"]["message"]
    assert result["attempts"] == stack.resources.max_receive_count

    def dead_letter_queue_empty() -> bool:
        attributes = stack.sqs.get_queue_attributes(
            QueueUrl=stack.resources.dlq_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return attributes == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}

    wait_until(dead_letter_queue_empty, timeout=15)
    assert http.get(f"{base_url}/e2e-poison/{task_id}", timeout=10).json() == result


def test_300_concurrent_tasks_all_correct(
    http: requests.Session, base_url: str, finished: Callable[..., dict[str, Any]]
) -> None:
    # GIVEN 300 submissions at once
    count = int(os.environ.get("E2E_LOAD_TASKS", "300"))
    pairs = [(n, n % 17 + 1) for n in range(count)]
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=32) as pool:
        ids = list(pool.map(lambda p: submit(http, base_url, "multiply", {"x": p[0], "y": p[1]}), pairs))
        submitted = time.monotonic() - started
        # WHEN every one has finished (polled as a client would, once a second: pollers share the stack's CPU)
        results = list(pool.map(lambda task_id: finished("multiply", task_id, timeout=180, interval=1.0), ids))
    elapsed = time.monotonic() - started

    # THEN none is lost and every result is right
    assert len(set(ids)) == count
    assert [r["status"] for r in results] == ["succeeded"] * count
    assert [r["result"] for r in results] == [x * y for x, y in pairs]
    print(f"{count} tasks: submitted in {submitted:.1f} s, all finished in {elapsed:.1f} s")


def test_a_task_that_outlasts_the_visibility_timeout_runs_once_on_one_delivery(
    stack: LocalStack, http: requests.Session, base_url: str, finished: Callable[..., dict[str, Any]], runs_dir: Path
) -> None:
    # GIVEN a task that runs 6 s on a queue whose visibility timeout is 2 s
    visibility = stack.sqs.get_queue_attributes(
        QueueUrl=stack.resources.queue_url, AttributeNames=["VisibilityTimeout"]
    )["Attributes"]["VisibilityTimeout"]
    assert int(visibility) * 2 < 6
    note = f"outlasts-{uuid.uuid4()}"
    task_id = submit(http, base_url, "e2e-noted-nap", {"seconds": 6, "note": note})

    # WHEN it has finished
    result = finished("e2e-noted-nap", task_id, timeout=60)

    # THEN it ran once, on its first delivery: its message was kept hidden while it ran, so no later delivery
    # found it (none was counted, none marked the run as the last attempt allowed)
    assert result["status"] == "succeeded"
    assert (runs_dir / note).read_text() == "run\n"
    assert result["attempts"] == 1
    item = stack.dynamodb.get_item(TableName=stack.resources.table_name, Key={"task_id": {"S": task_id}})["Item"]
    assert item["last_attempt"] == {"BOOL": False}
