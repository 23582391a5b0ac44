"""The task record's public view: what GET shows in each state."""

from __future__ import annotations

from msgspec.structs import replace

from core.domain.records import TaskFailure, TaskStatus
from tests.support.records import queued_multiply

QUEUED = queued_multiply(1_795_831_200.25, retention_seconds=7 * 86_400, owner="arn:aws:iam::123456789012:role/analyst")


def test_to_public_pending_task_shows_progress_and_no_result() -> None:
    body = QUEUED.to_public()

    assert body == {
        "task_id": QUEUED.task_id,
        "task": "multiply",
        "status": "queued",
        "progress": 0.0,
        "created_at": "2026-11-28T02:00:00.250Z",
        "started_at": None,
    }


def test_to_public_succeeded_task_shows_result_as_the_original_did() -> None:
    done = replace(
        QUEUED,
        status=TaskStatus.SUCCEEDED,
        result_json="6",
        started_at=1_795_831_201.0,
        finished_at=1_795_831_211.0,
        attempts=1,
    )

    body = done.to_public()

    assert body["result"] == 6
    assert body["status"] == "succeeded"
    assert body["finished_at"] == "2026-11-28T02:00:11.000Z"
    assert "progress" not in body
    assert "error" not in body


def test_to_public_failed_task_shows_error_type_and_message() -> None:
    failed = replace(QUEUED, status=TaskStatus.FAILED, error=TaskFailure("ValueError", "bad"), finished_at=1.0)

    assert failed.to_public()["error"] == {"type": "ValueError", "message": "bad"}
    assert "result" not in failed.to_public()


def test_to_public_failed_input_shows_the_same_per_field_errors_as_a_422() -> None:
    errors = ({"field": "X.3", "message": "row 3 has 2 values; row 0 has 3", "type": "invalid"},)
    failed = replace(
        QUEUED, status=TaskStatus.FAILED, error=TaskFailure("InvalidInput", "invalid input", errors), finished_at=1.0
    )

    assert failed.to_public()["error"] == {"type": "InvalidInput", "message": "invalid input", "errors": list(errors)}


def test_to_public_never_shows_the_owner() -> None:
    assert "owner" not in QUEUED.to_public()
    assert QUEUED.owner not in str(QUEUED.to_public())


def test_is_expired_from_its_expiry_time_on() -> None:
    assert not QUEUED.is_expired(QUEUED.expires_at - 1)
    assert QUEUED.is_expired(QUEUED.expires_at)
