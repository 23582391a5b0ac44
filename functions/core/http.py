"""API Gateway HTTP API (payload 2.0) responses without an event-handler framework, for the result function:
it serves two methods on one path, and Powertools' resolver would double its cold start (see bench/)."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from core.records import TaskRecord

if TYPE_CHECKING:
    from core.registry import TaskDefinition

PROBLEM_JSON = "application/problem+json"
# Powertools' route parameter characters (event_handler.api_gateway), so both functions match paths alike.
_SEGMENT = r"[-._~()'!*:@,;=+&$%<> \[\]{}|^\w]+"
TASK_PATH = re.compile(rf"^/(?P<task>{_SEGMENT})/(?P<task_id>{_SEGMENT})$")


def dumps(body: Any) -> str:
    return json.dumps(body, separators=(",", ":"), allow_nan=False)


def response(status: int, body: str, content_type: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """What Powertools' APIGatewayHttpResolver returns for a Response."""
    return {
        "statusCode": status,
        "body": body,
        "isBase64Encoded": False,
        "headers": {"Content-Type": content_type, **(headers or {})},
        "cookies": [],
    }


def problem(status: int, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    """RFC 9457 problem details."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    headers = {"Allow": ", ".join(extra["allow"])} if "allow" in extra else {}
    return response(status, dumps(body), PROBLEM_JSON, headers)


def retry_after(record: TaskRecord, definition: TaskDefinition | None = None) -> int:
    """Seconds to wait before polling: stored with the task since submit; older records ask the registry."""
    if record.retry_after_seconds is not None:
        return record.retry_after_seconds
    if definition is None:
        from core.registry import get_task

        definition = get_task(record.task)
    return definition.retry_after_seconds


def task_headers(record: TaskRecord, definition: TaskDefinition | None = None) -> dict[str, str]:
    """Retry-After while the task is pending."""
    return {} if record.status.is_terminal else {"Retry-After": str(retry_after(record, definition))}


def task_status_code(record: TaskRecord) -> int:
    """202 while the task is pending, 200 once it has finished."""
    return 200 if record.status.is_terminal else 202


def event_path(event: dict[str, Any]) -> str:
    """The request path without the stage, as Powertools' APIGatewayProxyEventV2.path has it."""
    raw_path: str = event.get("rawPath") or ""
    stage = (event.get("requestContext") or {}).get("stage")
    return raw_path if stage == "$default" else raw_path[len(f"/{stage}") :]
