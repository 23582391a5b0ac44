"""Domain errors. `ApiError`s map to HTTP statuses in one place (core.http.api); the worker retries or fails a task on the
others. Free of botocore: task modules import it, and the AWS adapters translate their SDK's failures into these."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """Base of the errors a caller of the task API can cause or see, each with its HTTP status."""

    status = 500
    title = "Internal error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class MalformedRequest(ApiError):
    status = 400
    title = "Malformed request"


class UnknownCaller(ApiError):
    """The authorizer let the request through, but its context names nobody a task could belong to (a valid JWT
    without a `sub` claim, or with an empty one)."""

    status = 403
    title = "Caller not identified"


class TaskNotFound(ApiError):
    status = 404
    title = "Not found"


class MethodNotAllowed(ApiError):
    status = 405
    title = "Method not allowed"

    def __init__(self, detail: str, allowed: list[str]) -> None:
        super().__init__(detail)
        self.allowed = allowed


class Conflict(ApiError):
    status = 409
    title = "Conflict"


class PayloadTooLarge(ApiError):
    status = 413
    title = "Payload too large"


# A 422 (and the record of a task failed for its input) lists at most this many per-field errors, and counts the rest
# in `errors_omitted`: an input with thousands of unknown fields must not make an answer, a record or an event of
# hundreds of kilobytes (DynamoDB keeps 400 KB an item, EventBridge takes 256 KB an event).
MAX_FIELD_ERRORS = 50
# Each error's field path and message are cut to this many characters: a field's name is the caller's own text.
MAX_ERROR_TEXT = 200


class UnsupportedMediaType(ApiError):
    status = 415
    title = "Unsupported media type"


class InvalidInput(ApiError):
    """`errors`: the per-field problems ({"field", "message", "type"}), kept to MAX_FIELD_ERRORS; `errors_omitted`,
    when some were left out, how many."""

    status = 422
    title = "Invalid input"

    def __init__(self, detail: str, **extra: Any) -> None:
        if "errors" in extra:
            errors = list(extra["errors"])
            omitted = max(len(errors) - MAX_FIELD_ERRORS, 0) + int(extra.pop("errors_omitted", 0))
            extra["errors"] = [_bounded(error) for error in errors[:MAX_FIELD_ERRORS]]
            if omitted:
                extra["errors_omitted"] = omitted
        super().__init__(detail, **extra)

    def __str__(self) -> str:
        # The message of a task that the worker fails for its input: each field's problem, as the 422 lists them.
        problems = "; ".join(f"{error['field']}: {error['message']}" for error in self.extra.get("errors", []))
        if omitted := self.extra.get("errors_omitted"):
            problems += f"; and {omitted} more"
        return f"{self.detail}: {problems}" if problems else self.detail


def _bounded(error: dict[str, Any]) -> dict[str, Any]:
    return {
        key: value[: MAX_ERROR_TEXT - 1] + "…" if isinstance(value, str) and len(value) > MAX_ERROR_TEXT else value
        for key, value in error.items()
    }


class ServiceUnavailable(ApiError):
    """AWS throttled a call, failed on its side or could not be reached: trying again later may succeed."""

    status = 503
    title = "Service unavailable"


class QueueUnavailable(ServiceUnavailable):
    """The task queue did not take a message."""


class StoreUnavailable(ServiceUnavailable):
    """The task table did not answer (throttled, failing on AWS's side, out of reach)."""


# Seconds a client should wait before trying a request that met a 503 again (its Retry-After).
RETRY_UNAVAILABLE_AFTER_SECONDS = 1


class RetryableTaskError(Exception):
    """Raise from a task when trying again later may succeed (a busy dependency, a timeout)."""


class RunCancelled(Exception):
    """The task was cancelled while this run went on; raised from its progress reports so that it stops early."""


class RunTakenOver(Exception):
    """This run no longer holds the task: another delivery claimed it (its lease ran out), or put it back."""
