"""SQS -> worker: runs each task message of the batch that the invocation has time for, and reports the ones to
deliver again (partial batch response, core.services.message_batch)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from core.adapters.aws import deferral_queue, durable_executions, payload_store, task_store
from core.observability import logger, metrics, record_finished
from core.registry import tasks
from core.services.message_batch import Deferrals, PartialBatchResponse, run_batch
from core.services.runner import TaskRunner
from core.settings import worker_settings

# Beyond the invocation's remaining time, so that a live run is never taken for a dead one.
LEASE_MARGIN_SECONDS = 5.0


def max_seconds(task: str) -> float | None:
    definition = tasks().get(task)
    return definition.max_seconds if definition is not None else None


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialBatchResponse:
    runner = TaskRunner(
        task_store(),
        payload_store(),
        max_receive_count=worker_settings().max_receive_count,
        lease_seconds=context.get_remaining_time_in_millis() / 1000 + LEASE_MARGIN_SECONDS,
        on_finished=record_finished,
        executions=durable_executions(),
    )
    deferrals = Deferrals(
        remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000,
        max_seconds=max_seconds,
        queue=deferral_queue(),
    )
    return run_batch(event["Records"], runner.handle, deferrals=deferrals, visibility=deferral_queue())
