"""Faults injected into AWS calls and workers: no accepted task is lost, none runs twice."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.stub import Stubber
from msgspec.structs import replace

from core import registry
from core.adapters.aws import dynamodb_client, payload_store, sqs_client, task_store
from core.adapters.queue import TaskMessage
from core.domain.deliveries import Disposition, TaskBusy
from core.domain.lifecycle import view
from core.domain.records import TaskStatus
from core.domain.store import TransitionRefused
from core.services import tasks as service
from core.services.runner import TaskRunner
from tests.support.driver import Driver


@contextmanager
def failing(client: Any, operation: str, code: str, times: int) -> Iterator[list[int]]:
    """Make the next `times` calls of `operation` fail with `code`, as AWS would answer them."""
    failures: list[int] = []

    def fail(**_: Any) -> None:
        if len(failures) < times:
            failures.append(1)
            raise ClientError({"Error": {"Code": code, "Message": f"injected {code}"}}, operation)

    event = f"before-call.{client.meta.service_model.service_name}.{operation}"
    client.meta.events.register(event, fail)
    try:
        yield failures
    finally:
        client.meta.events.unregister(event, fail)


def test_queue_send_failure_is_503_and_leaves_no_queued_record(driver: Driver) -> None:
    with Stubber(sqs_client()) as stub:
        stub.add_client_error("send_message", "ServiceUnavailable", http_status_code=503)
        refused = driver.submit("multiply", {"x": 2, "y": 3})

    assert refused.status == 503
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert refused.headers["Retry-After"] == "1"
    assert "nothing was queued" in refused.body["detail"]
    assert driver.dynamodb.scan(TableName=driver.resources.table_name)["Count"] == 0


def test_idempotent_retry_after_a_send_failure_queues_the_task(driver: Driver) -> None:
    key = {"Idempotency-Key": "retry-me"}
    with Stubber(sqs_client()) as stub:
        stub.add_client_error("send_message", "ServiceUnavailable", http_status_code=503)
        assert driver.submit("multiply", {"x": 2, "y": 3}, key).status == 503

    retried = driver.submit("multiply", {"x": 2, "y": 3}, key)

    assert retried.status == 202
    driver.deliver()
    assert driver.get("multiply", retried.body["task_id"]).body["result"] == 6


def test_a_replay_that_cannot_send_again_is_a_503_and_keeps_the_accepted_task(driver: Driver) -> None:
    # GIVEN a task accepted with an Idempotency-Key, its message in the queue
    key = {"Idempotency-Key": "accepted-once"}
    accepted = driver.submit("multiply", {"x": 2, "y": 3}, key)
    assert accepted.status == 202
    task_id = accepted.body["task_id"]

    # WHEN the client repeats the request while the queue refuses messages
    with Stubber(sqs_client()) as stub:
        stub.add_client_error("send_message", "ServiceUnavailable", http_status_code=503)
        replayed = driver.submit("multiply", {"x": 2, "y": 3}, key)

    # THEN it is told to try again, and the task it was given before is still there and runs
    assert replayed.status == 503
    assert replayed.headers["Retry-After"] == "1"
    assert driver.get("multiply", task_id).body["status"] == "queued"
    driver.deliver()
    assert driver.get("multiply", task_id).body["result"] == 6


def test_idempotent_retry_after_a_submit_stopped_before_sending_runs_the_task(
    driver: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "RESEND_DELAY_SECONDS", 1)  # 15 s in the service
    # GIVEN a submission whose function stopped after recording the task, before its message was sent (a timeout in
    # a slow send, a crash): the record is queued and no message will ever come
    key = {"Idempotency-Key": "stopped-mid-submit"}

    def stop(**_: Any) -> None:
        raise RuntimeError("the function stopped here")

    event = "before-call.sqs.SendMessage"
    sqs_client().meta.events.register(event, stop)
    try:
        assert driver.submit("multiply", {"x": 2, "y": 3}, key).status == 500
    finally:
        sqs_client().meta.events.unregister(event, stop)
    assert driver.queue_depth(driver.resources.queue_url) == 0

    # WHEN the client retries with the same key
    retried = driver.submit("multiply", {"x": 2, "y": 3}, key)

    # THEN the same task is queued again, and runs
    assert retried.status == 202
    time.sleep(1.1)
    driver.deliver()
    assert driver.get("multiply", retried.body["task_id"]).body["result"] == 6


@pytest.mark.parametrize(
    "code", ["ProvisionedThroughputExceededException", "ThrottlingException", "InternalServerError"]
)
def test_table_throttled_or_failing_at_submit_is_a_503_to_retry_and_nothing_is_queued(
    driver: Driver, code: str
) -> None:
    with failing(dynamodb_client(), "PutItem", code, times=10):
        refused = driver.submit("multiply", {"x": 2, "y": 3})

    assert refused.status == 503
    assert refused.headers["Retry-After"] == "1"
    assert set(refused.body) == {"type", "title", "status", "detail", "request_id"}
    assert "Traceback" not in str(refused.body)
    assert driver.queue_depth(driver.resources.queue_url) == 0
    assert driver.dynamodb.scan(TableName=driver.resources.table_name)["Count"] == 0


def test_table_unreachable_for_a_status_poll_is_a_503_to_retry(driver: Driver) -> None:
    task_id = driver.submit("multiply", {"x": 2, "y": 3}).body["task_id"]

    def unreachable(**_: Any) -> None:
        raise EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")

    event = "before-call.dynamodb.GetItem"
    dynamodb_client().meta.events.register(event, unreachable)
    try:
        refused = driver.get("multiply", task_id)
    finally:
        dynamodb_client().meta.events.unregister(event, unreachable)

    # The lrt client's wait() retries a 503 after its Retry-After; a 500 would end it.
    assert refused.status == 503
    assert refused.headers["Retry-After"] == "1"


def test_another_aws_error_at_submit_stays_an_opaque_500(driver: Driver) -> None:
    with failing(dynamodb_client(), "PutItem", "ValidationException", times=1):
        refused = driver.submit("multiply", {"x": 2, "y": 3})

    assert refused.status == 500
    assert set(refused.body) == {"type", "title", "status", "detail", "request_id"}
    assert "Retry-After" not in refused.headers
    assert driver.queue_depth(driver.resources.queue_url) == 0


def test_worker_throttled_by_dynamodb_retries_then_succeeds(driver: Driver) -> None:
    task_id = driver.submit("multiply", {"x": 4, "y": 5}).body["task_id"]

    with failing(dynamodb_client(), "UpdateItem", "ProvisionedThroughputExceededException", times=1) as failures:
        assert len(driver.deliver()) == 1  # returned to the queue
    assert failures == [1]
    assert driver.get("multiply", task_id).body["status"] == "queued"

    assert driver.deliver() == []
    assert driver.get("multiply", task_id).body["result"] == 20


def test_worker_killed_mid_task_is_claimed_again_after_its_lease(driver: Driver) -> None:
    task_id = driver.submit("multiply", {"x": 3, "y": 3}).body["task_id"]
    # A worker claimed the task, then died: its lease has run out, its message comes back.
    task_store().claim(task_id, now=1.0e9, lease_seconds=60, started_at=1.0e9)
    assert driver.get("multiply", task_id).body["status"] == "running"

    assert driver.deliver() == []

    done = driver.get("multiply", task_id).body
    assert done["result"] == 9
    assert done["attempts"] == 2


class WorkerStopped(BaseException):
    """A Lambda timeout or out-of-memory kill, as the run sees it: nothing after it runs, nothing is recorded."""


def test_worker_stopped_on_every_attempt_leaves_the_task_failed_not_running(driver: Driver) -> None:
    task_id = driver.submit("multiply", {"x": 2, "y": 3}).body["task_id"]
    max_receives = driver.resources.max_receive_count
    clock = itertools.count(1_000_000_000, 1_000)  # each delivery comes after the last one's lease has run out

    def killed(inputs: Any, progress: Any) -> int:
        raise WorkerStopped

    original = registry.get_task("multiply")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(registry._definitions, "multiply", replace(original, function=killed))
        runner = TaskRunner(
            task_store(), payload_store(), max_receive_count=max_receives, lease_seconds=60, clock=lambda: next(clock)
        )
        for receive_count in range(1, max_receives + 1):
            with pytest.raises(WorkerStopped):
                runner.handle(TaskMessage(task_id, "multiply"), receive_count=receive_count)

        # Its message is in the dead-letter queue now; without the last attempt's claim the task would read
        # "queued" (or "running") until its record expired.
        failed = driver.get("multiply", task_id)
        assert failed.status == 200
        assert failed.body["status"] == "failed"
        assert failed.body["error"]["type"] == "GaveUp"
        assert "stopped during the last attempt" in failed.body["error"]["message"]
        assert driver.cancel("multiply", task_id).status == 409

        # Redriven from the dead-letter queue, the message finds a finished task: dropped, not run.
        redriven = runner.handle(TaskMessage(task_id, "multiply"), receive_count=1)
    assert redriven.disposition is Disposition.ALREADY_FINISHED
    assert driver.get("multiply", task_id).body["status"] == "failed"


def test_last_delivery_meeting_a_live_claim_marks_it_as_the_last_attempt(driver: Driver) -> None:
    task_id = driver.submit("multiply", {"x": 2, "y": 3}).body["task_id"]
    store = task_store()
    now = time.time()
    held = store.claim(
        task_id, now=now, lease_seconds=600, started_at=now
    )  # a live worker runs it, on an earlier delivery
    runner = TaskRunner(store, payload_store(), max_receive_count=driver.resources.max_receive_count, lease_seconds=60)

    # WHEN the last delivery SQS allows finds it held THEN it is tried again later (and so goes to the DLQ)...
    with pytest.raises(TaskBusy):
        runner.handle(TaskMessage(task_id, "multiply"), receive_count=driver.resources.max_receive_count)

    # ...and should the live worker be stopped too, nothing would deliver the task again: once its lease has run
    # out, the task reads failed rather than running until it expires.
    marked = store.get(task_id)
    assert marked is not None
    assert marked.last_attempt
    assert marked.attempts == held.attempts
    assert (view(marked, now + 1) or marked).status is TaskStatus.RUNNING
    assert (view(marked, now + 601) or marked).status is TaskStatus.FAILED
    # The live worker's own outcome still lands: the mark leaves its claim as it was.
    store.finish(held, now + 2, claimed=True, started_at=now, result_json="6")
    assert driver.get("multiply", task_id).body["result"] == 6


def test_task_running_under_a_live_lease_is_not_run_twice(driver: Driver) -> None:
    task_id = driver.submit("counting", {"n": 303}).body["task_id"]
    task_store().claim(task_id, now=time.time(), lease_seconds=600, started_at=time.time())  # held by a live worker

    assert len(driver.deliver()) == 1  # tried again later, not run

    assert driver.get("counting", task_id).body["status"] == "running"


@pytest.mark.parametrize(
    ("meanwhile", "then"),
    [
        # The other delivery's worker failed transiently and put the task back: its own message was returned, but
        # deleting this delivery's would delete that one too, and the task would stay queued with none.
        pytest.param("claimed and put back", "queued", id="put back in the queue"),
        # The other delivery holds the task: should its worker stop, only a later delivery would run it again.
        pytest.param("claimed", "running", id="held by the other delivery"),
    ],
)
def test_a_run_that_loses_its_task_to_another_delivery_leaves_the_message_for_a_later_one(
    driver: Driver, meanwhile: str, then: str
) -> None:
    # GIVEN a delivery running a quick task while another delivery of the same message takes it
    task_id = driver.submit("counting", {"n": 404}).body["task_id"]
    messages = driver.receive()
    store = task_store()

    def taken_midway(inputs: Any, progress: Any) -> int:
        claimed = store.claim(task_id, now=time.time(), lease_seconds=600, started_at=time.time())
        if meanwhile == "claimed and put back":
            store.release(claimed, claimed=True)
        return int(inputs.n)

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(registry._definitions, "counting", replace(registry.get_task("counting"), function=taken_midway))
        # WHEN this run ends (its outcome refused: the record changed under it)
        returned = driver.run_worker(messages)

    # THEN its message goes back to the queue rather than being deleted
    assert returned == [messages[0]["MessageId"]]
    assert driver.get("counting", task_id).body["status"] == then
    if then == "queued":
        # ...and a later delivery runs the task
        assert driver.deliver() == []
        assert driver.get("counting", task_id).body["result"] == 404


def test_stale_worker_cannot_overwrite_the_outcome_of_a_newer_attempt(driver: Driver) -> None:
    task_id = driver.submit("multiply", {"x": 2, "y": 3}).body["task_id"]
    store = task_store()
    stale = store.claim(task_id, now=1.0e9, lease_seconds=1, started_at=1.0e9)
    driver.deliver()  # a second worker takes over after the lease and finishes

    with pytest.raises(TransitionRefused):
        store.finish(stale, 2.0e9, claimed=True, started_at=1.0e9, result_json="999")
    assert driver.get("multiply", task_id).body["result"] == 6


def test_cancelling_a_running_task_stops_it_at_its_next_progress_report(driver: Driver) -> None:
    task_id = driver.submit("multiply", {"x": 2, "y": 3}).body["task_id"]
    clock = iter(range(1_000_000_000, 2_000_000_000, 5))
    store = task_store()
    reports: list[float] = []

    def cancel_midway(inputs: Any, progress: Any) -> int:
        progress(0.1)
        reports.append(0.1)
        driver.cancel("multiply", task_id)
        progress(0.5)  # raises: the task was cancelled
        reports.append(0.5)
        return 6

    original = registry.get_task("multiply")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(registry._definitions, "multiply", replace(original, function=cancel_midway))
        runner = TaskRunner(
            store, payload_store(), max_receive_count=3, lease_seconds=60, clock=lambda: float(next(clock))
        )
        outcome = runner.handle(TaskMessage(task_id, "multiply"), receive_count=1)

    assert outcome.disposition is Disposition.CANCELLED
    assert reports == [0.1]
    body = driver.get("multiply", task_id).body
    assert body["status"] == "cancelled"
    assert "result" not in body


def test_progress_of_a_running_task_is_visible(driver: Driver) -> None:
    task_id = driver.submit("multiply", {"x": 2, "y": 3}).body["task_id"]
    clock = iter(range(1_000_000_000, 2_000_000_000, 5))
    seen: list[Any] = []

    def observe(inputs: Any, progress: Any) -> int:
        progress(0.25)
        seen.append(driver.get("multiply", task_id))
        return 6

    original = registry.get_task("multiply")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(registry._definitions, "multiply", replace(original, function=observe))
        TaskRunner(
            task_store(), payload_store(), max_receive_count=3, lease_seconds=60, clock=lambda: float(next(clock))
        ).handle(TaskMessage(task_id, "multiply"), receive_count=1)

    assert seen[0].status == 202
    assert seen[0].body["status"] == "running"
    assert seen[0].body["progress"] == 0.25
    assert seen[0].body["started_at"] is not None
