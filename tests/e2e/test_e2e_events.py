"""Completion events and webhooks over the local stack: the table's stream feeds the notifier, which puts events on
the stack's bus in moto (a rule sends them to a queue read here) and queues webhook deliveries for the webhook
function, which POSTs them to a receiver on 127.0.0.1, signed with the stack's webhook secret."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest
import requests
from standardwebhooks import Webhook

from devstack import LocalStack
from devstack.auth import STATE_DIR
from tests.e2e.e2e_support import wait_until
from tests.support.receivers import Receiver

pytestmark = pytest.mark.e2e

# The notifier gathers task ends for up to MaximumBatchingWindowInSeconds (1 s) before it is invoked.
EVENT_SECONDS = 30


class BusQueue:
    """A queue that a rule on the stack's bus sends every task event to."""

    def __init__(self, stack: LocalStack) -> None:
        self.sqs = stack.sqs
        events = boto3.client("events", endpoint_url=stack.endpoint_url, region_name="us-east-1")
        bus = stack.resources["TaskEventBus"].name
        self.url = self.sqs.create_queue(QueueName="e2e-task-events")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="e2e-all-tasks", EventBusName=bus, EventPattern='{"source": ["long-running-tasks"]}')
        events.put_targets(Rule="e2e-all-tasks", EventBusName=bus, Targets=[{"Id": "queue", "Arn": arn}])
        self.seen: list[dict[str, Any]] = []

    def of(self, task_ids: set[str]) -> list[dict[str, Any]]:
        """The events of these tasks received so far (read from the queue, kept here)."""
        while messages := self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                self.seen.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
        return [event for event in self.seen if event["detail"]["task_id"] in task_ids]


@pytest.fixture(scope="module")
def bus_queue(local_stack: LocalStack | None) -> BusQueue:
    if local_stack is None:
        pytest.skip("needs the local stack's bus; E2E_BASE_URL is set")
    return BusQueue(local_stack)


def submit(http: requests.Session, base_url: str, task: str, inputs: dict[str, Any], **headers: str) -> str:
    response = http.post(f"{base_url}/{task}", json=inputs, headers=headers, timeout=30)
    assert response.status_code == 202, response.text
    task_id: str = response.json()["task_id"]
    return task_id


def test_a_finished_task_is_posted_once_to_its_webhook_signed_with_the_stacks_secret(
    stack: LocalStack, http: requests.Session, base_url: str, receiver_factory: Callable[..., Receiver]
) -> None:
    receiver = receiver_factory()
    task_id = submit(http, base_url, "multiply", {"x": 6, "y": 7}, **{"Webhook-URL": receiver.url})

    wait_until(lambda: receiver.requests or None, timeout=EVENT_SECONDS, interval=0.2)
    time.sleep(2)  # time for a second delivery, were there one (the local retry schedule is 1, 2, 2 s)

    assert stack.webhook_secret is not None
    assert (STATE_DIR / "webhook-secret").read_text().strip().startswith("whsec_")
    ((headers, body),) = receiver.requests
    detail = Webhook(stack.webhook_secret).verify(body, headers)
    assert (detail["task_id"], detail["status"], detail["result"]) == (task_id, "succeeded", 42)
    assert headers["webhook-id"] == f"msg_{task_id}_succeeded"


def test_a_webhook_that_answers_500_is_tried_again_under_the_same_webhook_id(
    stack: LocalStack, http: requests.Session, base_url: str, receiver_factory: Callable[..., Receiver]
) -> None:
    receiver = receiver_factory(statuses=[500])
    task_id = submit(http, base_url, "e2e-fail", {}, **{"Webhook-URL": receiver.url})

    wait_until(lambda: len(receiver.requests) >= 2 or None, timeout=EVENT_SECONDS, interval=0.2)
    time.sleep(2)

    assert stack.webhook_secret is not None
    assert len(receiver.requests) == 2
    (first_headers, first_body), (headers, body) = receiver.requests
    assert first_headers["webhook-id"] == headers["webhook-id"] == f"msg_{task_id}_failed"
    assert first_body == body
    detail = Webhook(stack.webhook_secret).verify(body, headers)
    assert detail["error"] == {"type": "ValueError", "message": "this task always fails"}


@pytest.mark.parametrize("url", ["http://10.0.0.1/hook", "https://hooks.example.com/hook", "ftp://127.0.0.1/x"])
def test_a_webhook_url_the_stack_does_not_allow_is_a_422_naming_the_header(
    stack: LocalStack, http: requests.Session, base_url: str, url: str
) -> None:
    response = http.post(f"{base_url}/multiply", json={"x": 1, "y": 2}, headers={"Webhook-URL": url}, timeout=30)

    assert response.status_code == 422, response.text
    problem = response.json()
    assert "Webhook-URL" in problem["detail"]
    assert problem["errors"][0]["field"] == "Webhook-URL"


def test_every_terminal_state_puts_one_event_on_the_bus(
    stack: LocalStack, http: requests.Session, base_url: str, bus_queue: BusQueue
) -> None:
    succeeded = submit(http, base_url, "multiply", {"x": 2, "y": 3})
    failed = submit(http, base_url, "e2e-fail", {})
    cancelled = submit(http, base_url, "e2e-nap", {"seconds": 1.5})
    assert http.delete(f"{base_url}/e2e-nap/{cancelled}", timeout=10).status_code == 200
    ids = {succeeded, failed, cancelled}

    wait_until(lambda: len(bus_queue.of(ids)) >= 3 or None, timeout=EVENT_SECONDS, interval=0.5)
    time.sleep(2)

    events = {event["detail"]["task_id"]: event for event in bus_queue.of(ids)}
    assert len(bus_queue.of(ids)) == 3  # one each, no more
    assert events[succeeded]["detail-type"] == "Task Succeeded"
    assert events[succeeded]["detail"]["result"] == 6
    assert events[failed]["detail-type"] == "Task Failed"
    assert events[failed]["detail"]["error"]["type"] == "ValueError"
    assert events[cancelled]["detail-type"] == "Task Cancelled"
    assert {event["source"] for event in events.values()} == {"long-running-tasks"}
