"""No accepted task stays pending forever: whatever reaches the dead-letter queue fails its task with a clear error,
through moto's own redrive (the dead-letter consumer)."""

from __future__ import annotations

import time

from core.adapters.aws import task_store
from tests.support.driver import Driver


def _throttled_on_every_delivery(driver: Driver) -> None:
    """Receive the one queued message as often as the redrive policy allows without ever running it (Lambda
    throttled its invocation, or never reached it in a batch), then once more: SQS moves it to the dead-letter
    queue on that receive."""
    for _ in range(driver.resources.max_receive_count):
        (message,) = driver.receive()
        driver.sqs.change_message_visibility(
            QueueUrl=driver.resources.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    assert driver.receive() == []  # the receive that moved it


def test_a_task_whose_message_reached_the_dead_letter_queue_unrun_reads_failed(driver: Driver) -> None:
    # GIVEN a task whose message used up its deliveries without a run
    task_id = driver.submit("multiply", {"x": 2, "y": 3}).body["task_id"]
    _throttled_on_every_delivery(driver)
    assert driver.get("multiply", task_id).body["status"] == "queued"  # as it would stay, for the whole retention

    # WHEN the dead-letter consumer takes it
    dead_letters = driver.receive_dead_letters()
    assert len(dead_letters) == 1
    assert driver.run_dead_letter_consumer(dead_letters) == []

    # THEN the task has failed, with an error that says what happened, and it can no longer be cancelled
    failed = driver.get("multiply", task_id)
    assert failed.status == 200
    assert failed.body["status"] == "failed"
    assert failed.body["error"]["type"] == "GaveUp"
    assert "dead-letter queue" in failed.body["error"]["message"]
    assert "3 times" in failed.body["error"]["message"]
    assert driver.cancel("multiply", task_id).status == 409
    assert driver.queue_depth(driver.resources.dlq_url) == 0


def test_a_dead_letter_of_a_task_a_live_claim_holds_is_looked_at_again_later(driver: Driver) -> None:
    # GIVEN a task that a live worker runs while its message reaches the dead-letter queue
    task_id = driver.submit("multiply", {"x": 2, "y": 3}).body["task_id"]
    now = time.time()
    task_store().claim(task_id, now=now, lease_seconds=600, started_at=now)
    _throttled_on_every_delivery(driver)

    # WHEN the dead-letter consumer takes it
    dead_letters = driver.receive_dead_letters()
    left = driver.run_dead_letter_consumer(dead_letters)

    # THEN the task runs on (its own run records its outcome) and the message stays for a later look
    assert left == [dead_letters[0]["MessageId"]]
    assert driver.get("multiply", task_id).body["status"] == "running"


def test_a_dead_letter_of_a_finished_task_is_dropped_and_changes_nothing(driver: Driver) -> None:
    # GIVEN a task that failed on its last delivery, whose message then went to the dead-letter queue
    task_id = driver.submit("always-transient", {}).body["task_id"]
    for _ in range(driver.resources.max_receive_count):
        driver.deliver()
    assert driver.receive() == []
    before = driver.get("always-transient", task_id).body
    assert before["status"] == "failed"

    # WHEN the dead-letter consumer takes its message
    assert driver.run_dead_letter_consumer(driver.receive_dead_letters()) == []

    # THEN the task's own failure stands
    assert driver.get("always-transient", task_id).body == before


def test_an_unreadable_dead_letter_stays_in_the_queue_for_a_person(driver: Driver) -> None:
    driver.sqs.send_message(QueueUrl=driver.resources.dlq_url, MessageBody="not a task message")
    messages = driver.receive_dead_letters()

    assert driver.run_dead_letter_consumer(messages) == [messages[0]["MessageId"]]
