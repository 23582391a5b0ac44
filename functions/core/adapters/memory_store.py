"""Task records in memory, for the domain tests: each transition checks the same rule as core.adapters.dynamodb_store sends to
DynamoDB (core.domain.lifecycle's `permits`), atomically under one lock, and refuses with the record as it stood."""

from __future__ import annotations

import threading
from collections.abc import Callable

import msgspec

from core.domain.lifecycle import TRANSITIONS, Guard, UploadClaim, Write, upload_claimable
from core.domain.listing import ListPosition, OwnedTasks
from core.domain.records import TaskFailure, TaskRecord, TaskStatus
from core.domain.store import TransitionRefused, UploadTaken

Change = Callable[[TaskRecord], TaskRecord | None]


class InMemoryTaskStore:
    def __init__(self) -> None:
        self._records: dict[str, TaskRecord] = {}
        self._claims: dict[str, UploadClaim] = {}
        self._lock = threading.Lock()

    def _apply(self, task_id: str, write: Write, guard: Guard, change: Change) -> TaskRecord | None:
        with self._lock:
            current = self._records.get(task_id)
            if not TRANSITIONS[write].permits(current, guard):
                raise TransitionRefused(current)
            assert current is not None  # every transition but create needs a record, and create uses _create
            changed = change(current)
            if changed is None:
                del self._records[task_id]
            else:
                self._records[task_id] = changed
            return changed

    def _changed(self, task_id: str, write: Write, guard: Guard, change: Change) -> TaskRecord:
        changed = self._apply(task_id, write, guard, change)
        assert changed is not None
        return changed

    def create(self, record: TaskRecord, now: float, *, upload: str | None = None) -> None:
        with self._lock:
            current = self._records.get(record.task_id)
            if not TRANSITIONS[Write.CREATE].permits(current, Guard(now)):
                raise TransitionRefused(current)
            if upload is not None:
                claim = self._claims.get(upload)
                if not upload_claimable(claim, record.task_id, now):
                    assert claim is not None
                    raise UploadTaken(claim.task_id)
                self._claims[upload] = UploadClaim(upload, record.task_id, record.expires_at)
            self._records[record.task_id] = record

    def get(self, task_id: str) -> TaskRecord | None:
        with self._lock:
            return self._records.get(task_id)

    def withdraw(self, task_id: str) -> None:
        self._apply(task_id, Write.WITHDRAW, Guard(0.0), lambda record: None)

    def cancel(self, task_id: str, now: float) -> TaskRecord:
        return self._changed(
            task_id,
            Write.CANCEL,
            Guard(now),
            lambda record: msgspec.structs.replace(
                record, status=TaskStatus.CANCELLED, finished_at=now, lease_until=None
            ),
        )

    def claim(
        self, task_id: str, now: float, lease_seconds: float, *, started_at: float, last_attempt: bool = False
    ) -> TaskRecord:
        return self._changed(
            task_id,
            Write.CLAIM,
            Guard(now),
            lambda record: msgspec.structs.replace(
                record,
                status=TaskStatus.RUNNING,
                started_at=started_at,
                lease_until=now + lease_seconds,
                attempts=record.attempts + 1,
                last_attempt=last_attempt,
            ),
        )

    def report_progress(self, expected: TaskRecord, fraction: float, now: float) -> None:
        self._changed(
            expected.task_id,
            Write.REPORT_PROGRESS,
            Guard(0.0, expected),
            lambda record: msgspec.structs.replace(record, progress=fraction, progress_at=now),
        )

    def mark_last_attempt(self, expected: TaskRecord) -> None:
        self._changed(
            expected.task_id,
            Write.MARK_LAST_ATTEMPT,
            Guard(0.0, expected),
            lambda record: msgspec.structs.replace(record, last_attempt=True),
        )

    def release(self, expected: TaskRecord, *, claimed: bool) -> None:
        def change(record: TaskRecord) -> TaskRecord:
            if claimed:
                return msgspec.structs.replace(record, status=TaskStatus.QUEUED, lease_until=None)
            return msgspec.structs.replace(record, attempts=expected.attempts + 1)

        self._changed(expected.task_id, Write.RELEASE, Guard(0.0, expected), change)

    def finish(
        self,
        expected: TaskRecord,
        now: float,
        *,
        claimed: bool,
        started_at: float,
        result_json: str | None = None,
        error: TaskFailure | None = None,
        result_ref: str | None = None,
        result_bytes: int | None = None,
        steps_done: int | None = None,
    ) -> TaskRecord:
        def change(record: TaskRecord) -> TaskRecord:
            finished = msgspec.structs.replace(
                record,
                status=TaskStatus.SUCCEEDED if error is None else TaskStatus.FAILED,
                finished_at=now,
                started_at=started_at,
                lease_until=None,
                attempts=record.attempts if claimed else expected.attempts + 1,
            )
            if steps_done is not None:
                finished = msgspec.structs.replace(finished, steps_done=steps_done, current_step=None)
            if error is None and result_ref is not None:
                return msgspec.structs.replace(finished, progress=1.0, result_ref=result_ref, result_bytes=result_bytes)
            if error is None:
                return msgspec.structs.replace(finished, progress=1.0, result_json=result_json or "null")
            return msgspec.structs.replace(finished, error=error)

        return self._changed(expected.task_id, Write.FINISH, Guard(now, expected), change)

    def give_up(self, task_id: str, now: float, error: TaskFailure) -> TaskRecord:
        return self._changed(
            task_id,
            Write.GIVE_UP,
            Guard(now),
            lambda record: msgspec.structs.replace(
                record, status=TaskStatus.FAILED, finished_at=now, lease_until=None, error=error
            ),
        )

    def resume(self, task_id: str, now: float, lease_seconds: float, *, execution_arn: str) -> TaskRecord:
        return self._changed(
            task_id,
            Write.RESUME,
            Guard(now),
            lambda record: msgspec.structs.replace(
                record,
                status=TaskStatus.RUNNING,
                execution_arn=execution_arn,
                started_at=record.started_at if record.started_at is not None else now,
                attempts=record.attempts + 1,
                lease_until=now + lease_seconds,
            ),
        )

    def begin_step(
        self, expected: TaskRecord, now: float, lease_seconds: float, *, name: str, steps_done: int, step_attempts: int
    ) -> TaskRecord:
        return self._changed(
            expected.task_id,
            Write.BEGIN_STEP,
            Guard(now, expected),
            lambda record: msgspec.structs.replace(
                record,
                current_step=name,
                steps_done=steps_done,
                step_attempts=step_attempts,
                lease_until=now + lease_seconds,
            ),
        )

    def list_owned(
        self, owner: str, *, task: str | None, after: ListPosition | None, limit: int, now: float
    ) -> OwnedTasks:
        with self._lock:
            records = list(self._records.values())
        # The owner index's order: by creation time, then (for records created at the same instant) by id.
        newest_first = sorted(records, key=lambda record: (record.created_at, record.task_id), reverse=True)
        start = (after.created_at, after.task_id) if after is not None else None
        matching = [
            record
            for record in newest_first
            if record.owner == owner
            and (task is None or record.task == task)
            and not record.is_expired(now)
            and (start is None or (record.created_at, record.task_id) < start)
        ]
        page = tuple(matching[:limit])
        more = len(matching) > limit
        return OwnedTasks(page, ListPosition.of(page[-1]) if more and page else None)
