"""GET /<task>/<task_id>: a task's status and result. DELETE: cancel a task that has not finished. Only the task's
owner sees it: to anyone else it is 404, as a task that never existed.

The task's record alone answers (its Retry-After is stored at submit), so the function starts without the task
registry: as quick to start as a bare handler.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from core.aws import task_store
from core.http import TASK_ID_ROUTE, Request, Router, task_response
from core.observability import logger, metrics
from core.service import TaskService
from core.settings import settings


@lru_cache(maxsize=1)
def service() -> TaskService:
    return TaskService(task_store(), retention_days=settings().retention_days)


def show(request: Request, task: str, task_id: str) -> dict[str, Any]:
    logger.set_correlation_id(task_id)
    return task_response(request, service().get(task, task_id, owner=request.owner))


def cancel(request: Request, task: str, task_id: str) -> dict[str, Any]:
    logger.set_correlation_id(task_id)
    record = service().cancel(task, task_id, owner=request.owner)
    logger.info("task cancelled", task=task)
    return task_response(request, record)


route = Router({TASK_ID_ROUTE: {"GET": show, "DELETE": cancel}})


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return route(event)
