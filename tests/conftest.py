"""Fixtures shared by every test: the Lambda environment, moto resources built from template.yaml, events."""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import boto3
import pytest
from moto import mock_aws  # imported before any client is built, so moto can intercept them all

from devstack.resources import LocalResources, create_resources
from tests.support.receivers import Receiver

# The environment template.yaml gives the functions, with the names create_resources gives the resources.
LAMBDA_ENVIRONMENT = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "TABLE_NAME": "TasksTable",
    "QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/TaskQueue",
    # A secret's name serves as its id as well as its ARN (whose suffix moto draws at random).
    "TASK_ID_SECRET_ARN": "TaskIdSecret",
    "PAYLOAD_BUCKET": "payloadbucket",
    "TASK_RETENTION_DAYS": "7",
    "MAX_RECEIVE_COUNT": "3",
    "MULTIPLY_DELAY_SECONDS": "0",
    "POWERTOOLS_SERVICE_NAME": "long-running-tasks",
    "POWERTOOLS_METRICS_NAMESPACE": "LongRunningTasks",
    "WEBHOOK_URL_POLICY": "public",
    "WORKER_MEMORY_MB": "512",
    "IAM_OWNER": "Role",
    "TASK_EVENTS": "Enabled",
    "EVENT_BUS_NAME": "local-tasks",
    "WEBHOOK_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/WebhookQueue",
    "WEBHOOK_DEAD_LETTER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/WebhookDeadLetterQueue",
    "NOTIFIER_DEAD_LETTER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/NotifierDeadLetterQueue",
    "WEBHOOK_SECRET_ARN": "WebhookSecret",
    "WEBHOOK_RETRY_SCHEDULE": "1,2",
    "DURABLE_RUNNER_ARN": "arn:aws:lambda:us-east-1:123456789012:function:durable-runner:live",
    "WORKER_TIMEOUT": "60",
    "QUEUE_VISIBILITY_TIMEOUT": "360",
    "DURABLE_TASK_TIMEOUT": "86400",
}
os.environ.update(LAMBDA_ENVIRONMENT)
os.environ.pop("AWS_ENDPOINT_URL", None)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalResources]:
    """A fresh in-process moto account holding the template's table and queues."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        resources = create_resources()
        assert resources.table_name == LAMBDA_ENVIRONMENT["TABLE_NAME"]
        assert resources.queue_url == LAMBDA_ENVIRONMENT["QUEUE_URL"]
        assert resources.max_receive_count == int(LAMBDA_ENVIRONMENT["MAX_RECEIVE_COUNT"])
        assert str(resources.parameters["TaskRetentionDays"]) == LAMBDA_ENVIRONMENT["TASK_RETENTION_DAYS"]
        yield resources


@pytest.fixture
def sqs(aws: LocalResources) -> Any:
    return boto3.client("sqs")


@pytest.fixture
def dynamodb(aws: LocalResources) -> Any:
    return boto3.client("dynamodb")


@pytest.fixture
def driver(aws: LocalResources) -> Any:
    import tests.support.extra_tasks  # noqa: F401 - registers the test-only tasks
    from tests.support.driver import Driver

    return Driver(aws)


@pytest.fixture
def receiver_factory() -> Iterator[Callable[..., Receiver]]:
    """Webhook receivers on 127.0.0.1 (tests.support.receivers), closed after the test."""
    started: list[Receiver] = []

    def start(statuses: Sequence[int] = (), tls: ssl.SSLContext | None = None) -> Receiver:
        started.append(Receiver(statuses, tls))
        return started[-1]

    yield start
    for receiver in started:
        receiver.close()
