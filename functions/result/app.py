"""GET /<task>/<task_id>: a task's status and result. DELETE: cancel a task that has not finished.
GET /<task>/<task_id>/result: the result alone (303 to its download link when it is kept in the payload bucket).
Only the task's owner sees it: to anyone else it is 404, as a task that never existed.

The task's record alone answers (its Retry-After is stored at submit), so the function starts without the task
registry: as quick to start as a bare handler.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from core.aws import payload_store, task_store
from core.errors import Conflict
from core.http import RESULT_ROUTE, TASK_ID_ROUTE, Request, Router, response, see_other, task_response
from core.observability import logger, metrics
from core.payloads import RESULT_URL_SECONDS
from core.records import TaskRecord, TaskStatus
from core.service import TaskService
from core.settings import settings


@lru_cache(maxsize=1)
def service() -> TaskService:
    return TaskService(task_store(), retention_days=settings().retention_days)


def result_url(record: TaskRecord) -> str | None:
    """A short-lived download link to a result kept in the payload bucket, for the owner who asked (nobody else
    reaches this: the record was read for its owner)."""
    if record.status is not TaskStatus.SUCCEEDED or record.result_ref is None:
        return None
    return payload_store().download_url(record.result_ref, RESULT_URL_SECONDS)


def show(request: Request, task: str, task_id: str) -> dict[str, Any]:
    logger.set_correlation_id(task_id)
    record = service().get(task, task_id, owner=request.owner)
    return task_response(request, record, result_url=result_url(record))


def cancel(request: Request, task: str, task_id: str) -> dict[str, Any]:
    logger.set_correlation_id(task_id)
    record = service().cancel(task, task_id, owner=request.owner)
    logger.info("task cancelled", task=task)
    return task_response(request, record)


def show_result(request: Request, task: str, task_id: str) -> dict[str, Any]:
    """The result itself: 200 with it when it is small, 303 to its download link when it is not; while the task is
    pending, its status (202, Retry-After); 409 when it failed or was cancelled."""
    logger.set_correlation_id(task_id)
    record = service().get(task, task_id, owner=request.owner)
    if not record.status.is_terminal:
        return task_response(request, record)
    if record.status is not TaskStatus.SUCCEEDED:
        raise Conflict(f"task {record.task_id} is {record.status.value}: it has no result", task_status=record.status)
    url = result_url(record)
    if url is not None:
        return see_other(url)
    return response(200, record.result_json or "null", "application/json")


route = Router({TASK_ID_ROUTE: {"GET": show, "DELETE": cancel}, RESULT_ROUTE: {"GET": show_result}})


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return route(event)
