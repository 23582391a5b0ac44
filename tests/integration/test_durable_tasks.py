"""Durable tasks end to end in process: submitted through the API, started by the worker (an in-memory stand-in for
Lambda's Invoke records each start), run by the durable runner's handler under the durable-execution SDK's own test
runner (DurableFunctionTestRunner: checkpoints, replays, retries and waits as the service does them, without AWS),
against moto. The local stack's tests run the same handler in processes that get killed."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.lambda_service import OperationType
from aws_durable_execution_sdk_python_testing import DurableFunctionTestResult, DurableFunctionTestRunner
from msgspec.structs import replace

import tests.support.durable_tasks as durable_tasks
from core.adapters.aws import payload_store, task_store
from core.adapters.executions import ExecutionsUnavailable, InMemoryDurableExecutions
from core.adapters.queue import TaskMessage
from core.domain.records import TaskStatus
from core.services.dead_letters import ExecutionEnd
from core.services.durable import DurableRunner
from tests.support.driver import Driver

Handler = Callable[[dict[str, Any], DurableContext], Any]


@pytest.fixture
def executions(monkeypatch: pytest.MonkeyPatch) -> InMemoryDurableExecutions:
    """Lambda's durable executions as the worker and the result function see them."""
    fake = InMemoryDurableExecutions()
    monkeypatch.setattr("worker.app.durable_executions", lambda: fake)
    monkeypatch.setattr("result.app.service", lambda: _result_service(fake))
    return fake


def _result_service(fake: InMemoryDurableExecutions) -> Any:
    from core.adapters.aws import listing_secret
    from core.services.tasks import TaskService

    return TaskService(task_store(), retention_days=7, id_secret=listing_secret, executions=fake)


@pytest.fixture(autouse=True)
def _fresh_counts() -> Iterator[None]:
    durable_tasks.runs.clear()
    yield
    durable_tasks.hooks.clear()


def runner_handler(remaining_seconds: float | None = None) -> Handler:
    """The durable runner's handler (durable.app), with the invocation's remaining time fixed when given (the SDK's
    test runner gives every invocation 15 minutes)."""
    if remaining_seconds is None:
        from durable.app import run_task

        return run_task  # type: ignore[no-any-return]
    runner = DurableRunner(task_store(), payload_store(), max_receive_count=3, invocation_seconds=60)

    @durable_execution
    def run_task_short(payload: dict[str, Any], context: DurableContext) -> dict[str, Any]:
        return runner.run(payload, context, remaining_seconds=lambda: remaining_seconds)

    return run_task_short  # type: ignore[no-any-return]


def run_execution(task_id: str, task: str, handler: Handler | None = None) -> DurableFunctionTestResult:
    """The task's durable execution, from its start to its end, as Lambda would run it."""
    with DurableFunctionTestRunner(handler or runner_handler()) as runner:
        return runner.run(input=json.dumps({"task_id": task_id, "task": task}), execution_name=task_id)


def submitted(driver: Driver, task: str, inputs: dict[str, Any]) -> str:
    response = driver.submit(task, inputs)
    assert response.status == 202, response.body
    task_id: str = response.body["task_id"]
    return task_id


def steps_of(result: DurableFunctionTestResult) -> list[Any]:
    return [operation for operation in result.operations if operation.operation_type is OperationType.STEP]


def test_a_durable_task_is_started_by_the_worker_once_per_task_and_runs_to_its_result(
    driver: Driver, executions: InMemoryDurableExecutions
) -> None:
    # GIVEN a submitted training task, delivered twice (SQS delivers at least once)
    task_id = submitted(driver, "train", {"X": [[0], [1], [2], [3]], "y": [0, 0, 1, 1], "epochs": 300})
    queued = driver.get("train", task_id)
    message = driver.receive()
    driver.sqs.send_message(QueueUrl=driver.resources.queue_url, MessageBody=message[0]["Body"])

    # WHEN the worker takes both deliveries, and the execution runs
    assert driver.run_worker(message) == []
    assert driver.deliver() == []
    result = run_execution(task_id, "train")

    # THEN one execution, named after the task, ran it to its result
    assert (queued.status, queued.body["status"], queued.body["steps_done"]) == (202, "queued", 0)
    assert list(executions.started) == [task_id]
    assert result.status.value == "SUCCEEDED", result.error
    done = driver.get("train", task_id)
    assert done.status == 200
    assert done.body["status"] == "succeeded"
    assert done.body["result"]["accuracy"] == 1.0
    assert done.body["steps_done"] == len(steps_of(result)) >= 1
    assert "current_step" not in done.body


def test_a_finished_durable_task_is_not_started_again(driver: Driver, executions: InMemoryDurableExecutions) -> None:
    task_id = submitted(driver, "durable-steps", {"key": "finished", "steps": 1})
    message = driver.receive()
    run_execution(task_id, "durable-steps")

    assert driver.run_worker(message) == []

    assert executions.starts == 0


def test_completed_steps_are_not_run_again_when_a_later_step_is_retried(driver: Driver) -> None:
    # GIVEN a task whose second step meets a busy dependency on its first attempt
    task_id = submitted(driver, "durable-steps", {"key": "retried", "steps": 3, "flaky": 1})

    # WHEN its execution runs (the retry is a new invocation, which replays the first step)
    result = run_execution(task_id, "durable-steps")

    # THEN the first step ran once, the retried one twice, the last once
    assert result.status.value == "SUCCEEDED", result.error
    assert {step: count for (key, step), count in durable_tasks.runs.items() if key == "retried"} == {
        "step 0": 1,
        "step 1": 2,
        "step 2": 1,
    }
    record = task_store().get(task_id)
    assert record is not None
    assert (record.status, json.loads(record.result_json or "null"), record.steps_done) == (
        TaskStatus.SUCCEEDED,
        [0, 10, 20],
        3,
    )
    # Each invocation counts as an attempt: the first, and the one after the retry's delay.
    assert record.attempts == 2


def test_a_step_that_fails_fails_the_task_with_its_error_and_no_later_step_runs(driver: Driver) -> None:
    task_id = submitted(driver, "durable-steps", {"key": "failing", "steps": 3, "failing": 1})

    run_execution(task_id, "durable-steps")

    failed = driver.get("durable-steps", task_id)
    assert failed.body["status"] == "failed"
    assert failed.body["error"] == {"type": "ValueError", "message": "step 1 cannot work"}
    assert failed.body["steps_done"] == 1
    assert ("failing", "step 2") not in durable_tasks.runs


def test_step_names_are_unique_within_a_run(driver: Driver) -> None:
    task_id = submitted(driver, "durable-twice", {"key": "twice"})

    run_execution(task_id, "durable-twice")

    failed = driver.get("durable-twice", task_id)
    assert failed.body["error"]["type"] == "ValueError"
    assert "used twice" in failed.body["error"]["message"]


def test_a_step_value_too_large_for_a_checkpoint_is_kept_in_the_payload_bucket(driver: Driver) -> None:
    task_id = submitted(
        driver, "durable-steps", {"key": "large", "steps": 2, "large": 0, "large_size": 300_000, "flaky": 1}
    )

    result = run_execution(task_id, "durable-steps")

    # The replay after the retry read the large value back from the bucket, by its key in the checkpoint.
    assert result.status.value == "SUCCEEDED", result.error
    first = steps_of(result)[0]
    assert json.loads(first.result)["ref"].startswith(f"checkpoints/{task_id}/")
    objects = driver.s3.list_objects_v2(Bucket=driver.resources.payload_bucket, Prefix=f"checkpoints/{task_id}/")
    assert objects["KeyCount"] == 1
    done = driver.get("durable-steps", task_id)
    assert done.body.get("result_url") or done.body["result"] == ["x" * 300_000, 10]


def test_no_step_starts_after_a_cancel_and_the_execution_is_stopped(
    driver: Driver, executions: InMemoryDurableExecutions
) -> None:
    # GIVEN a running durable task, cancelled by its owner during its first step
    task_id = submitted(driver, "durable-hook", {"key": "cancelled"})
    shown: dict[str, Any] = {}

    def cancel() -> None:
        shown.update(driver.get("durable-hook", task_id).body)
        executions.start(task_id, "durable-hook")  # the worker's start, which the runner records as it resumes
        assert driver.cancel("durable-hook", task_id).status == 200

    durable_tasks.hooks["cancelled"] = cancel

    # WHEN its execution goes on
    result = run_execution(task_id, "durable-hook")

    # THEN the step after the cancel never ran, the task stays cancelled, and its execution was stopped
    assert durable_tasks.runs == {("cancelled", "first"): 1}
    assert driver.get("durable-hook", task_id).body["status"] == "cancelled"
    assert result.status.value == "FAILED"
    record = task_store().get(task_id)
    assert record is not None
    assert record.execution_arn is not None
    # GET of a running durable task showed the step it was on.
    assert (shown["status"], shown["current_step"], shown["steps_done"]) == ("running", "first", 0)


def test_a_step_interrupted_max_receive_count_times_fails_the_task(driver: Driver) -> None:
    # GIVEN a task whose first step's invocation was killed three times (MaxReceiveCount) while running it
    task_id = submitted(driver, "durable-steps", {"key": "interrupted", "steps": 2})
    store = task_store()
    record = store.get(task_id)
    assert record is not None
    driver.dynamodb.put_item(
        TableName=driver.resources.table_name,
        Item=_item(replace(record, status=TaskStatus.RUNNING, current_step="step 0", step_attempts=3, attempts=3)),
    )

    # WHEN the execution starts the step once more
    run_execution(task_id, "durable-steps")

    # THEN the task fails, saying why, without running the step a fourth time
    failed = driver.get("durable-steps", task_id)
    assert failed.body["status"] == "failed"
    assert failed.body["error"]["type"] == "StepInterrupted"
    assert "must fit in one invocation" in failed.body["error"]["message"]
    assert durable_tasks.runs == {}


def _item(record: Any) -> dict[str, Any]:
    from core.adapters.dynamodb_store import to_item

    return to_item(record)


def test_the_runner_suspends_before_a_step_that_would_not_fit_in_the_invocation(driver: Driver) -> None:
    # GIVEN invocations with little time left (3 s, less than a step and its margin)
    task_id = submitted(driver, "durable-steps", {"key": "suspended", "steps": 3})

    # WHEN the execution runs
    result = run_execution(task_id, "durable-steps", runner_handler(remaining_seconds=3.0))

    # THEN after each step it suspends, and a new invocation runs the next: each step ran once
    assert result.status.value == "SUCCEEDED", result.error
    waits = [operation for operation in result.operations if operation.operation_type is OperationType.WAIT]
    assert len(waits) == 3
    assert all(count == 1 for count in durable_tasks.runs.values())
    record = task_store().get(task_id)
    assert record is not None
    assert record.attempts == 4


def test_an_ended_execution_fails_the_task_its_runner_left_unfinished(
    driver: Driver, executions: InMemoryDurableExecutions
) -> None:
    # GIVEN a durable task whose runner resumed it and then stopped for good (its invocations kept crashing)
    task_id = submitted(driver, "durable-steps", {"key": "ended", "steps": 2})
    arn = executions.start(task_id, "durable-steps")
    running = task_store().resume(task_id, 1.0, 1.0, execution_arn=arn)  # a lease that lapsed long ago
    end = ExecutionEnd(task_id=task_id, task="", status="TIMED_OUT", execution_arn=arn)

    # WHEN Lambda's event of its end reaches the dead-letter consumer
    left = _settle(driver, end)

    # THEN the task fails, saying how its execution ended
    assert left == []
    failed = driver.get("durable-steps", task_id)
    assert failed.body["status"] == "failed"
    assert failed.body["error"]["type"] == "DurableExecutionEnded"
    assert "TIMED_OUT" in failed.body["error"]["message"]
    assert running.status is TaskStatus.RUNNING


def test_an_ended_execution_leaves_a_finished_or_cancelled_task_as_it_is(driver: Driver) -> None:
    task_id = submitted(driver, "durable-steps", {"key": "stopped", "steps": 1})
    assert driver.cancel("durable-steps", task_id).status == 200

    assert _settle(driver, ExecutionEnd(task_id=task_id, task="", status="STOPPED")) == []

    assert driver.get("durable-steps", task_id).body["status"] == "cancelled"


def test_an_ended_execution_waits_for_a_live_invocation_to_record_the_outcome(driver: Driver) -> None:
    task_id = submitted(driver, "durable-steps", {"key": "live", "steps": 1})
    task_store().resume(task_id, time.time(), 3600, execution_arn="arn")  # an invocation with an hour to go

    left = _settle(driver, ExecutionEnd(task_id=task_id, task="", status="FAILED", execution_arn="arn"))

    assert len(left) == 1  # delivered again after the visibility timeout
    assert driver.get("durable-steps", task_id).body["status"] == "running"


def _settle(driver: Driver, end: ExecutionEnd) -> list[str]:
    """Lambda's "Durable Execution Status Change" event for `end`, delivered to the dead-letter consumer by the
    template's rule (through DurableExecutionEndsQueue); the ids of the messages it left for later."""
    event = {
        "version": "0",
        "source": "aws.lambda",
        "detail-type": "Durable Execution Status Change",
        "detail": {
            "durableExecutionArn": end.execution_arn,
            "durableExecutionName": end.task_id,
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:stack-durable-runner:1",
            "status": end.status,
        },
    }
    driver.sqs.send_message(QueueUrl=driver.resources.dlq_url, MessageBody=json.dumps(event))
    return driver.run_dead_letter_consumer(driver.receive_dead_letters())


def test_a_dead_letter_that_is_neither_a_task_message_nor_an_execution_end_is_left_for_a_person(
    driver: Driver,
) -> None:
    for body in ('{"detail-type": "Durable Execution Status Change", "detail": {}}', "not json", "{}"):
        driver.sqs.send_message(QueueUrl=driver.resources.dlq_url, MessageBody=body)
    messages = driver.receive_dead_letters()

    assert len(driver.run_dead_letter_consumer(messages)) == 3


def test_a_plain_dead_letter_still_parses_as_a_task_message() -> None:
    from core.services.dead_letters import dead_letter_message

    assert dead_letter_message('{"task_id": "a", "task": "multiply"}') == TaskMessage("a", "multiply")


def test_a_start_lambda_throttles_leaves_the_message_for_a_later_delivery(
    driver: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Throttled(InMemoryDurableExecutions):
        def start(self, task_id: str, task: str) -> str:
            raise ExecutionsUnavailable("Lambda did not start the durable execution; try again")

    monkeypatch.setattr("worker.app.durable_executions", Throttled)
    task_id = submitted(driver, "durable-steps", {"key": "throttled", "steps": 1})
    messages = driver.receive()

    failed = driver.run_worker(messages)

    assert failed == [messages[0]["MessageId"]]
    assert driver.get("durable-steps", task_id).body["status"] == "queued"


def test_get_reads_a_durable_task_whose_execution_ended_unseen_as_failed(
    driver: Driver, executions: InMemoryDurableExecutions
) -> None:
    # GIVEN a durable task whose runner went silent ten minutes ago, and whose execution Lambda says timed out (its
    # end's event not handled yet)
    task_id = submitted(driver, "durable-steps", {"key": "quiet", "steps": 1})
    arn = executions.start(task_id, "durable-steps")
    task_store().resume(task_id, time.time() - 700, 60, execution_arn=arn)
    executions.statuses[arn] = "TIMED_OUT"

    # WHEN its owner asks
    shown = driver.get("durable-steps", task_id)

    # THEN it reads as failed, saying how the execution ended
    assert shown.status == 200
    assert (shown.body["status"], shown.body["error"]["type"]) == ("failed", "DurableExecutionEnded")


def test_get_does_not_ask_lambda_about_a_durable_task_between_invocations(
    driver: Driver, executions: InMemoryDurableExecutions
) -> None:
    task_id = submitted(driver, "durable-steps", {"key": "pausing", "steps": 1})
    arn = executions.start(task_id, "durable-steps")
    task_store().resume(task_id, time.time() - 120, 60, execution_arn=arn)  # lease lapsed a minute ago: a retry's delay
    executions.statuses[arn] = "TIMED_OUT"

    assert driver.get("durable-steps", task_id).body["status"] == "running"


def test_a_durable_tasks_record_is_kept_as_long_as_it_may_run_and_the_retention_after(driver: Driver) -> None:
    before = int(time.time())
    durable = task_store().get(submitted(driver, "durable-steps", {"key": "kept"}))
    plain = task_store().get(submitted(driver, "multiply", {"x": 1, "y": 2}))

    assert durable is not None
    assert plain is not None
    week = 7 * 86_400
    assert before + week <= plain.expires_at <= time.time() + week
    # DurableTaskTimeout (a day here) more: a run of a day must not outlive its own record.
    assert durable.expires_at - plain.expires_at >= 86_400 - 1
