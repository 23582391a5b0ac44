"""The webhook queue -> webhook function: POSTs each task's outcome to the URL it named, signed (Standard Webhooks);
a failed delivery comes back after the retry schedule's next delay (core.services.webhooks). The only function that reads the
webhook secret and the only one that connects to the internet."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from core.adapters.aws import webhook_sender
from core.observability import logger, metrics


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, list[dict[str, str]]]:
    return webhook_sender().handle(event["Records"])
