"""A task's whole life through the three handlers, with SQS and DynamoDB in moto."""

from __future__ import annotations

import time

import pytest

from core.services import tasks as service
from tests.support import extra_tasks
from tests.support.driver import Driver


def test_round_trip_submit_worker_result_returns_the_product(driver: Driver) -> None:
    # GIVEN a submitted multiplication
    accepted = driver.submit("multiply", {"x": 2, "y": 3})
    assert accepted.status == 202
    task_id = accepted.body["task_id"]
    assert accepted.headers["Location"] == f"/multiply/{task_id}"
    assert accepted.headers["Retry-After"] == "1"

    # WHEN the worker takes its message
    assert driver.deliver() == []

    # THEN the result is there, as the original's client expects it
    done = driver.get("multiply", task_id)
    assert done.status == 200
    assert done.body["status"] == "succeeded"
    assert done.body["result"] == 6
    assert done.body["attempts"] == 1
    assert done.body["created_at"] <= done.body["started_at"] <= done.body["finished_at"]
    assert driver.queue_depth(driver.resources.queue_url) == 0


@pytest.mark.parametrize(("x", "y"), [(7, 6), (2.5, -4), (12345678901234567, 3), (0.1, 0.2)])
def test_round_trip_result_equals_x_times_y(driver: Driver, x: float, y: float) -> None:
    task_id = driver.submit("multiply", {"x": x, "y": y}).body["task_id"]
    driver.deliver()

    assert driver.get("multiply", task_id).body["result"] == x * y


def test_pending_task_is_202_with_retry_after_and_progress(driver: Driver) -> None:
    task_id = driver.submit("multiply", {"x": 2, "y": 3}).body["task_id"]

    pending = driver.get("multiply", task_id)

    assert pending.status == 202
    assert pending.headers["Retry-After"] == "1"
    assert pending.body["status"] == "queued"
    assert pending.body["progress"] == 0.0
    assert "result" not in pending.body


def test_duplicate_delivery_runs_the_task_once(driver: Driver) -> None:
    task_id = driver.submit("counting", {"n": 101}).body["task_id"]
    message = driver.receive()

    assert driver.run_worker(message) == []
    assert driver.run_worker(message) == []  # the same message, delivered again

    assert extra_tasks.calls["101"] == 1
    assert driver.get("counting", task_id).body["attempts"] == 1


def test_permanent_error_fails_the_task_at_once(driver: Driver) -> None:
    task_id = driver.submit("always-fails", {}).body["task_id"]

    assert driver.deliver() == []

    failed = driver.get("always-fails", task_id)
    assert failed.status == 200
    assert failed.body["status"] == "failed"
    assert failed.body["error"] == {"type": "ValueError", "message": "this input can never work"}
    assert driver.queue_depth(driver.resources.queue_url) == 0


def test_non_finite_result_fails_the_task_rather_than_storing_invalid_json(driver: Driver) -> None:
    task_id = driver.submit("multiply", {"x": 1e200, "y": 1e200}).body["task_id"]

    driver.deliver()

    body = driver.get("multiply", task_id).body
    assert body["status"] == "failed"
    assert body["error"]["type"] == "ValueError"


def test_poison_message_fails_the_task_and_goes_to_the_dead_letter_queue(driver: Driver) -> None:
    task_id = driver.submit("always-transient", {}).body["task_id"]
    max_receives = driver.resources.max_receive_count

    # Each delivery but the last puts the task back in the queue for another attempt.
    for attempt in range(1, max_receives):
        assert len(driver.deliver()) == 1
        assert driver.get("always-transient", task_id).body["status"] == "queued"
        assert driver.get("always-transient", task_id).body["attempts"] == attempt
    assert len(driver.deliver()) == 1

    failed = driver.get("always-transient", task_id).body
    assert failed["status"] == "failed"
    assert failed["error"]["type"] == "GaveUp"
    assert failed["error"]["message"].startswith(f"gave up after {max_receives} attempts")
    # SQS moves the message to the DLQ on the receive after the last allowed one.
    assert driver.receive() == []
    assert driver.queue_depth(driver.resources.dlq_url) == 1


def test_unreadable_message_is_returned_for_redrive_not_dropped(driver: Driver) -> None:
    driver.sqs.send_message(QueueUrl=driver.resources.queue_url, MessageBody="this is not a task message")

    assert len(driver.deliver()) == 1
    assert driver.queue_depth(driver.resources.queue_url) == 1


def test_a_bad_message_does_not_fail_the_good_ones_in_its_batch(driver: Driver) -> None:
    driver.sqs.send_message(QueueUrl=driver.resources.queue_url, MessageBody="{}")
    task_ids = [driver.submit("multiply", {"x": n, "y": 2}).body["task_id"] for n in range(3)]

    failed = driver.deliver()

    assert len(failed) == 1
    assert [driver.get("multiply", task_id).body["result"] for task_id in task_ids] == [0, 2, 4]


def test_cancelled_queued_task_is_skipped_by_the_worker(driver: Driver) -> None:
    task_id = driver.submit("counting", {"n": 202}).body["task_id"]

    cancelled = driver.cancel("counting", task_id)
    assert cancelled.status == 200
    assert cancelled.body["status"] == "cancelled"

    assert driver.deliver() == []
    assert "202" not in extra_tasks.calls
    assert driver.get("counting", task_id).body["status"] == "cancelled"
    assert driver.cancel("counting", task_id).status == 200  # cancelling again changes nothing


def test_cancel_finished_task_is_409_and_keeps_its_result(driver: Driver) -> None:
    task_id = driver.submit("multiply", {"x": 2, "y": 3}).body["task_id"]
    driver.deliver()

    refused = driver.cancel("multiply", task_id)

    assert refused.status == 409
    assert driver.get("multiply", task_id).body["result"] == 6


def test_idempotent_replay_of_a_queued_task_sends_its_message_again_later_and_it_runs_once(
    driver: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "RESEND_DELAY_SECONDS", 1)  # 15 s in the service
    key = {"Idempotency-Key": "order-42"}
    first = driver.submit("counting", {"n": 42}, key)
    again = driver.submit("counting", {"n": 42}, key)

    assert first.status == again.status == 202
    assert again.body["task_id"] == first.body["task_id"]
    # Still queued: the replay cannot tell whether the first submission sent its message, so it sends it too,
    # hidden for a while so that the first is worked on first.
    assert len(first_messages := driver.receive()) == 1
    assert driver.run_worker(first_messages) == []
    time.sleep(1.1)
    assert driver.deliver() == []  # the second message: a duplicate of a finished task, dropped

    assert extra_tasks.calls["42"] == 1
    done = driver.get("counting", first.body["task_id"])
    assert (done.body["status"], done.body["result"], done.body["attempts"]) == ("succeeded", 42, 1)
    assert driver.queue_depth(driver.resources.queue_url) == 0


def test_idempotency_key_reused_with_another_body_is_409_and_queues_nothing(driver: Driver) -> None:
    key = {"Idempotency-Key": "order-43"}
    first = driver.submit("multiply", {"x": 2, "y": 3}, key)

    conflict = driver.submit("multiply", {"x": 2, "y": 4}, key)

    assert conflict.status == 409
    assert driver.queue_depth(driver.resources.queue_url) == 1
    assert driver.get("multiply", first.body["task_id"]).body["status"] == "queued"


def test_same_idempotency_key_for_another_task_is_another_task(driver: Driver) -> None:
    key = {"Idempotency-Key": "shared"}

    multiply = driver.submit("multiply", {"x": 2, "y": 3}, key)
    counting = driver.submit("counting", {"n": 1}, key)

    assert multiply.body["task_id"] != counting.body["task_id"]


def test_expired_task_is_gone_before_dynamodb_deletes_it(driver: Driver) -> None:
    task_id = driver.submit("multiply", {"x": 2, "y": 3}).body["task_id"]
    driver.dynamodb.update_item(
        TableName=driver.resources.table_name,
        Key={"task_id": {"S": task_id}},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": {"N": "1000"}},
    )

    assert driver.get("multiply", task_id).status == 404
    assert driver.cancel("multiply", task_id).status == 404
    assert driver.deliver() == []  # its message is dropped, not run
    item = driver.item(task_id)
    assert item is not None
    assert item["status"]["S"] == "queued"


def test_record_keeps_expiry_for_dynamodb_ttl(driver: Driver) -> None:
    task_id = driver.submit("multiply", {"x": 2, "y": 3}).body["task_id"]

    item = driver.item(task_id)

    assert item is not None
    created = float(item["created_at"]["N"])
    assert int(item["expires_at"]["N"]) - created == pytest.approx(7 * 86_400, abs=1)


def test_idempotent_replay_of_a_finished_task_is_still_202_with_its_location(driver: Driver) -> None:
    key = {"Idempotency-Key": "order-44"}
    task_id = driver.submit("multiply", {"x": 2, "y": 3}, key).body["task_id"]
    driver.deliver()

    replay = driver.submit("multiply", {"x": 2, "y": 3}, key)

    assert replay.status == 202
    assert replay.headers["Location"] == f"/multiply/{task_id}"
    assert replay.body["status"] == "succeeded"
    assert replay.body["result"] == 6
    assert driver.queue_depth(driver.resources.queue_url) == 0
