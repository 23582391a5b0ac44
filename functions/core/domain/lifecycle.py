"""The task lifecycle in one place: every write that changes a task record, the states it moves between, who makes
it, and the condition under which it applies.

Each write is one conditional write, so races resolve in the table: of two writers only the one whose condition
still holds succeeds, and the other gets the record as it stood (TransitionRefused). `condition` is the DynamoDB
ConditionExpression that core.adapters.dynamodb_store sends; `permits` is the same rule in Python, which core.adapters.memory_store
applies; a test runs both stores through the same sequences and checks that they agree. docs/design.md draws this
table as a state diagram.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

import msgspec

from core.domain.records import TaskFailure, TaskRecord, TaskStatus

QUEUED, RUNNING = TaskStatus.QUEUED, TaskStatus.RUNNING
SUCCEEDED, FAILED, CANCELLED = TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED


class Write(StrEnum):
    CREATE = "create"
    WITHDRAW = "withdraw"
    CLAIM = "claim"
    REPORT_PROGRESS = "report_progress"
    MARK_LAST_ATTEMPT = "mark_last_attempt"
    RELEASE = "release"
    FINISH = "finish"
    CANCEL = "cancel"
    GIVE_UP = "give_up"
    RESUME = "resume"
    BEGIN_STEP = "begin_step"


class Guard(msgspec.Struct, frozen=True):
    """What a write's condition compares the stored record with."""

    now: float
    # The record as this writer last wrote or read it (the writes of a run that must find it unchanged).
    expected: TaskRecord | None = None


Rule = Callable[[TaskRecord | None, Guard], bool]


def _absent_or_expired(current: TaskRecord | None, guard: Guard) -> bool:
    return current is None or current.expires_at <= guard.now


def _live(current: TaskRecord | None, guard: Guard) -> bool:
    return current is not None and current.expires_at > guard.now


def _queued(current: TaskRecord | None, guard: Guard) -> bool:
    return current is not None and current.status is QUEUED


def _claimable(current: TaskRecord | None, guard: Guard) -> bool:
    """Queued, or running under a lease that has lapsed (its worker stopped without a word)."""
    if current is None or not _live(current, guard):
        return False
    lapsed = current.lease_until is not None and current.lease_until < guard.now
    return current.status is QUEUED or (current.status is RUNNING and lapsed)


def _unchanged(current: TaskRecord | None, guard: Guard) -> bool:
    """As this run last saw it: no other attempt claimed it since, nobody cancelled or finished it."""
    expected = guard.expected
    if current is None or expected is None:
        return False
    return current.status is expected.status and current.attempts == expected.attempts


def _cancellable(current: TaskRecord | None, guard: Guard) -> bool:
    return current is not None and _live(current, guard) and current.status in (QUEUED, RUNNING)


def _pending(current: TaskRecord | None, guard: Guard) -> bool:
    """Live and not ended: a durable task's runner may (go on) run it."""
    return _cancellable(current, guard)


_LIVE = "attribute_exists(task_id) AND expires_at > :now"
_UNCHANGED = "#status = :expected_status AND attempts = :expected_attempts"
_CLAIMABLE = f"{_LIVE} AND (#status = :queued OR (#status = :running AND lease_until < :now))"


class UploadClaim(msgspec.Struct, frozen=True):
    """Which task an upload serves: written with the record of the task it is the input of (the create transition),
    in one transaction, and kept as long as that record."""

    upload: str
    task_id: str
    expires_at: int


# The claim's item is keyed by the upload's key (core.adapters.dynamodb_store): free, claimed by this very task (an
# idempotent replay), or claimed by a task whose record has expired.
UPLOAD_CLAIM_CONDITION = "attribute_not_exists(task_id) OR claimed_by = :task_id OR expires_at <= :now"


def upload_claimable(current: UploadClaim | None, task_id: str, now: float) -> bool:
    return current is None or current.task_id == task_id or current.expires_at <= now


class Transition(msgspec.Struct, frozen=True):
    write: Write
    # None: no record (before it is created, after it is withdrawn).
    sources: tuple[TaskStatus | None, ...]
    targets: tuple[TaskStatus | None, ...]
    by: str
    # DynamoDB ConditionExpression; #status stands for the status attribute.
    condition: str
    permits: Rule
    why: str


TRANSITIONS: dict[Write, Transition] = {
    transition.write: transition
    for transition in (
        Transition(
            Write.CREATE,
            (None,),
            (QUEUED,),
            "submit (POST /<task>)",
            "attribute_not_exists(task_id) OR expires_at <= :now",
            _absent_or_expired,
            "a new task; an expired record DynamoDB has not deleted yet does not hold its id, and an idempotent replay "
            "is refused with the record it would replace. A task whose input is an upload claims the upload in the "
            f"same transaction (`{UPLOAD_CLAIM_CONDITION}`): an upload serves one task",
        ),
        Transition(
            Write.WITHDRAW,
            (QUEUED,),
            (None,),
            "submit",
            "#status = :queued",
            _queued,
            "its message could not be sent: nothing would ever run it, and the caller is told to try again",
        ),
        Transition(
            Write.CLAIM,
            (QUEUED, RUNNING),
            (RUNNING,),
            "worker",
            _CLAIMABLE,
            _claimable,
            "a run that outlasts a second, reports progress, is exclusive or is the last delivery SQS allows takes a "
            "lease of its invocation's remaining time; a running task whose lease has lapsed (its worker stopped) is "
            "taken over; one more attempt is counted",
        ),
        Transition(
            Write.REPORT_PROGRESS,
            (RUNNING,),
            (RUNNING,),
            "worker holding the claim, durable runner",
            _UNCHANGED,
            _unchanged,
            "progress, at most once a second; refused when the task was cancelled or taken over, which stops the run",
        ),
        Transition(
            Write.MARK_LAST_ATTEMPT,
            (RUNNING,),
            (RUNNING,),
            "worker with the last delivery",
            _UNCHANGED,
            _unchanged,
            "the last delivery found another worker's live claim: should that worker stop too, its claim reads as "
            "the last attempt (failed once its lease lapses)",
        ),
        Transition(
            Write.RELEASE,
            (QUEUED, RUNNING),
            (QUEUED,),
            "worker",
            _UNCHANGED,
            _unchanged,
            "a transient failure (throttling, a timeout, RetryableTaskError): the attempt is counted and the task waits "
            "for SQS to deliver its message again",
        ),
        Transition(
            Write.FINISH,
            (QUEUED, RUNNING),
            (SUCCEEDED, FAILED),
            "worker, durable runner",
            _UNCHANGED,
            _unchanged,
            "the outcome of the run that read (or claimed) the record as it stands: never over a cancel or a newer "
            "attempt; an unclaimed quick run counts its attempt in the same write",
        ),
        Transition(
            Write.CANCEL,
            (QUEUED, RUNNING),
            (CANCELLED,),
            "result (DELETE by the task's owner)",
            f"{_LIVE} AND #status IN (:queued, :running)",
            _cancellable,
            "a running task stops at its next progress report; its outcome is then refused",
        ),
        Transition(
            Write.GIVE_UP,
            (QUEUED, RUNNING),
            (FAILED,),
            "dead-letter consumer",
            _CLAIMABLE,
            _claimable,
            "the task's message reached the dead-letter queue without a finished attempt (throttled or deferred on "
            "every delivery, or its last attempt's worker stopped: the failure view() shows is then written, so that "
            "the task's end is a write and its completion event follows), or a durable task's execution ended "
            "(failed, timed out, stopped) without finishing it; not while a live claim holds the task: that run "
            "records its own outcome",
        ),
        Transition(
            Write.RESUME,
            (QUEUED, RUNNING),
            (RUNNING,),
            "durable runner",
            f"{_LIVE} AND #status IN (:queued, :running)",
            _pending,
            "each invocation of a durable task's execution, before it replays or runs a step: records the execution, "
            "counts the invocation as an attempt, and holds a lease for the invocation's time; refused once the task "
            "was cancelled or has ended, which ends the execution",
        ),
        Transition(
            Write.BEGIN_STEP,
            (RUNNING,),
            (RUNNING,),
            "durable runner",
            _UNCHANGED,
            _unchanged,
            "a durable task's step starts (not a replayed one): its name, the steps done and how often this step was "
            "started (a step interrupted MaxReceiveCount times fails the task); refused after a cancel, so that no "
            "step starts after it",
        ),
    )
}


def view(record: TaskRecord | None, now: float) -> TaskRecord | None:
    """The task as a reader sees it at `now`: None when there is no record or it has expired; a last attempt whose
    lease has lapsed reads as failed. A worker that is stopped (the function timed out, ran out of memory) records
    nothing: on an earlier attempt the next delivery takes the task over, but after the last one its message is in the
    dead-letter queue, and the task has failed once that attempt's lease has run out."""
    if record is None or record.is_expired(now):
        return None
    if record.status is not RUNNING or not record.last_attempt or (record.lease_until or 0) >= now:
        return record
    return msgspec.structs.replace(
        record,
        status=FAILED,
        finished_at=record.lease_until,
        error=TaskFailure(
            type="GaveUp",
            message="gave up: the worker stopped during the last attempt allowed, before the task finished "
            "(it timed out or ran out of memory)",
        ),
    )
