"""The task table's stream -> notifier: each task's move into a terminal state (the event source's filter passes no
other record) becomes one event on the stack's bus and, when the task names a webhook, one queued delivery
(core.services.events). A failed record is reported by its sequence number; Lambda retries from there (partial batch
response)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from core.adapters.aws import notifier
from core.observability import logger, metrics
from core.services.events import StreamBatchResponse


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> StreamBatchResponse:
    return notifier().handle(event["Records"])
