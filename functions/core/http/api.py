"""The HTTP side of the API's functions: API Gateway HTTP API events (payload 2.0) in, responses out, and the one
place where domain errors become HTTP statuses (RFC 9457 problem details).

A small router rather than Powertools' event handler: each function serves a few routes, and the resolver's import
alone would cost more than the rest of the function's cold start (docs/design.md). It routes on the event's
`routeKey` and `pathParameters`, as API Gateway matched them, never on the raw path: behind a custom domain with a
base-path mapping the raw path carries the mapping's prefix.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from core.adapters.aws_errors import is_aws_unavailable
from core.domain import json_text, polling
from core.domain.identity import owner_of
from core.domain.records import TaskRecord
from core.errors import (
    RETRY_UNAVAILABLE_AFTER_SECONDS,
    ApiError,
    MalformedRequest,
    MethodNotAllowed,
    PayloadTooLarge,
    ServiceUnavailable,
    TaskNotFound,
    UnsupportedMediaType,
)
from core.settings import iam_owner

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
# What a request may carry inline: a Lambda invocation takes 6 MB of event (API Gateway 10 MB of body), and the body
# travels inside the event's JSON, escaped. A larger input goes by upload (POST /uploads), never through Lambda.
MAX_BODY_BYTES = 4 * 1024 * 1024
# Route paths, as template.yaml declares them and API Gateway names them in the event's routeKey.
TASK_ROUTE = "/{task}"
TASK_ID_ROUTE = "/{task}/{task_id}"
RESULT_ROUTE = "/{task}/{task_id}/result"
UPLOADS_ROUTE = "/uploads"
ALL_TASKS_ROUTE = "/tasks"
TASK_INPUT_ROUTE = "/{task}/{task_id}/input"


# What a request body must be sent as: application/json, or a JSON-based type (RFC 6839's +json suffix), with any
# parameters (charset). Anything else is a 415: a browser sends a cross-site form's body (text/plain, urlencoded,
# multipart) without asking first (a CORS preflight), and without this check such a form could submit tasks with a
# signed-in user's cookies or to an API whose AuthType is NONE.
_JSON_MEDIA_TYPE = re.compile(r"application/(?:[a-z0-9!#$&^_.+-]+\+)?json")


def is_json_media_type(content_type: str | None) -> bool:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return _JSON_MEDIA_TYPE.fullmatch(media_type) is not None


def dumps(body: Any) -> str:
    return json.dumps(body, separators=(",", ":"), allow_nan=False)


def response(status: int, body: str, content_type: str, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {
        "statusCode": status,
        "body": body,
        "isBase64Encoded": False,
        # A browser never takes an answer for anything but its declared type (say, JSON holding markup for HTML).
        "headers": {"Content-Type": content_type, "X-Content-Type-Options": "nosniff", **(headers or {})},
    }


def problem(status: int, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    """RFC 9457 problem details."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    headers = {"Allow": ", ".join(extra["allow"])} if "allow" in extra else {}
    if status == 503:
        headers["Retry-After"] = str(RETRY_UNAVAILABLE_AFTER_SECONDS)
    return response(status, dumps(body), PROBLEM_JSON, headers)


class Request(msgspec.Struct, frozen=True):
    event: Mapping[str, Any]

    @property
    def method(self) -> str:
        return str(self.event["requestContext"]["http"]["method"]).upper()

    @property
    def raw_path(self) -> str:
        return str(self.event.get("rawPath") or "/")

    @property
    def route(self) -> str:
        """The route's path as the template declares it ("/{task}"), from the routeKey ("POST /{task}")."""
        _, _, path = str(self.event.get("routeKey") or "").partition(" ")
        return path

    @property
    def path_parameters(self) -> dict[str, str]:
        """{task}, {task_id}: URL-decoded by API Gateway."""
        return {str(key): str(value) for key, value in (self.event.get("pathParameters") or {}).items()}

    @property
    def stage_prefix(self) -> str:
        stage = self.event["requestContext"].get("stage")
        return "" if not stage or stage == "$default" else f"/{stage}"

    @property
    def request_id(self) -> str | None:
        request_id = self.event["requestContext"].get("requestId")
        return str(request_id) if request_id else None

    @property
    def query(self) -> dict[str, str]:
        """The query string's parameters, URL-decoded by API Gateway; a repeated one arrives joined with commas."""
        return {str(key): str(value) for key, value in (self.event.get("queryStringParameters") or {}).items()}

    def header(self, name: str) -> str | None:
        """Case-insensitive, as HTTP headers are (HTTP APIs lowercase them; other callers may not)."""
        wanted = name.lower()
        for key, value in (self.event.get("headers") or {}).items():
            if key.lower() == wanted:
                return str(value)
        return None

    @property
    def has_body(self) -> bool:
        """Whether the request carries a body at all: one of blanks is a body, and not JSON."""
        return bool(self.event.get("body"))

    def json_body(self, *, optional: bool = False) -> Any:
        """The JSON body: 415 when it is not sent as JSON, 413 over the size limit, 400 when it is missing (None if
        `optional`) or not JSON. A request without a body needs no Content-Type."""
        raw = self.event.get("body") or ""
        content_type = self.header("Content-Type")
        if raw and not is_json_media_type(content_type):
            sent = f"Content-Type {content_type[:100]!r}" if content_type else "no Content-Type"
            raise UnsupportedMediaType(f"send the body as Content-Type: application/json, not with {sent}")
        if self.event.get("isBase64Encoded"):
            try:
                raw = base64.b64decode(raw, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise MalformedRequest("the body is not UTF-8 text") from exc
        size = len(raw.encode())
        if size > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"the body is {size} bytes; at most {MAX_BODY_BYTES} are accepted")
        if not raw.strip():
            if optional:
                return None
            raise MalformedRequest("the body must be a JSON object")
        try:
            return json_text.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise MalformedRequest(f"the body is not valid JSON: {exc}") from exc

    @property
    def owner(self) -> str:
        """Who is calling, as the API's authorizer established it (core.domain.identity), an assumed role's sessions
        as the stack's IamOwner parameter says."""
        return owner_of(self.event["requestContext"].get("authorizer"), iam_owner())


Handler = Callable[..., dict[str, Any]]


class Router:
    """Dispatches a request to the handler of its route and method, with the route's path parameters as keyword
    arguments; maps every error to a problem response."""

    def __init__(self, routes: Mapping[str, Mapping[str, Handler]]) -> None:
        self._routes = routes

    def __call__(self, event: Mapping[str, Any]) -> dict[str, Any]:
        request = Request(event)
        try:
            return self._dispatch(request)
        except ServiceUnavailable as error:
            return self._unavailable(request, error)
        except ApiError as error:
            extra = dict(error.extra)
            if isinstance(error, MethodNotAllowed):
                extra["allow"] = error.allowed
            logger.info("request refused", extra={"status": error.status, "detail": error.detail})
            return problem(error.status, error.title, error.detail, instance=request.raw_path, **extra)
        except Exception as error:
            if is_aws_unavailable(error):
                return self._unavailable(request, error)
            # Opaque to the client: the request id finds the traceback in the function's logs.
            logger.exception("unexpected error", extra={"request_id": request.request_id})
            return problem(500, "Internal error", "the request could not be completed", request_id=request.request_id)

    @staticmethod
    def _unavailable(request: Request, error: Exception) -> dict[str, Any]:
        """AWS throttled a call, failed on its side or could not be reached, after botocore's own retries: a later
        attempt may succeed (an idempotent one never makes a second task)."""
        cause = error.__cause__ or error
        logger.warning("AWS unavailable", extra={"request_id": request.request_id, "error": str(cause)})
        detail = (
            str(error) if isinstance(error, ServiceUnavailable) else "the service is busy or unavailable; try again"
        )
        return problem(503, "Service unavailable", detail, request_id=request.request_id)

    def _dispatch(self, request: Request) -> dict[str, Any]:
        methods = self._routes.get(request.route)
        if methods is None:
            raise TaskNotFound(f"no route for {request.raw_path}")
        handler = methods.get(request.method)
        if handler is None and request.method == "OPTIONS":
            # What the route allows (a browser's CORS preflight reaches here unauthenticated: it learns nothing else).
            return {
                "statusCode": 204,
                "body": "",
                "isBase64Encoded": False,
                "headers": {"Allow": ", ".join(_allow(methods))},
            }
        if handler is None:
            raise MethodNotAllowed(f"{request.method} is not allowed here", allowed=_allow(methods))
        return handler(request, **request.path_parameters)


def _allow(methods: Mapping[str, Handler]) -> list[str]:
    return [*methods, "OPTIONS"]


def task_response(
    request: Request,
    record: TaskRecord,
    *,
    submitted: bool = False,
    result_url: str | None = None,
    now: float | None = None,
    recent: polling.RecentRuns | None = None,
) -> dict[str, Any]:
    """202 with Retry-After while the task is pending, 200 once it has finished. The answer to a submission is
    always 202 with the task's Location, even when an idempotent replay finds the task finished already.
    `result_url`: where a result kept in the payload bucket can be downloaded (shown instead of `result`).

    A pending task's body carries `retry_after` too, in seconds to a tenth (core.domain.polling): the header is whole
    seconds, as HTTP has it, rounded up, which would make a client that trusts it see the outcome up to a second
    late. `recent`: the tasks this environment has seen end lately, whose queue waits and runs the hint learns from."""
    headers: dict[str, str] = {}
    body = record.to_public(result_url)
    if submitted:
        headers["Location"] = f"{request.stage_prefix}/{record.task}/{record.task_id}"
    if record.status.is_terminal and not submitted:
        status = 200
    else:
        status = 202
        if not record.status.is_terminal:
            body["retry_after"] = polling.retry_after(record, time.time() if now is None else now, recent)
            headers["Retry-After"] = polling.header_value(body["retry_after"])
        else:
            headers["Retry-After"] = polling.header_value(polling.MIN_SECONDS)
    return response(status, dumps(body), "application/json", headers)


def see_other(location: str) -> dict[str, Any]:
    """303 See Other: the answer is at `location` (a presigned download link), to GET without this API's auth."""
    return {"statusCode": 303, "body": "", "isBase64Encoded": False, "headers": {"Location": location}}
