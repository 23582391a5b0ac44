"""No batch outruns the worker's Timeout: a message starts only when the invocation has the time its task may take;
the others go back to the queue as new messages, so that their receive count does not rise without a try."""

from __future__ import annotations

from typing import Any

from botocore.stub import Stubber

from core.adapters.aws import sqs_client
from tests.support import extra_tasks
from tests.support.driver import Driver
from tests.support.events import lambda_context


def _statuses(driver: Driver, task: str, ids: list[str]) -> list[str]:
    return [driver.get(task, task_id).body["status"] for task_id in ids]


def test_a_batch_of_slow_tasks_starts_only_what_the_time_left_allows(driver: Driver) -> None:
    # GIVEN three tasks that may each run 20 s, delivered in one batch to an invocation with 21 s left
    ids = [driver.submit("declared-slow", {"n": 100 + n}).body["task_id"] for n in range(3)]
    messages = driver.receive()
    assert len(messages) == 3

    # WHEN the worker takes the batch
    failed = driver.run_worker(messages, lambda_context(timeout_seconds=21))

    # THEN it runs the first only; the others are neither failed nor counted: back in the queue as new messages,
    # received for the first time, their tasks queued with no attempt
    assert failed == []
    assert _statuses(driver, "declared-slow", ids) == ["succeeded", "queued", "queued"]
    assert [driver.get("declared-slow", task_id).body.get("attempts", 0) for task_id in ids[1:]] == [0, 0]
    requeued = driver.receive()
    assert sorted(message["MessageId"] for message in requeued) != sorted(m["MessageId"] for m in messages[1:])
    assert [message["Attributes"]["ApproximateReceiveCount"] for message in requeued] == ["1", "1"]

    # AND an invocation with time for them runs them, once each
    assert driver.run_worker(requeued) == []
    assert _statuses(driver, "declared-slow", ids) == ["succeeded"] * 3
    assert [extra_tasks.calls[f"declared-slow-{100 + n}"] for n in range(3)] == [1, 1, 1]


def test_a_batch_with_time_for_every_task_runs_them_all(driver: Driver) -> None:
    ids = [driver.submit("declared-slow", {"n": 200 + n}).body["task_id"] for n in range(3)]

    assert driver.run_worker(driver.receive(), lambda_context(timeout_seconds=120)) == []

    assert _statuses(driver, "declared-slow", ids) == ["succeeded"] * 3


def test_a_task_that_declares_no_limit_runs_only_first_in_its_batch(driver: Driver) -> None:
    ids = [driver.submit("undeclared", {"n": n}).body["task_id"] for n in range(2)]

    assert driver.run_worker(driver.receive()) == []

    assert _statuses(driver, "undeclared", ids) == ["succeeded", "queued"]


def test_messages_that_cannot_be_queued_again_are_left_to_sqs(driver: Driver) -> None:
    # GIVEN a batch the invocation has no time for beyond its first message, and a queue that refuses sends
    ids = [driver.submit("declared-slow", {"n": 300 + n}).body["task_id"] for n in range(2)]
    messages = driver.receive()
    with Stubber(sqs_client()) as stub:
        stub.add_client_error("send_message_batch", "ServiceUnavailable", http_status_code=503)

        # WHEN the worker takes the batch
        failed = driver.run_worker(messages, lambda_context(timeout_seconds=21))

    # THEN the message it could not send again is named in the partial batch response (SQS delivers it again)
    second: Any = next(m for m in messages if ids[1] in m["Body"]) if ids[1] in messages[1]["Body"] else messages[1]
    assert failed == [second["MessageId"]]
    assert _statuses(driver, "declared-slow", ids).count("queued") == 1


class _Visibility:
    """A queue's visibility as a test sees it: every extension of every message, with when it was asked."""

    def __init__(self, timeout: float) -> None:
        self.visibility_timeout = timeout
        self.extended: list[tuple[str, float]] = []

    def keep_hidden(self, receipt_handle: str, seconds: float) -> None:
        self.extended.append((receipt_handle, seconds))


def test_a_running_task_keeps_its_message_hidden_until_it_ends() -> None:
    import time

    from core.adapters.queue import TaskMessage
    from core.domain.deliveries import Disposition, Outcome
    from core.services.message_batch import run_batch

    # GIVEN a queue whose visibility timeout (0.2 s) a run outlasts (0.7 s)
    visibility = _Visibility(0.2)

    def handle(message: TaskMessage, receive_count: int) -> Outcome:
        time.sleep(0.7)
        return Outcome(message.task_id, message.task, Disposition.SUCCEEDED)

    record = {
        "messageId": "m-1",
        "receiptHandle": "receipt-1",
        "body": TaskMessage("3f2b8a51-6c1e-4d7a-9b0f-2e5c8d4a1f60", "multiply").to_body(),
        "attributes": {"ApproximateReceiveCount": "1"},
    }

    # WHEN the worker runs it
    response = run_batch([record], handle, visibility=visibility)  # type: ignore[arg-type]
    beats = len(visibility.extended)
    time.sleep(0.4)

    # THEN its message was hidden again every half timeout, for a whole timeout each time, and no more once it ended
    assert response == {"batchItemFailures": []}
    assert beats >= 3
    assert set(visibility.extended) == {("receipt-1", 0.2)}
    assert len(visibility.extended) == beats
