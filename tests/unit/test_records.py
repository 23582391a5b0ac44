"""The task record's public view: what GET shows in each state."""

from __future__ import annotations

from msgspec.structs import replace

from core.records import TaskFailure, TaskRecord, TaskStatus

QUEUED = TaskRecord(
    task_id="3f2b8a51-6c1e-4d7a-9b0f-2e5c8d4a1f60",
    task="multiply",
    status=TaskStatus.QUEUED,
    input_json='{"x":2,"y":3}',
    created_at=1_795_831_200.25,
    expires_at=1_795_831_200 + 7 * 86_400,
)


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


def test_is_expired_from_its_expiry_time_on() -> None:
    assert not QUEUED.is_expired(QUEUED.expires_at - 1)
    assert QUEUED.is_expired(QUEUED.expires_at)


RUNNING_LAST = replace(
    QUEUED,
    status=TaskStatus.RUNNING,
    attempts=3,
    started_at=1_795_831_201.0,
    lease_until=1_795_832_000.0,
    last_attempt=True,
)


def test_last_attempt_whose_lease_ran_out_is_seen_failed() -> None:
    seen = RUNNING_LAST.as_seen(1_795_832_000.5)

    assert seen.status is TaskStatus.FAILED
    assert seen.finished_at == RUNNING_LAST.lease_until
    assert seen.error is not None
    assert seen.error.type == "GaveUp"
    assert "timed out or ran out of memory" in seen.error.message
    assert seen.to_public()["finished_at"] == "2026-11-28T02:13:20.000Z"


def test_a_live_lease_or_a_later_delivery_keeps_the_task_running() -> None:
    assert RUNNING_LAST.as_seen(1_795_832_000.0) is RUNNING_LAST  # the lease runs to its last instant
    not_last = replace(RUNNING_LAST, last_attempt=False)
    assert not_last.as_seen(1_795_900_000.0) is not_last  # its next delivery takes it over
    done = replace(RUNNING_LAST, status=TaskStatus.SUCCEEDED, result_json="6")
    assert done.as_seen(1_795_900_000.0) is done
