"""When the worker writes what: a quick task costs one read and one write; a long one is claimed while it runs."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from msgspec.structs import replace

from core import registry
from core.adapters.aws import dynamodb_client, task_store
from core.services import runner
from tests.support import extra_tasks
from tests.support.driver import Driver


@pytest.fixture
def dynamodb_calls() -> Iterator[Counter[str]]:
    calls: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    events = dynamodb_client().meta.events
    events.register("before-call.dynamodb", count)
    yield calls
    events.unregister("before-call.dynamodb", count)


@pytest.mark.parametrize(
    ("task", "inputs", "result", "writes"),
    [
        pytest.param("multiply", {"x": 2, "y": 3}, 6, 1, id="quick: its outcome only"),
        pytest.param("exclusive-counting", {"n": 5}, 5, 2, id="exclusive: claimed before it runs, then its outcome"),
    ],
)
def test_a_task_that_ends_within_a_second_is_read_once_and_written(
    driver: Driver, dynamodb_calls: Counter[str], task: str, inputs: dict[str, int], result: int, writes: int
) -> None:
    task_id = driver.submit(task, inputs).body["task_id"]
    dynamodb_calls.clear()

    driver.deliver()

    assert dynamodb_calls == Counter({"GetItem": 1, "UpdateItem": writes})
    done = driver.get(task, task_id).body
    assert done["result"] == result
    assert done["attempts"] == 1
    assert done["started_at"] is not None


def test_exclusive_task_delivered_again_while_it_runs_is_not_run_beside_itself(driver: Driver) -> None:
    # GIVEN an exclusive task whose first delivery is running
    task_id = driver.submit("exclusive-counting", {"n": 6}).body["task_id"]
    messages = driver.receive()
    started, release = threading.Event(), threading.Event()
    runs: list[int] = []

    def held(inputs: Any, progress: Any) -> int:
        runs.append(inputs.n)
        started.set()
        release.wait(10)
        return int(inputs.n)

    original = registry.get_task("exclusive-counting")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(registry._definitions, "exclusive-counting", replace(original, function=held))
        first = threading.Thread(target=driver.run_worker, args=(messages,))
        first.start()
        try:
            assert started.wait(10)
            seen = driver.get("exclusive-counting", task_id).body["status"]

            # WHEN SQS delivers the same message again meanwhile
            returned = driver.run_worker(messages)
        finally:
            release.set()
            first.join()

    # THEN the second delivery does not run it, and goes back to the queue; the task runs once
    assert seen == "running"
    assert returned == [messages[0]["MessageId"]]
    assert runs == [6]
    assert driver.get("exclusive-counting", task_id).body["result"] == 6
    assert driver.queue_depth(driver.resources.queue_url) == 0  # the first run's delete took the message


def test_exclusive_run_that_loses_the_claim_to_another_delivery_runs_nothing_and_leaves_the_message(
    driver: Driver,
) -> None:
    # GIVEN two deliveries of an exclusive task's message that both read it queued; the other claims it first
    task_id = driver.submit("exclusive-counting", {"n": 9}).body["task_id"]
    messages = driver.receive()
    raced: list[bool] = []

    def claimed_first(**_: Any) -> None:
        if not raced:  # this run's claim, about to be sent
            raced.append(True)
            task_store().claim(task_id, now=time.time(), lease_seconds=600, started_at=time.time())

    event = "before-call.dynamodb.UpdateItem"
    dynamodb_client().meta.events.register(event, claimed_first)
    try:
        # WHEN this delivery's claim is refused
        returned = driver.run_worker(messages)
    finally:
        dynamodb_client().meta.events.unregister(event, claimed_first)

    # THEN it runs nothing, and its message goes back for a later delivery (the other's worker may yet stop)
    assert "exclusive-9" not in extra_tasks.calls
    assert returned == [messages[0]["MessageId"]]
    assert driver.get("exclusive-counting", task_id).body["status"] == "running"


def test_long_task_is_shown_running_with_a_lease_while_it_runs(driver: Driver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "CLAIM_AFTER_SECONDS", 0.05)
    task_id = driver.submit("nap", {"seconds": 1.0}).body["task_id"]
    messages = driver.receive()
    worker = threading.Thread(target=driver.run_worker, args=(messages,))

    worker.start()
    deadline = time.monotonic() + 0.8
    seen = driver.get("nap", task_id).body
    while seen["status"] == "queued" and time.monotonic() < deadline:
        time.sleep(0.02)
        seen = driver.get("nap", task_id).body
    item = driver.item(task_id)
    worker.join()

    assert seen["status"] == "running"
    assert item is not None
    assert float(item["lease_until"]["N"]) > time.time() - 1
    done = driver.get("nap", task_id).body
    assert done["status"] == "succeeded"
    assert done["attempts"] == 1


def test_quick_task_cancelled_while_it_runs_keeps_no_result(driver: Driver) -> None:
    task_id = driver.submit("multiply", {"x": 2, "y": 3}).body["task_id"]

    def cancelled_midway(inputs: Any, progress: Any) -> int:
        driver.cancel("multiply", task_id)
        return 6

    original = registry.get_task("multiply")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(registry._definitions, "multiply", replace(original, function=cancelled_midway))
        assert driver.deliver() == []

    body = driver.get("multiply", task_id).body
    assert body["status"] == "cancelled"
    assert "result" not in body
