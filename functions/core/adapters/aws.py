"""AWS clients and adapters, built once per container. AWS_ENDPOINT_URL (read by botocore) points them at
a local emulator."""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import botocore
import botocore.session
from botocore.config import Config

from core.settings import (
    notifier_settings,
    result_settings,
    settings,
    submit_settings,
    webhook_settings,
    worker_settings,
)

# Each factory imports its adapter itself: a function imports the adapters it builds and no others, which keeps
# every function's first invocation within 1.12x of a bare boto3 handler's (bench/first_invocation.py).
if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient

    from core.adapters.dynamodb_store import DynamoTaskStore
    from core.adapters.executions import LambdaDurableExecutions
    from core.adapters.payloads import S3PayloadStore
    from core.adapters.queue import SqsTaskQueue
    from core.services.events import Notifier
    from core.services.webhooks import WebhookSender

logger = logging.getLogger(__name__)

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


# botocore's models of our services, cut to the operations we call (tools/trim_botocore_models.py): a client
# reads its whole model at every cold start, DynamoDB's alone 500 KB of JSON.
BOTOCORE_MODELS = Path(__file__).parent / "botocore_models"
# The botocore version the models were cut from. A model belongs to its botocore: another version's parser, endpoint
# rules or customisations may need what the cut left out.
BOTOCORE_MODELS_VERSION = BOTOCORE_MODELS / "VERSION"


def cut_models_fit(running_version: str = botocore.__version__) -> bool:
    """Whether the cut models were cut from the running botocore; if not, says so once, in a warning."""
    cut_from = BOTOCORE_MODELS_VERSION.read_text().strip()
    if cut_from == running_version:
        return True
    logger.warning(
        "botocore %s runs, the cut models are from %s: using botocore's own models (run `make models`)",
        running_version,
        cut_from,
    )
    return False


@lru_cache(maxsize=1)
def session() -> boto3.Session:
    """The functions' session. Not boto3's default one: a task's own clients get botocore's full models."""
    botocore_session = botocore.session.get_session()
    if cut_models_fit():
        botocore_session.get_component("data_loader").search_paths.insert(0, str(BOTOCORE_MODELS))
    return boto3.Session(botocore_session=botocore_session)


@lru_cache(maxsize=1)
def dynamodb_client() -> DynamoDBClient:
    return session().client("dynamodb", config=_CONFIG)


@lru_cache(maxsize=1)
def sqs_client() -> SQSClient:
    return session().client("sqs", config=_CONFIG)


@lru_cache(maxsize=1)
def s3_client() -> S3Client:
    # Built only by an invocation that moves a large payload: small tasks never pay for S3's client. A local
    # emulator has no bucket DNS names: path-style addresses there.
    if os.environ.get("AWS_ENDPOINT_URL"):
        config = Config(signature_version="s3v4", s3={"addressing_style": "path"})
    else:
        # Every presigned link and upload form names the bucket's Region (<bucket>.s3.<region>.amazonaws.com), the
        # function's own: with "auto", botocore signs the legacy global endpoint <bucket>.s3.amazonaws.com, which
        # Regions launched after March 2019 answer with 400, and others with 307 redirects while a new bucket's
        # name propagates (up to a day), which a browser's POST and a signed GET do not survive
        # (https://docs.aws.amazon.com/AmazonS3/latest/userguide/VirtualHosting.html). us-east-1 too: botocore
        # keeps the global endpoint there unless asked for the regional one.
        config = Config(
            signature_version="s3v4", s3={"addressing_style": "virtual", "us_east_1_regional_endpoint": "regional"}
        )
    return session().client("s3", config=_CONFIG.merge(config))


@lru_cache(maxsize=1)
def lambda_client() -> LambdaClient:
    return session().client("lambda", config=_CONFIG)


@lru_cache(maxsize=1)
def secretsmanager_client() -> SecretsManagerClient:
    return session().client("secretsmanager", config=_CONFIG)


@lru_cache(maxsize=1)
def task_store() -> DynamoTaskStore:
    from core.adapters.dynamodb_store import DynamoTaskStore

    return DynamoTaskStore(settings().table_name, dynamodb_client())


@lru_cache(maxsize=1)
def payload_store() -> S3PayloadStore:
    from core.adapters.payloads import S3PayloadStore

    return S3PayloadStore(settings().payload_bucket, s3_client)


@lru_cache(maxsize=1)
def task_queue() -> SqsTaskQueue:
    from core.adapters.queue import SqsTaskQueue

    return SqsTaskQueue(submit_settings().queue_url, sqs_client)


@lru_cache(maxsize=1)
def deferral_queue() -> SqsTaskQueue:
    """The task queue as the worker sees it: where a batch's messages that cannot run in time go back."""
    from core.adapters.queue import SqsTaskQueue

    config = worker_settings()
    return SqsTaskQueue(config.queue_url, sqs_client, visibility_timeout=config.queue_visibility_timeout)


@lru_cache(maxsize=1)
def durable_executions() -> LambdaDurableExecutions:
    """Durable tasks' executions, as the worker starts them on the runner's alias."""
    from core.adapters.executions import LambdaDurableExecutions

    return LambdaDurableExecutions(worker_settings().durable_runner_arn, lambda_client)


@lru_cache(maxsize=1)
def execution_control() -> LambdaDurableExecutions:
    """Durable tasks' executions, as the result function stops and reads them (by execution ARN: no function named)."""
    from core.adapters.executions import LambdaDurableExecutions

    return LambdaDurableExecutions("", lambda_client)


def _secret(arn: str) -> bytes:
    return secretsmanager_client().get_secret_value(SecretId=arn)["SecretString"].encode()


@lru_cache(maxsize=1)
def id_secret() -> bytes:
    """The stack's key for idempotent task ids, read once per container (and only by one that needs it)."""
    return _secret(submit_settings().id_secret_arn)


@lru_cache(maxsize=1)
def listing_secret() -> bytes:
    """The same secret, as the result function reads it to sign and check list cursors (core.domain.listing)."""
    return _secret(result_settings().id_secret_arn)


@lru_cache(maxsize=1)
def notifier() -> Notifier:
    """The notifier's events and deliveries; with TaskEvents Disabled no EventBridge client is built."""
    from core.adapters.publishers import EventBridgePublisher, SqsDeadLetters, SqsDeliveryQueue
    from core.services.events import Notifier

    config = notifier_settings()
    publisher = None
    if config.events_enabled:
        events = session().client("events", config=_CONFIG)
        publisher = EventBridgePublisher(config.event_bus_name, config.event_source, events)
    return Notifier(
        publisher,
        SqsDeliveryQueue(config.webhook_queue_url, sqs_client()),
        SqsDeadLetters(config.dead_letter_queue_url, sqs_client()),
    )


@lru_cache(maxsize=1)
def webhook_secret() -> str:
    """The webhooks' signing key (with or without whsec_), read by the webhook function alone, at its first delivery."""
    return _secret(webhook_settings().secret_arn).decode()


@lru_cache(maxsize=1)
def webhook_sender() -> WebhookSender:
    from core.adapters.publishers import SqsRetryQueue
    from core.services.webhooks import WebhookSender

    config = webhook_settings()
    return WebhookSender(
        webhook_secret,
        policy=config.url_policy,
        schedule=config.retry_schedule,
        queue=SqsRetryQueue(config.queue_url, config.dead_letter_queue_url, sqs_client()),
    )
