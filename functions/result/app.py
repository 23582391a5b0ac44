"""GET /<task>/<task_id>: a task's status and result. DELETE: cancel a task that has not finished.

Two methods on one path, routed here rather than by Powertools' resolver, and the task's record alone answers
(its Retry-After is stored at submit): the function starts with boto3, the store and the logger, and is as
quick to start as a bare handler. The registry is imported only to word the error for an unknown task.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from core.aws import task_store
from core.errors import MethodNotAllowed, TaskError, TaskNotFound
from core.http import TASK_PATH, dumps, event_path, problem, response, task_headers, task_status_code
from core.observability import logger, metrics
from core.records import TaskRecord
from core.service import TaskService
from core.settings import settings

ALLOWED = ["GET", "DELETE"]
OTHER_METHODS = {"PUT", "PATCH", "POST", "HEAD", "OPTIONS"}  # as the submit function's resolver routes them


@lru_cache(maxsize=1)
def service() -> TaskService:
    return TaskService(task_store(), retention_days=settings().retention_days)


def _known_task(task: str) -> None:
    """404 for a task name no module registers (as submit answers it); loads the registry, so only on errors."""
    from core.registry import get_task

    get_task(task)


def _task_response(record: TaskRecord) -> dict[str, Any]:
    return response(task_status_code(record), dumps(record.to_public()), "application/json", task_headers(record))


def show(task: str, task_id: str) -> dict[str, Any]:
    logger.set_correlation_id(task_id)
    try:
        record = service().get(task, task_id)
    except TaskError:
        _known_task(task)  # an unknown task is a 404 of its own, whatever its id
        raise
    return _task_response(record)


def cancel(task: str, task_id: str) -> dict[str, Any]:
    logger.set_correlation_id(task_id)
    try:
        record = service().cancel(task, task_id)
    except TaskError:
        _known_task(task)
        raise
    logger.info("task cancelled", task=task)
    return _task_response(record)


def route(event: dict[str, Any]) -> dict[str, Any]:
    method = str(event["requestContext"]["http"]["method"]).upper()
    path = event_path(event)
    match = TASK_PATH.match(path)
    if match is None or method not in {*ALLOWED, *OTHER_METHODS}:
        return problem(404, TaskNotFound.title, f"no route for {event.get('rawPath')}")
    task, task_id = match["task"], match["task_id"]
    try:
        if method == "GET":
            return show(task, task_id)
        if method == "DELETE":
            return cancel(task, task_id)
        raise MethodNotAllowed(f"{method} is not allowed here", allowed=ALLOWED)
    except TaskError as error:
        extra = dict(error.extra)
        if isinstance(error, MethodNotAllowed):
            extra["allow"] = error.allowed
        logger.info("request refused", extra={"status": error.status, "detail": error.detail})
        return problem(error.status, error.title, error.detail, instance=event.get("rawPath"), **extra)
    except Exception:  # noqa: BLE001 - any failure becomes an opaque 500, as the submit function answers
        # Opaque to the client: the request id finds the traceback in the function's logs.
        request_id = event["requestContext"].get("requestId")
        logger.exception("unexpected error", extra={"request_id": request_id})
        return problem(500, "Internal error", "the request could not be completed", request_id=request_id)


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return route(event)
