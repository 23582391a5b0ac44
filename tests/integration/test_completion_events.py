"""Exactly one event per task end, whatever races the writes: the real DynamoDB store on moto, moto's stream of the
table as template.yaml defines it, the template's filter, and the notifier's handler putting events on moto's bus
(a rule on it sends them to a queue, where they are counted)."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any, ClassVar

import boto3
import pytest
from botocore.stub import Stubber

from core.adapters.aws import task_store
from core.domain.lifecycle import view
from core.domain.records import TaskFailure, TaskStatus
from core.domain.store import TransitionRefused
from core.errors import MAX_ERROR_TEXT, MAX_FIELD_ERRORS
from core.services.events import TERMINAL_TRANSITION
from core.services.webhooks import MAX_HIDE_SECONDS
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


def test_a_retry_is_a_new_delayed_message_and_one_received_early_is_hidden_again(aws: LocalResources) -> None:
    from core.adapters.publishers import SqsRetryQueue

    sqs = boto3.client("sqs")
    queue, dead_letters = aws["WebhookQueue"].ref, aws["WebhookDeadLetterQueue"].ref
    retries = SqsRetryQueue(queue, dead_letters, sqs)

    retries.send_later("next attempt", 900)
    assert sqs.receive_message(QueueUrl=queue).get("Messages", []) == []  # delayed
    sqs.send_message(QueueUrl=queue, MessageBody="received early")
    (message,) = sqs.receive_message(QueueUrl=queue, VisibilityTimeout=0)["Messages"]
    retries.hide(message["ReceiptHandle"], MAX_HIDE_SECONDS)
    retries.dead_letter("given up")

    assert sqs.receive_message(QueueUrl=queue).get("Messages", []) == []  # hidden until its attempt is due
    (dead,) = sqs.receive_message(QueueUrl=dead_letters)["Messages"]
    assert dead["Body"] == "given up"


def test_the_retry_queue_asks_sqs_only_for_what_its_api_allows() -> None:
    from core.adapters.publishers import SqsRetryQueue

    # GIVEN the client, stubbed: each call must carry exactly these parameters
    sqs = boto3.client("sqs", region_name="eu-west-1")
    url = "https://sqs.eu-west-1.amazonaws.com/123456789012/webhooks"
    stubber = Stubber(sqs)
    stubber.add_response("send_message", {"MessageId": "m"}, {"QueueUrl": url, "MessageBody": "b", "DelaySeconds": 900})
    stubber.add_response(
        "change_message_visibility", {}, {"QueueUrl": url, "ReceiptHandle": "r", "VisibilityTimeout": 39_600}
    )
    retries = SqsRetryQueue(url, "https://sqs.eu-west-1.amazonaws.com/123456789012/dead", sqs)

    # WHEN a retry is queued and a message received early is hidden, each as long as SQS allows
    with stubber:
        retries.send_later("b", 900)
        retries.hide("r", MAX_HIDE_SECONDS)
        stubber.assert_no_pending_responses()

    # THEN longer is refused before any call: DelaySeconds tops at 900, and a hiding stays an hour inside the 12 hours
    # that SQS allows from the receive (it is made during an invocation that began up to ~20 minutes after)
    with pytest.raises(ValueError, match="900"):
        retries.send_later("b", 901)
    with pytest.raises(ValueError, match="39600"):
        retries.hide("r", 43_200)


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


# ---- no outcome too large to tell, and none that holds back another's


def _thousands_of_unknown_fields() -> dict[str, Any]:
    body: dict[str, Any] = {"values": [1, 2, 3]}
    body.update({f"unknown_{n:04d}": n for n in range(3_000)})
    body["k" * 10_000] = "a field name of ten thousand characters"
    return body


def test_an_input_with_thousands_of_unknown_fields_is_a_422_listing_fifty_and_counting_the_rest(
    driver: Driver,
) -> None:
    refused = driver.submit("describe", _thousands_of_unknown_fields())

    assert refused.status == 422
    assert len(refused.body["errors"]) == MAX_FIELD_ERRORS
    assert refused.body["errors_omitted"] == 3_001 - MAX_FIELD_ERRORS
    assert all(len(error["field"]) <= MAX_ERROR_TEXT for error in refused.body["errors"])
    assert len(json.dumps(refused.body)) < 16_000


def test_an_uploaded_input_with_thousands_of_unknown_fields_fails_in_a_small_record_whose_event_is_put(
    driver: Driver, bus: Bus
) -> None:
    # GIVEN such an input, uploaded (so that the worker is the one to find it wrong)
    created = driver.create_upload()
    assert created.status == 201, created.body
    driver.upload(created.body, json.dumps(_thousands_of_unknown_fields()).encode())
    task_id = driver.submit("describe", None, {"Input-Upload": str(created.body["upload_id"])}).body["task_id"]

    # WHEN the worker fails it, and the notifier reads the stream
    driver.deliver()
    response = bus.notify()

    # THEN the record stays small, GET shows the errors a 422 would (fifty, and how many more), and its event is put
    item = driver.item(task_id)
    assert item is not None
    assert len(json.dumps(item)) < 20_000
    failed = driver.get("describe", task_id).body
    assert len(failed["error"]["errors"]) == MAX_FIELD_ERRORS
    assert failed["error"]["errors_omitted"] == 3_001 - MAX_FIELD_ERRORS
    assert response == {"batchItemFailures": []}
    (event,) = bus.received()
    assert event["detail"]["error"] == failed["error"]


def test_an_event_the_bus_refuses_for_good_is_kept_in_the_notifiers_dead_letter_queue_and_holds_back_none(
    driver: Driver, bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.adapters.aws import notifier

    # GIVEN three tasks ended, and a bus that will never take the first one's event (as EventBridge answers an entry
    # it cannot accept) and is throttled on none
    task_ids = [driver.submit("multiply", {"x": n, "y": 1}).body["task_id"] for n in range(3)]
    driver.deliver()
    publisher = notifier()._publisher
    assert publisher is not None
    events = boto3.client("events")

    def put_events(Entries: list[dict[str, Any]]) -> dict[str, Any]:
        answers = []
        for entry in Entries:
            if json.loads(entry["Detail"])["task_id"] == task_ids[0]:
                answers.append({"ErrorCode": "InvalidArgument", "ErrorMessage": "injected"})
            else:
                answers += events.put_events(Entries=[entry])["Entries"]
        return {"FailedEntryCount": 1, "Entries": answers}

    monkeypatch.setattr(publisher, "_client", type("Refusing", (), {"put_events": staticmethod(put_events)})())

    # WHEN the notifier reads the stream
    response = bus.notify()

    # THEN no record is retried: the other two events are put, the refused one kept with its reason
    assert response == {"batchItemFailures": []}
    assert set(outcomes(bus.received())) == {(task_id, "Task Succeeded") for task_id in task_ids[1:]}
    dead_letters = driver.resources["NotifierDeadLetterQueue"].ref
    (kept,) = bus.sqs.receive_message(QueueUrl=dead_letters)["Messages"]
    body = json.loads(kept["Body"])
    assert (body["task_id"], body["detail-type"], body["reason"]) == (
        task_ids[0],
        "Task Succeeded",
        "event: InvalidArgument: injected",
    )
    assert body["detail"]["result"] == 0


def test_the_publisher_puts_at_most_256_kb_a_call_and_tells_a_retryable_entry_from_a_refused_one() -> None:
    from core.adapters.publishers import MAX_REQUEST_BYTES, EventBridgePublisher
    from core.domain.records import TaskRecord
    from core.services.events import task_event

    # GIVEN ten events of about 40 KB each (a failure's error list at its largest is about that)
    def ended(n: int) -> Any:
        errors = tuple({"field": f"f{n}.{i}", "message": "m" * 190, "type": "invalid"} for i in range(180))
        failure = TaskFailure("InvalidInput", "bad", errors)
        return task_event(
            TaskRecord(f"id-{n}", "multiply", TaskStatus.FAILED, "{}", 1.0, 2, "o", finished_at=2.0, error=failure)
        )

    events = [ended(n) for n in range(10)]

    class Bus:
        """Answers the first call's first entry as throttled and its second as malformed, as PutEvents may."""

        calls: ClassVar[list[list[dict[str, Any]]]] = []

        def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
            self.calls.append(Entries)
            codes = {0: "ThrottlingException", 1: "MalformedDetail"} if len(self.calls) == 1 else {}
            return {
                "Entries": [{"ErrorCode": codes[n]} if n in codes else {"EventId": "e"} for n in range(len(Entries))]
            }

    # WHEN they are published
    outcome = EventBridgePublisher("bus", "long-running-tasks", Bus()).publish(events)  # type: ignore[arg-type]

    # THEN each call held at most ten entries of at most 256 KB together, sized as EventBridge sizes an entry, and
    # every event was put once, in order
    def size(entry: dict[str, Any]) -> int:
        return sum(len(entry[key].encode()) for key in ("Source", "DetailType", "Detail"))

    assert len(Bus.calls) > 1
    assert all(len(call) <= 10 and sum(map(size, call)) <= MAX_REQUEST_BYTES for call in Bus.calls)
    assert [json.loads(entry["Detail"])["task_id"] for call in Bus.calls for entry in call] == [
        f"id-{n}" for n in range(10)
    ]
    # AND the throttled entry is to be retried, the malformed one is refused for good
    assert outcome.retry == {0}
    assert outcome.refused == {1: "MalformedDetail: "}
