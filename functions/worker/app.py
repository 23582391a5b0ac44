"""SQS -> worker: runs each task message and reports the ones to deliver again (partial batch response)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from core.aws import task_store
from core.observability import logger, metrics, record_finished
from core.queue import TaskMessage
from core.runner import TaskRunner
from core.settings import worker_settings

# A batch whose every message failed is still a partial response, not an invocation error: retries of
# tasks must not trip the Errors alarm, which is for faults of the worker itself.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

# Beyond the invocation's remaining time, so that a live run is never taken for a dead one.
LEASE_MARGIN_SECONDS = 5.0


def handle_record(record: SQSRecord, runner: TaskRunner) -> None:
    message = TaskMessage.from_body(record.body)
    logger.set_correlation_id(message.task_id)
    outcome = runner.handle(message, int(record.attributes.approximate_receive_count))
    logger.info("task message handled", task=outcome.task, outcome=outcome.status)


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    runner = TaskRunner(
        task_store(),
        max_receive_count=worker_settings().max_receive_count,
        lease_seconds=context.get_remaining_time_in_millis() / 1000 + LEASE_MARGIN_SECONDS,
        on_finished=record_finished,
    )
    return process_partial_response(
        event=event, record_handler=lambda record: handle_record(record, runner), processor=processor, context=context
    )
