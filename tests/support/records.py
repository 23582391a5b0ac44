"""The task record the unit tests start from: a queued multiply as submit records it. Each test changes what it is
about (times, owner, expected_seconds) with keyword arguments."""

from __future__ import annotations

from typing import Any

from core.domain.records import TaskRecord, TaskStatus

TASK_ID = "3f2b8a51-6c1e-4d7a-9b0f-2e5c8d4a1f60"


def queued_multiply(created_at: float, *, retention_seconds: int = 86_400, **changes: Any) -> TaskRecord:
    fields: dict[str, Any] = {
        "task_id": TASK_ID,
        "task": "multiply",
        "status": TaskStatus.QUEUED,
        "input_json": '{"x":2,"y":3}',
        "created_at": created_at,
        "expires_at": int(created_at) + retention_seconds,
        "owner": "public",
    }
    return TaskRecord(**(fields | changes))
