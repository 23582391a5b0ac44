"""Client for the long-running tasks API: submit a task, poll it, collect its result. CLI: `lrt --help`."""

from lrt.auth import BearerAuth, SigV4Auth
from lrt.client import DEFAULT_URL, PollPolicy, TaskClient, TaskFailure, TaskPage, TaskSnapshot, default_url
from lrt.errors import (
    ApiError,
    AuthNotConfigured,
    Conflict,
    ConnectionFailed,
    InvalidInput,
    LrtError,
    NotFound,
    TaskCancelled,
    TaskFailed,
    WaitTimeout,
)

__all__ = [
    "DEFAULT_URL",
    "ApiError",
    "AuthNotConfigured",
    "BearerAuth",
    "Conflict",
    "ConnectionFailed",
    "InvalidInput",
    "LrtError",
    "NotFound",
    "PollPolicy",
    "SigV4Auth",
    "TaskCancelled",
    "TaskClient",
    "TaskFailed",
    "TaskFailure",
    "TaskPage",
    "TaskSnapshot",
    "WaitTimeout",
    "default_url",
]
