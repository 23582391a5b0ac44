"""The queue side, over real HTTP: cancellation, failures, the dead-letter queue, load."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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

    # THEN the task is failed and its message moves to the dead-letter queue
    assert result["status"] == "failed"
    assert result["error"]["type"] == "GaveUp"
    assert result["attempts"] == stack.resources.max_receive_count
    sqs = stack.sqs

    def in_dlq() -> list[dict[str, Any]]:
        messages = sqs.receive_message(
            QueueUrl=stack.resources.dlq_url, MaxNumberOfMessages=10, AttributeNames=["All"], VisibilityTimeout=0
        ).get("Messages", [])
        return [m for m in messages if json.loads(m["Body"])["task_id"] == task_id]

    (message,) = wait_until(in_dlq, timeout=15)
    assert int(message["Attributes"]["ApproximateReceiveCount"]) > stack.resources.max_receive_count


def test_500_concurrent_tasks_all_correct(
    http: requests.Session, base_url: str, finished: Callable[..., dict[str, Any]]
) -> None:
    # GIVEN 500 submissions at once
    count = int(os.environ.get("E2E_LOAD_TASKS", "500"))
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
