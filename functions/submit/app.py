"""POST /<task>: validate a task's input, record it as queued, enqueue it; 202 with its id at once.
POST /uploads: a form to upload an input too large for a request straight to the payload bucket.
GET /openapi.json: the API's OpenAPI document."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from core.adapters.aws import id_secret, payload_store, task_queue, task_store
from core.adapters.payloads import InputLimit
from core.domain.records import iso
from core.http.api import TASK_ROUTE, UPLOADS_ROUTE, Request, Router, dumps, response, task_response
from core.observability import logger, metrics, record_submitted
from core.registry import get_task
from core.services.tasks import UPLOAD_HEADER, TaskService, upload_size
from core.services.webhooks import WEBHOOK_HEADER
from core.settings import submit_settings


@lru_cache(maxsize=1)
def service() -> TaskService:
    return TaskService(
        task_store(),
        task_queue(),
        retention_days=submit_settings().retention_days,
        payloads=payload_store(),
        id_secret=id_secret,
        webhook_url_policy=submit_settings().webhook_url_policy,
        input_limit=InputLimit(submit_settings().worker_memory_mb),
        durable_task_seconds=submit_settings().durable_task_timeout,
    )


def submit(request: Request, task: str) -> dict[str, Any]:
    definition = get_task(task)  # an unknown task is a 404 whatever its body
    upload_id = request.header(UPLOAD_HEADER)
    submission = service().submit(
        definition,
        request.json_body(optional=upload_id is not None),
        owner=request.owner,
        idempotency_key=request.header("Idempotency-Key"),
        upload_id=upload_id,
        webhook_url=request.header(WEBHOOK_HEADER),
    )
    logger.set_correlation_id(submission.record.task_id)
    logger.info("task accepted", task=task, replayed=submission.replayed, uploaded=upload_id is not None)
    if not submission.replayed:
        record_submitted(task)
    return task_response(request, submission.record, submitted=True)


def create_upload(request: Request) -> dict[str, Any]:
    # Old clients send no body: their form allows what a task can take.
    declared = upload_size(request.json_body()) if request.has_body else None
    upload = service().create_upload(request.owner, declared)
    body = {
        "upload_id": upload.upload_id,
        "url": upload.form.url,
        "fields": upload.form.fields,
        "expires_at": iso(upload.expires_at),
        "max_bytes": upload.max_bytes,
        "header": UPLOAD_HEADER,
    }
    return response(201, dumps(body), "application/json")


def openapi(request: Request) -> dict[str, Any]:
    from core.http.openapi import openapi_document  # only this rare request pays for building JSON schemas

    return response(200, dumps(openapi_document(InputLimit(submit_settings().worker_memory_mb))), "application/json")


route = Router(
    {"/openapi.json": {"GET": openapi}, UPLOADS_ROUTE: {"POST": create_upload}, TASK_ROUTE: {"POST": submit}}
)


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return route(event)
