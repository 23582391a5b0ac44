"""POST /<task>: validate a task's input, record it as queued, enqueue it; 202 with its id at once.
GET /openapi.json: the API's OpenAPI document."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from core.aws import id_secret, task_queue, task_store
from core.http import TASK_ROUTE, Request, Router, dumps, response, task_response
from core.observability import logger, metrics, record_submitted
from core.registry import get_task
from core.service import TaskService
from core.settings import submit_settings


@lru_cache(maxsize=1)
def service() -> TaskService:
    return TaskService(task_store(), task_queue(), retention_days=submit_settings().retention_days, id_secret=id_secret)


def submit(request: Request, task: str) -> dict[str, Any]:
    definition = get_task(task)  # an unknown task is a 404 whatever its body
    submission = service().submit(
        definition, request.json_body(), owner=request.owner, idempotency_key=request.header("Idempotency-Key")
    )
    logger.set_correlation_id(submission.record.task_id)
    logger.info("task accepted", task=task, replayed=submission.replayed)
    if not submission.replayed:
        record_submitted(task)
    return task_response(request, submission.record, submitted=True)


def openapi(request: Request) -> dict[str, Any]:
    from core.openapi import openapi_document  # only this rare request pays for building JSON schemas

    return response(200, dumps(openapi_document()), "application/json")


route = Router({"/openapi.json": {"GET": openapi}, TASK_ROUTE: {"POST": submit}})


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return route(event)
