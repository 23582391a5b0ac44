"""What can go wrong when calling the task API, as exceptions a caller can catch one by one."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

# Statuses after which the same GET may succeed: throttled, or the service briefly unavailable.
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class LrtError(Exception):
    """Base of every error this package raises."""


class ConnectionFailed(LrtError):
    """The API could not be reached (refused, unresolvable, timed out): nothing was answered."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        host = urlsplit(url).hostname or ""
        if host in LOCAL_HOSTS:
            hint = "is the local stack running? Start it with `make run`"
        else:
            hint = "check the URL (--url or LRT_URL) and your network"
        super().__init__(f"cannot reach {url}: {reason}; {hint}")


class ApiError(LrtError):
    """The API answered with an error: an RFC 9457 problem (or API Gateway's own `{"message": ...}`)."""

    def __init__(
        self, status: int, title: str, detail: str, problem: dict[str, Any], *, retry_after: float | None = None
    ) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        self.problem = problem
        self.retry_after = retry_after
        super().__init__(f"{status} {title}: {detail}" if detail else f"{status} {title}")

    @property
    def retryable(self) -> bool:
        return self.status in RETRYABLE_STATUSES


class InvalidInput(ApiError):
    """422: the inputs do not fit the task's input model; `errors` says which field and why."""

    @property
    def errors(self) -> list[dict[str, Any]]:
        errors = self.problem.get("errors")
        return [error for error in errors if isinstance(error, dict)] if isinstance(errors, list) else []


class NotFound(ApiError):
    """404: no such task name, or no task with that id (never created, or expired)."""

    @property
    def known_tasks(self) -> list[str] | None:
        known = self.problem.get("known_tasks")
        return [str(name) for name in known] if isinstance(known, list) else None


class Conflict(ApiError):
    """409: an Idempotency-Key reused with another body, or cancelling a task that has finished."""


class TaskFailed(LrtError):
    """The task ran and failed; `error_type` and `message` are what the task raised."""

    def __init__(self, task: str, task_id: str, error_type: str, message: str) -> None:
        self.task = task
        self.task_id = task_id
        self.error_type = error_type
        self.message = message
        super().__init__(f"{task} task {task_id} failed: {error_type}: {message}")


class TaskCancelled(LrtError):
    """The task was cancelled before it finished."""

    def __init__(self, task: str, task_id: str) -> None:
        self.task = task
        self.task_id = task_id
        super().__init__(f"{task} task {task_id} was cancelled")


class WaitTimeout(LrtError):
    """The task was still pending when wait() gave up; it keeps running on the server."""

    def __init__(self, task: str, task_id: str, timeout: float, last_status: str | None) -> None:
        self.task = task
        self.task_id = task_id
        self.timeout = timeout
        self.last_status = last_status
        state = f" (still {last_status})" if last_status else ""
        super().__init__(f"{task} task {task_id} did not finish within {timeout:g} s{state}")


ERRORS_BY_STATUS: dict[int, type[ApiError]] = {404: NotFound, 409: Conflict, 422: InvalidInput}


class AuthNotConfigured(LrtError):
    """Signing or a token was asked for, but credentials, a region or a token could not be found."""
