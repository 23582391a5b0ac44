"""The durable runner: a Lambda durable function started by the worker for each durable task (the task id as the
execution's name). Each invocation resumes the task and runs its steps, replaying the completed ones from their
checkpoints (core.services.durable)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aws_durable_execution_sdk_python import DurableContext, durable_execution

from core.adapters.aws import payload_store, task_store
from core.observability import logger, metrics, record_finished
from core.services.durable import DurableRunner
from core.settings import durable_settings


@lru_cache(maxsize=1)
def runner() -> DurableRunner:
    settings = durable_settings()
    return DurableRunner(
        task_store(),
        payload_store(),
        max_receive_count=settings.max_receive_count,
        invocation_seconds=settings.worker_timeout,
        on_finished=record_finished,
    )


@durable_execution
def run_task(payload: dict[str, Any], context: DurableContext) -> dict[str, Any]:
    logger.set_correlation_id(str(payload.get("task_id")))
    return runner().run(payload, context)


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return run_task(event, context)  # type: ignore[no-any-return]
