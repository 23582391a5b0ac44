"""SQS -> worker: runs each task message and reports the ones to deliver again (partial batch response).

The partial batch response is built here rather than with Powertools' BatchProcessor: the batch utility's
package imports asyncio and every event data class at start-up, which cost the worker a quarter of its cold
start (measured by `make bench`), for a loop of a few lines.
"""

from __future__ import annotations

from typing import Any, TypedDict

from aws_lambda_powertools.utilities.typing import LambdaContext

from core.aws import task_store
from core.observability import logger, metrics, record_finished
from core.queue import TaskMessage
from core.runner import TaskBusy, TaskRunner
from core.settings import worker_settings

# Beyond the invocation's remaining time, so that a live run is never taken for a dead one.
LEASE_MARGIN_SECONDS = 5.0


class ItemFailure(TypedDict):
    itemIdentifier: str


class PartialBatchResponse(TypedDict):
    batchItemFailures: list[ItemFailure]


def handle_record(record: dict[str, Any], runner: TaskRunner) -> None:
    message = TaskMessage.from_body(record["body"])
    logger.set_correlation_id(message.task_id)
    outcome = runner.handle(message, int(record["attributes"]["ApproximateReceiveCount"]))
    logger.info("task message handled", task=outcome.task, outcome=outcome.status)


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialBatchResponse:
    runner = TaskRunner(
        task_store(),
        max_receive_count=worker_settings().max_receive_count,
        lease_seconds=context.get_remaining_time_in_millis() / 1000 + LEASE_MARGIN_SECONDS,
        on_finished=record_finished,
    )
    failures: list[ItemFailure] = []
    for record in event["Records"]:
        try:
            handle_record(record, runner)
        except TaskBusy as busy:
            # Expected: another delivery holds the task (or just put it back); a later delivery sees to it.
            logger.info(
                "task held by another delivery; SQS will deliver it again",
                message_id=record.get("messageId"),
                reason=str(busy),
            )
            failures.append({"itemIdentifier": record["messageId"]})
        except Exception:  # noqa: BLE001 - any failure of one message sends that message back, never the batch
            # A batch whose every message failed is still a partial response, not an invocation error: retries of
            # tasks must not trip the Errors alarm, which is for faults of the worker itself.
            logger.exception("task message failed; SQS will deliver it again", message_id=record.get("messageId"))
            failures.append({"itemIdentifier": record["messageId"]})
        finally:
            logger.set_correlation_id(None)
    return {"batchItemFailures": failures}
