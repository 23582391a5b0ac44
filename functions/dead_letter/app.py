"""The dead-letter queue -> dead-letter consumer: the task of every message that used up its deliveries is failed
with a clear error (core.services.dead_letters), so that no accepted task reads as queued until its record expires;
and so is the task of every durable execution that ended without finishing it (DurableExecutionEndsQueue)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from core.adapters.aws import task_store
from core.observability import logger, metrics, record_dead_lettered
from core.services.dead_letters import DeadLetters, dead_letter_message
from core.services.message_batch import PartialBatchResponse, run_batch
from core.settings import dead_letter_settings


@lru_cache(maxsize=1)
def dead_letters() -> DeadLetters:
    return DeadLetters(
        task_store(), max_receive_count=dead_letter_settings().max_receive_count, on_failed=record_dead_lettered
    )


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialBatchResponse:
    return run_batch(
        event["Records"], lambda message, receive_count: dead_letters().settle(message), parse=dead_letter_message
    )
