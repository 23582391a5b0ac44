"""Domain errors. The API maps them to HTTP statuses in one place (core.http); the worker to retry or fail."""

from __future__ import annotations

from typing import Any


class TaskError(Exception):
    """Base of the errors a caller of the task API can cause or see."""

    status = 500
    title = "Internal error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class MalformedRequest(TaskError):
    status = 400
    title = "Malformed request"


class TaskNotFound(TaskError):
    status = 404
    title = "Not found"


class MethodNotAllowed(TaskError):
    status = 405
    title = "Method not allowed"

    def __init__(self, detail: str, allowed: list[str]) -> None:
        super().__init__(detail)
        self.allowed = allowed


class Conflict(TaskError):
    status = 409
    title = "Conflict"


class PayloadTooLarge(TaskError):
    status = 413
    title = "Payload too large"


class UnsupportedMediaType(TaskError):
    status = 415
    title = "Unsupported media type"


class InvalidInput(TaskError):
    status = 422
    title = "Invalid input"

    def __str__(self) -> str:
        # The message of a task that the worker fails for its input: each field's problem, as the 422 lists them.
        problems = "; ".join(f"{error['field']}: {error['message']}" for error in self.extra.get("errors", []))
        return f"{self.detail}: {problems}" if problems else self.detail


class QueueUnavailable(TaskError):
    status = 503
    title = "Service unavailable"


# Seconds a client should wait before trying a request that met a 503 again (its Retry-After).
RETRY_UNAVAILABLE_AFTER_SECONDS = 1


class RetryableTaskError(Exception):
    """Raise from a task when trying again later may succeed (a busy dependency, a timeout)."""


class TaskCancelled(Exception):
    """The task was cancelled while it ran; raised from progress reports so that it stops early."""


class TaskLost(Exception):
    """This worker no longer owns the task (its lease ran out and another worker claimed it)."""
