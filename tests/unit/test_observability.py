"""What an operator sees: EMF metric documents and log lines keyed by task id."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import pytest

from core.observability import logger
from tests.support.driver import Driver
from tests.support.threads import side_by_side


def logged(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The handlers' log lines as CloudWatch receives them: each record through the Powertools formatter."""
    return [json.loads(logger.registered_formatter.format(record)) for record in caplog.records]


def emitted(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def metric_documents(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Metric name -> its EMF document."""
    found = {}
    for line in lines:
        for directive in line.get("_aws", {}).get("CloudWatchMetrics", []):
            for metric in directive["Metrics"]:
                found[metric["Name"]] = {**line, "_directive": directive, "_unit": metric["Unit"]}
    return found


def test_submit_emits_tasks_submitted_by_task_and_logs_the_task_id(
    driver: Driver, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    task_id = driver.submit("multiply", {"x": 2, "y": 3}).body["task_id"]

    lines = emitted(capsys.readouterr().out)

    submitted = metric_documents(lines)["TasksSubmitted"]
    assert submitted["_directive"]["Namespace"] == "LongRunningTasks"
    assert submitted["task"] == "multiply"
    assert [set(dimensions) for dimensions in submitted["_directive"]["Dimensions"]] == [{"service", "task"}]
    accepted = next(line for line in logged(caplog) if line.get("message") == "task accepted")
    assert accepted["correlation_id"] == task_id
    assert accepted["level"] == "INFO"
    assert accepted["function_request_id"]
    assert "ColdStart" in metric_documents(lines) or not accepted["cold_start"]


def test_worker_emits_outcome_duration_and_queue_wait(
    driver: Driver, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    task_id = driver.submit("multiply", {"x": 2, "y": 3}).body["task_id"]
    failed_id = driver.submit("always-fails", {}).body["task_id"]
    capsys.readouterr()
    caplog.clear()
    # Each record formatted as it is logged, as Lambda ships it (caplog's records are formatted after the fact).
    formatted: list[dict[str, Any]] = []
    at_emit = logging.Handler()
    at_emit.emit = lambda record: formatted.append(json.loads(logger.registered_formatter.format(record)))  # type: ignore[method-assign]
    logging.getLogger(logger.name).addHandler(at_emit)
    try:
        driver.deliver()
    finally:
        logging.getLogger(logger.name).removeHandler(at_emit)

    lines = emitted(capsys.readouterr().out)
    metrics = metric_documents(lines)
    assert metrics["TasksSucceeded"]["task"] == "multiply"
    assert metrics["TasksFailed"]["task"] == "always-fails"
    assert metrics["TaskDuration"]["_unit"] == "Milliseconds"
    # Outcome, run time and queue wait of one task travel in one document, under its task dimension.
    assert {"TaskDuration", "QueueWait"} <= set(metrics["TasksSucceeded"])
    assert min(metrics["QueueWait"]["QueueWait"]) >= 0
    handled = [line for line in formatted if line.get("message") == "task message handled"]
    # Each task's line carries its own task id as the correlation id.
    assert {(line["correlation_id"], line["outcome"]) for line in handled} == {
        (task_id, "succeeded"),
        (failed_id, "failed"),
    }


def test_worker_gave_up_task_counts_as_failed(driver: Driver, capsys: pytest.CaptureFixture[str]) -> None:
    driver.submit("always-transient", {})
    for _ in range(driver.resources.max_receive_count):
        driver.deliver()

    metrics = metric_documents(emitted(capsys.readouterr().out))

    assert metrics["TasksFailed"]["task"] == "always-transient"


def test_invocations_side_by_side_in_one_process_each_emit_their_own_metric(
    driver: Driver, capsys: pytest.CaptureFixture[str]
) -> None:
    """As the local stack runs them: submits and GETs in threads of one process, with Powertools' state shared."""
    statuses: list[int] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        for i in range(20):
            task = ("multiply", "always-fails")[(n + i) % 2]
            submitted = driver.submit(task, {"x": n, "y": i} if task == "multiply" else {})
            got = driver.get(task, submitted.body["task_id"]) if submitted.status == 202 else submitted
            with lock:
                statuses.extend((submitted.status, got.status))

    side_by_side(client, 6, switch_interval=1e-5)

    assert statuses == [202] * len(statuses)
    # Concurrent prints interleave their lines (one process, one stdout), but each document is written whole.
    out = capsys.readouterr().out
    assert out.count('"TasksSubmitted":[1.0]') == 120


def test_a_message_whose_task_another_delivery_holds_is_one_info_line_not_an_error(
    driver: Driver, caplog: pytest.LogCaptureFixture
) -> None:
    from core.adapters.aws import task_store

    task_id = driver.submit("multiply", {"x": 2, "y": 3}).body["task_id"]
    task_store().claim(task_id, now=time.time(), lease_seconds=600, started_at=time.time())  # a live worker holds it
    caplog.clear()

    assert len(driver.deliver()) == 1  # handed back to SQS

    lines = logged(caplog)
    held = [line for line in lines if line["message"].startswith("task held by another delivery")]
    assert len(held) == 1
    assert held[0]["level"] == "INFO"
    assert task_id in held[0]["reason"]
    assert "exception" not in held[0]
    assert not [line for line in lines if line["level"] in ("ERROR", "WARNING")]


@pytest.mark.parametrize(
    ("task", "inputs"),
    [
        pytest.param("counting", {"n": 901}, id="quick: never claimed"),
        pytest.param("nap", {"seconds": 1.4}, id="claimed after its first second"),
        pytest.param("exclusive-counting", {"n": 902}, id="exclusive: claimed before it runs"),
    ],
)
def test_started_at_queue_wait_and_duration_measure_when_the_run_began(
    driver: Driver, capsys: pytest.CaptureFixture[str], task: str, inputs: dict[str, Any]
) -> None:
    # GIVEN a task that waited a moment in the queue
    task_id = driver.submit(task, inputs).body["task_id"]
    time.sleep(0.3)
    capsys.readouterr()

    # WHEN the worker runs it
    began = time.time()
    driver.deliver()
    ended = time.time()

    # THEN started_at is when the run began (not when a claim was written), and the metrics agree with the record
    done = driver.item(task_id)
    assert done is not None
    started, created, finished = (float(done[key]["N"]) for key in ("started_at", "created_at", "finished_at"))
    assert began - 0.05 <= started <= began + 0.2
    assert finished <= ended
    metrics = metric_documents(emitted(capsys.readouterr().out))["TasksSucceeded"]
    assert metrics["QueueWait"] == [pytest.approx((started - created) * 1000)]
    assert metrics["TaskDuration"] == [pytest.approx((finished - started) * 1000)]
    assert metrics["QueueWait"][0] >= 300
    if task == "nap":
        assert metrics["TaskDuration"][0] >= 1400  # the whole run, its first second included
