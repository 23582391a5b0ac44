"""POST /<task>: validate a task's input, record it as queued, enqueue it; 202 with its id at once."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from core.api import OTHER_METHODS, caller_identity, create_app, json_body, method_not_allowed, task_response
from core.aws import task_queue, task_store
from core.observability import logger, metrics, record_submitted
from core.registry import get_task
from core.service import TaskService
from core.settings import submit_settings

app = create_app()


@lru_cache(maxsize=1)
def service() -> TaskService:
    return TaskService(task_store(), task_queue(), retention_days=submit_settings().retention_days)


@app.post("/<task>")
def submit(task: str) -> Response[str]:
    event = app.current_event
    get_task(task)  # an unknown task is a 404 whatever its body
    submission = service().submit(
        task, json_body(event), idempotency_key=event.headers.get("idempotency-key"), caller=caller_identity(event)
    )
    logger.set_correlation_id(submission.record.task_id)
    logger.info("task accepted", task=task, replayed=submission.replayed)
    if not submission.replayed:
        record_submitted(task)
    return task_response(event, submission.record, submission.definition, submitted=True)


@app.get("/openapi.json")
def openapi() -> Response[str]:
    from core.openapi import openapi_document  # only this rare request pays for building JSON schemas

    return Response(status_code=200, content_type="application/json", body=json.dumps(openapi_document()))


@app.route("/<task>", method=[method for method in OTHER_METHODS if method != "POST"])
def wrong_method(task: str) -> Response[str]:
    raise method_not_allowed(app.current_event, ["POST"])


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
