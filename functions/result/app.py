"""GET /<task>/<task_id>: a task's status and result. DELETE: cancel a task that has not finished."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from core.api import OTHER_METHODS, create_app, method_not_allowed, task_response
from core.aws import task_store
from core.observability import logger, metrics
from core.registry import get_task
from core.service import TaskService
from core.settings import settings

app = create_app()


@lru_cache(maxsize=1)
def service() -> TaskService:
    return TaskService(task_store(), retention_days=settings().retention_days)


@app.get("/<task>/<task_id>")
def show(task: str, task_id: str) -> Response[str]:
    definition = get_task(task)
    logger.set_correlation_id(task_id)
    return task_response(app.current_event, service().get(task, task_id), definition)


@app.delete("/<task>/<task_id>")
def cancel(task: str, task_id: str) -> Response[str]:
    definition = get_task(task)
    logger.set_correlation_id(task_id)
    record = service().cancel(task, task_id)
    logger.info("task cancelled", task=task)
    return task_response(app.current_event, record, definition)


@app.route("/<task>/<task_id>", method=[method for method in OTHER_METHODS if method not in ("GET", "DELETE")])
def wrong_method(task: str, task_id: str) -> Response[str]:
    raise method_not_allowed(app.current_event, ["GET", "DELETE"])


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
