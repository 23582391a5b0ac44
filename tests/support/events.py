"""Lambda's inputs as tests build them: a fake context, the sample events in events/, HTTP API events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from devstack.lambdas import LambdaContext

EVENTS = Path(__file__).resolve().parents[2] / "events"


def lambda_context(timeout_seconds: int = 60) -> LambdaContext:
    """A context as Lambda passes one (devstack's, as the local stack passes it), with a minute to run."""
    return LambdaContext(function_name="test-function", memory_limit_in_mb=256, timeout_seconds=timeout_seconds)


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return event


# The template's routes, by the path parameters they take (a third segment names a route of its own); literal
# paths are routes of their own.
ROUTES = {1: "/{task}", 2: "/{task}/{task_id}"}
SUB_ROUTES = frozenset({"result", "input"})
STATIC_ROUTES = frozenset(
    {"/openapi.json", "/uploads", "/tasks", "/dashboard", "/dashboard/app.js", "/dashboard/app.css"}
)


def http_event(
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    *,
    authorizer: dict[str, Any] | None = None,
    query: list[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """The API Gateway event for a request, built from the sample events in events/: the route API Gateway matched
    (routeKey, pathParameters) as it names them; `authorizer` as its authorizer would pass it (none: AuthType NONE);
    `query` as its parameters (a repeated one joined with commas, as payload 2.0 gives them)."""
    parts = path.strip("/").split("/")
    event = load_event("submit_multiply" if len(parts) == 1 else "result_get")
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    if path in STATIC_ROUTES:
        route = path
    elif len(parts) == 3 and parts[2] in SUB_ROUTES:
        route = f"{ROUTES[2]}/{parts[2]}"
    else:
        route = ROUTES[len(parts)]
    event["routeKey"] = event["requestContext"]["routeKey"] = f"{method} {route}"
    event["pathParameters"] = {} if path in STATIC_ROUTES else dict(zip(["task", "task_id"], parts, strict=False))
    if query:
        joined: dict[str, list[str]] = {}
        for name, value in query:
            joined.setdefault(name, []).append(value)
        event["queryStringParameters"] = {name: ",".join(values) for name, values in joined.items()}
        event["rawQueryString"] = urlencode(query)
    if authorizer is None:
        event["requestContext"].pop("authorizer", None)
    else:
        event["requestContext"]["authorizer"] = authorizer
    event["headers"] = {**event["headers"], **(headers or {})}
    event["isBase64Encoded"] = False
    if body is None:
        event.pop("body", None)
    else:
        event["body"] = body if isinstance(body, str) else json.dumps(body)
    return event
