"""AWS clients and adapters, built once per container. AWS_ENDPOINT_URL (read by botocore) points them at
a local emulator."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import boto3
import botocore
from botocore.config import Config

from core.queue import SqsTaskQueue
from core.settings import settings, submit_settings
from core.store import DynamoTaskStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

_CONFIG = Config(
    # Fail fast inside an API request rather than hold the caller until API Gateway's 30 s limit.
    connect_timeout=2,
    read_timeout=5,
    retries={"mode": "standard", "max_attempts": 3},
    # Per call, botocore's client-side validation and its composed User-Agent cost more CPU than the rest of a
    # warm invocation (bench/). Our requests have fixed shapes, tested against moto, and AWS validates them too.
    parameter_validation=False,
    user_agent=f"long-running-tasks botocore/{botocore.__version__}",
)


@lru_cache(maxsize=1)
def dynamodb_client() -> DynamoDBClient:
    return boto3.client("dynamodb", config=_CONFIG)


@lru_cache(maxsize=1)
def sqs_client() -> SQSClient:
    return boto3.client("sqs", config=_CONFIG)


@lru_cache(maxsize=1)
def task_store() -> DynamoTaskStore:
    return DynamoTaskStore(settings().table_name, dynamodb_client())


@lru_cache(maxsize=1)
def task_queue() -> SqsTaskQueue:
    return SqsTaskQueue(submit_settings().queue_url, sqs_client())
