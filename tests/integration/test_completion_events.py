"""Exactly one event per task end, whatever races the writes: the real DynamoDB store on moto, moto's stream of the
table as template.yaml defines it, the template's filter, and the notifier's handler putting events on moto's bus
(a rule on it sends them to a queue, where they are counted)."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import boto3
import pytest

from core.adapters.aws import task_store
from core.domain.lifecycle import view
from core.domain.records import TaskFailure, TaskStatus
from core.domain.store import TransitionRefused
from core.services.events import TERMINAL_TRANSITION
from devstack.resources import LocalResources
from devstack.stream_source import lambda_record, passes
from notifier.app import lambda_handler as notifier_handler
from tests.support.driver import Driver
from tests.support.events import lambda_context

FILTERS = [{"Pattern": json.dumps(TERMINAL_TRANSITION)}]


class Bus:
    """The stack's event bus in moto, with a rule sending every task event to a queue that the test reads."""

    def __init__(self, resources: LocalResources) -> None:
        self.events = boto3.client("events")
        self.sqs = boto3.client("sqs")
        self.dynamodb = boto3.client("dynamodb")
        self.streams = boto3.client("dynamodbstreams")
        self.table = resources.table_name
        self.bus = resources["TaskEventBus"].name
        self.queue = self.sqs.create_queue(QueueName="task-events")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.events.put_rule(Name="all-tasks", EventBusName=self.bus, EventPattern='{"source": ["long-running-tasks"]}')
        self.events.put_targets(Rule="all-tasks", EventBusName=self.bus, Targets=[{"Id": "queue", "Arn": arn}])
        self.stream_arn = self.dynamodb.describe_table(TableName=self.table)["Table"]["LatestStreamArn"]
        self.webhook_queue = resources["WebhookQueue"].ref

    def stream_records(self) -> list[dict[str, Any]]:
        """Every record of the table's stream so far, as Lambda's DynamoDB event carries them."""
        (shard,) = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]
        iterator = self.streams.get_shard_iterator(
            StreamArn=self.stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records = self.streams.get_records(ShardIterator=iterator, Limit=1000)["Records"]
        return [lambda_record(record, self.stream_arn) for record in records]

    def notify(self) -> dict[str, Any]:
        """The notifier invoked as its event source would: the stream's records its filter passes, in one batch."""
        records = [record for record in self.stream_records() if passes(FILTERS, record)]
        response: dict[str, Any] = notifier_handler({"Records": records}, lambda_context())
        return response

    def received(self) -> list[dict[str, Any]]:
        bodies = []
        while messages := self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                bodies.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=message["ReceiptHandle"])
        return bodies

    def deliveries(self) -> list[dict[str, Any]]:
        messages = self.sqs.receive_message(QueueUrl=self.webhook_queue, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(message["Body"]) for message in messages]


@pytest.fixture
def bus(aws: LocalResources) -> Bus:
    return Bus(aws)


def outcomes(events: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    return Counter((event["detail"]["task_id"], event["detail-type"]) for event in events)


def test_the_bus_and_the_notifiers_variables_are_the_templates(aws: LocalResources) -> None:
    import os

    assert os.environ["EVENT_BUS_NAME"] == aws["TaskEventBus"].name
    assert os.environ["WEBHOOK_QUEUE_URL"] == aws["WebhookQueue"].ref


def test_a_finished_task_puts_one_event_with_its_outcome_and_queues_its_webhook(driver: Driver, bus: Bus) -> None:
    task_id = driver.submit("multiply", {"x": 2, "y": 3}, {"Webhook-URL": "https://hooks.example.com/t"}).body[
        "task_id"
    ]
    driver.deliver()

    assert bus.notify() == {"batchItemFailures": []}

    (event,) = bus.received()
    assert (event["source"], event["detail-type"]) == ("long-running-tasks", "Task Succeeded")
    assert event["detail"]["task_id"] == task_id
    assert event["detail"]["result"] == 6
    (delivery,) = bus.deliveries()
    assert delivery["url"] == "https://hooks.example.com/t"
    assert delivery["webhook_id"] == f"msg_{task_id}_succeeded"
    assert json.loads(delivery["body"]) == event["detail"]


def test_a_duplicate_delivery_of_the_task_message_makes_no_second_event(driver: Driver, bus: Bus) -> None:
    task_id = driver.submit("multiply", {"x": 2, "y": 3}).body["task_id"]
    messages = driver.receive()

    driver.run_worker(messages)
    driver.run_worker(messages)  # SQS delivers at least once: the same message again
    bus.notify()

    assert outcomes(bus.received()) == Counter({(task_id, "Task Succeeded"): 1})


def test_a_retried_finish_write_is_refused_and_makes_no_second_event(driver: Driver, bus: Bus) -> None:
    task_id = driver.submit("multiply", {"x": 2, "y": 3}).body["task_id"]
    store = task_store()
    now = time.time()
    claimed = store.claim(task_id, now, 60, started_at=now)

    store.finish(claimed, now + 1, claimed=True, started_at=now, result_json="6")
    # The worker's write retried after its answer was lost (a timeout): the condition no longer holds.
    with pytest.raises(TransitionRefused):
        store.finish(claimed, now + 2, claimed=True, started_at=now, result_json="6")
    bus.notify()

    assert outcomes(bus.received()) == Counter({(task_id, "Task Succeeded"): 1})


@pytest.mark.parametrize("first", ["cancel", "finish"])
def test_a_cancel_racing_a_finish_makes_one_event_of_whichever_won(driver: Driver, bus: Bus, first: str) -> None:
    task_id = driver.submit("multiply", {"x": 2, "y": 3}).body["task_id"]
    store = task_store()
    now = time.time()
    claimed = store.claim(task_id, now, 60, started_at=now)

    def cancel() -> None:
        store.cancel(task_id, now + 1)

    def finish() -> None:
        store.finish(claimed, now + 1, claimed=True, started_at=now, result_json="6")

    writes = {"cancel": cancel, "finish": finish}
    writes[first]()
    with pytest.raises(TransitionRefused):
        writes["finish" if first == "cancel" else "cancel"]()
    bus.notify()

    expected = "Task Cancelled" if first == "cancel" else "Task Succeeded"
    assert outcomes(bus.received()) == Counter({(task_id, expected): 1})
    assert driver.get("multiply", task_id).body["status"] == ("cancelled" if first == "cancel" else "succeeded")


def test_a_dead_letter_after_the_task_finished_makes_no_second_event(driver: Driver, bus: Bus) -> None:
    task_id = driver.submit("multiply", {"x": 2, "y": 3}).body["task_id"]
    messages = driver.receive()
    driver.run_worker(messages)
    # The same message reaches the dead-letter queue anyway (its deletion was lost, it was received too often).
    driver.sqs.send_message(QueueUrl=driver.resources.dlq_url, MessageBody=messages[0]["Body"])

    assert driver.run_dead_letter_consumer(driver.receive_dead_letters()) == []
    bus.notify()

    assert outcomes(bus.received()) == Counter({(task_id, "Task Succeeded"): 1})


def test_a_task_whose_last_attempt_stopped_gets_its_failed_event_from_the_dead_letter_consumers_write(
    driver: Driver, bus: Bus
) -> None:
    task_id = driver.submit("multiply", {"x": 2, "y": 3}).body["task_id"]
    store = task_store()
    now = time.time()
    # The last attempt's worker took the task and stopped (timed out): its lease has lapsed, nothing was written.
    store.claim(task_id, now - 120, 60, started_at=now - 120, last_attempt=True)
    assert view(store.get(task_id), now).status is TaskStatus.FAILED  # failed as read...
    bus.notify()
    assert bus.received() == []  # ...but no write made it so: no event yet
    message = driver.receive()[0]
    driver.sqs.send_message(QueueUrl=driver.resources.dlq_url, MessageBody=message["Body"])

    driver.run_dead_letter_consumer(driver.receive_dead_letters())
    bus.notify()

    (event,) = bus.received()
    assert event["detail-type"] == "Task Failed"
    assert event["detail"]["error"]["type"] == "GaveUp"
    assert "worker stopped" in event["detail"]["error"]["message"]
    assert store.get(task_id).status is TaskStatus.FAILED  # type: ignore[union-attr]


def test_a_given_up_task_finishing_late_makes_one_event(driver: Driver, bus: Bus) -> None:
    task_id = driver.submit("multiply", {"x": 2, "y": 3}).body["task_id"]
    store = task_store()
    now = time.time()
    claimed = store.claim(task_id, now - 120, 60, started_at=now - 120)
    store.give_up(task_id, now, TaskFailure("GaveUp", "gave up"))

    with pytest.raises(TransitionRefused):
        store.finish(claimed, now + 1, claimed=True, started_at=now - 120, result_json="6")
    bus.notify()

    assert outcomes(bus.received()) == Counter({(task_id, "Task Failed"): 1})


def test_the_stream_carries_every_write_and_the_filter_passes_only_the_task_end(driver: Driver, bus: Bus) -> None:
    driver.submit("exclusive-counting", {"n": 2})
    driver.deliver()  # claimed, then finished: two writes after the create

    records = bus.stream_records()

    assert [record["eventName"] for record in records] == ["INSERT", "MODIFY", "MODIFY"]
    assert [passes(FILTERS, record) for record in records] == [False, False, True]


@pytest.mark.parametrize("url", ["https://169.254.169.254/latest", "https://hooks.example.com:0/t"])
def test_a_refused_webhook_url_is_a_422_naming_the_header_and_nothing_is_stored_or_queued(
    driver: Driver, url: str
) -> None:
    refused = driver.submit("multiply", {"x": 2, "y": 3}, {"Webhook-URL": url})

    assert refused.status == 422
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert "Webhook-URL" in refused.body["detail"]
    assert refused.body["errors"][0]["field"] == "Webhook-URL"
    assert driver.dynamodb.scan(TableName=driver.resources.table_name)["Count"] == 0
    assert driver.queue_depth(driver.resources.queue_url) == 0


def test_the_webhook_url_is_kept_on_the_record_apart_from_the_inputs(driver: Driver) -> None:
    task_id = driver.submit("multiply", {"x": 2, "y": 3}, {"Webhook-URL": "https://hooks.example.com/t"}).body[
        "task_id"
    ]

    stored = task_store().get(task_id)
    assert stored is not None
    assert stored.webhook_url == "https://hooks.example.com/t"
    assert json.loads(stored.input_json or "") == {"x": 2, "y": 3}


def test_a_delivery_retried_later_stays_hidden_and_one_given_up_goes_to_the_dead_letter_queue(
    aws: LocalResources,
) -> None:
    from core.adapters.publishers import SqsRetryQueue

    sqs = boto3.client("sqs")
    queue, dead_letters = aws["WebhookQueue"].ref, aws["WebhookDeadLetterQueue"].ref
    sqs.send_message(QueueUrl=queue, MessageBody="delivery")
    (message,) = sqs.receive_message(QueueUrl=queue, VisibilityTimeout=0)["Messages"]
    retries = SqsRetryQueue(queue, dead_letters, sqs)

    retries.retry_later(message["ReceiptHandle"], 60)
    retries.dead_letter("given up")

    assert sqs.receive_message(QueueUrl=queue).get("Messages", []) == []  # hidden for the next attempt's delay
    (dead,) = sqs.receive_message(QueueUrl=dead_letters)["Messages"]
    assert dead["Body"] == "given up"


def test_notifier_handler_answers_the_sample_event_with_one_event_and_one_delivery(bus: Bus) -> None:
    from tests.support.events import load_event

    response = notifier_handler(load_event("notifier_task_end"), lambda_context())

    assert response == {"batchItemFailures": []}
    (event,) = bus.received()
    assert (event["detail-type"], event["detail"]["result"]) == ("Task Succeeded", 6)
    (delivery,) = bus.deliveries()
    assert delivery["webhook_id"] == "msg_3f2b8a51-6c1e-4d7a-9b0f-2e5c8d4a1f60_succeeded"


def test_notifier_reports_the_record_when_the_bus_refuses_so_the_stream_retries_it(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError

    from core.adapters.aws import notifier

    publisher = notifier()._publisher
    assert publisher is not None

    def refuse(**_: Any) -> Any:
        raise ClientError({"Error": {"Code": "InternalFailure", "Message": "injected"}}, "PutEvents")

    monkeypatch.setattr(publisher, "_client", type("Refusing", (), {"put_events": staticmethod(refuse)})())
    from tests.support.events import load_event

    event = load_event("notifier_task_end")
    response = notifier_handler(event, lambda_context())

    assert response == {"batchItemFailures": [{"itemIdentifier": "4421584500000000017450439091"}]}


def test_an_idempotent_replay_naming_another_webhook_is_a_conflict(driver: Driver) -> None:
    first = {"Idempotency-Key": "order-7", "Webhook-URL": "https://hooks.example.com/a"}
    accepted = driver.submit("multiply", {"x": 2, "y": 3}, first)

    replayed = driver.submit("multiply", {"x": 2, "y": 3}, first)
    other = driver.submit("multiply", {"x": 2, "y": 3}, first | {"Webhook-URL": "https://hooks.example.com/b"})

    assert (accepted.status, replayed.status, other.status) == (202, 202, 409)
    assert replayed.body["task_id"] == accepted.body["task_id"]
