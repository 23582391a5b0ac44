"""The HTTP side shared by the submit and result functions: body parsing, responses, and the one place
where domain errors become HTTP statuses (RFC 9457 problem details)."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from core.errors import MalformedRequest, MethodNotAllowed, PayloadTooLarge, TaskError, TaskNotFound
from core.http import PROBLEM_JSON, dumps, retry_after
from core.records import TaskRecord

if TYPE_CHECKING:
    from core.registry import TaskDefinition

logger = logging.getLogger(__name__)

# Well under SQS's 1 MiB message and DynamoDB's 400 KB item, which must also hold the result.
MAX_BODY_BYTES = 256 * 1024
OTHER_METHODS = ["GET", "PUT", "PATCH", "DELETE", "POST", "HEAD", "OPTIONS"]


_dumps = dumps


def problem(status: int, title: str, detail: str, **extra: Any) -> Response[str]:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    headers: dict[str, str] = {}
    if "allow" in extra:
        headers["Allow"] = ", ".join(extra["allow"])
    return Response(status_code=status, content_type=PROBLEM_JSON, body=_dumps(body), headers=headers)


def create_app() -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver(serializer=_dumps)

    @app.exception_handler(TaskError)
    def task_error(error: TaskError) -> Response[str]:
        extra = dict(error.extra)
        if isinstance(error, MethodNotAllowed):
            extra["allow"] = error.allowed
        logger.info("request refused", extra={"status": error.status, "detail": error.detail})
        return problem(error.status, error.title, error.detail, instance=app.current_event.raw_path, **extra)

    @app.exception_handler(Exception)
    def unexpected(error: Exception) -> Response[str]:
        # Opaque to the client: the request id finds the traceback in the function's logs.
        request_id = app.current_event.request_context.request_id
        logger.exception("unexpected error", extra={"request_id": request_id})
        return problem(500, "Internal error", "the request could not be completed", request_id=request_id)

    @app.not_found
    def not_found(_: Exception) -> Response[str]:
        return problem(404, TaskNotFound.title, f"no route for {app.current_event.raw_path}")

    return app


def json_body(event: APIGatewayProxyEventV2) -> Any:
    """The request's JSON body: 413 over the size limit, 400 when it is missing or not JSON."""
    raw = event.decoded_body or ""
    size = len(raw.encode())
    if size > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body is {size} bytes; at most {MAX_BODY_BYTES} are accepted")
    if not raw.strip():
        raise MalformedRequest("the body must be a JSON object")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise MalformedRequest(f"the body is not valid JSON: {exc}") from exc


def base_path(event: APIGatewayProxyEventV2) -> str:
    stage = event.request_context.stage
    return "" if not stage or stage == "$default" else f"/{stage}"


def task_response(
    event: APIGatewayProxyEventV2, record: TaskRecord, definition: TaskDefinition, *, submitted: bool = False
) -> Response[str]:
    """202 with Retry-After while the task is pending, 200 once it has finished. The answer to a submission is
    always 202 with the task's Location, even when an idempotent replay finds the task finished already."""
    headers: dict[str, str] = {}
    if submitted:
        headers["Location"] = f"{base_path(event)}/{record.task}/{record.task_id}"
    if record.status.is_terminal and not submitted:
        status = 200
    else:
        status = 202
        headers["Retry-After"] = str(retry_after(record, definition))
    return Response(
        status_code=status, content_type="application/json", body=_dumps(record.to_public()), headers=headers
    )


def method_not_allowed(event: APIGatewayProxyEventV2, allowed: list[str]) -> MethodNotAllowed:
    return MethodNotAllowed(f"{event.request_context.http.method} is not allowed here", allowed=allowed)


def caller_identity(event: APIGatewayProxyEventV2) -> str | None:
    """Who is calling, as the API's authorizer established it (IAM principal or JWT subject)."""
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    iam = authorizer.get("iam") or {}
    claims = (authorizer.get("jwt") or {}).get("claims") or {}
    identity = iam.get("userArn") or iam.get("userId") or claims.get("sub")
    return str(identity) if identity else None
