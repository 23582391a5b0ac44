"""Completion events: the event a task's end makes, which stream records are task ends (the Python rule and the
template's filter, as the local stack's poller applies it), and the notifier's batch handling."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from core.adapters.dynamodb_store import to_item
from core.domain.records import TaskFailure, TaskRecord, TaskStatus
from core.errors import MAX_FIELD_ERRORS, QueueUnavailable
from core.services.events import (
    INLINE_RESULT_MAX_BYTES,
    MAX_DETAIL_BYTES,
    TERMINAL_TRANSITION,
    Notifier,
    Published,
    TaskEvent,
    is_terminal_transition,
    stream_event,
    task_event,
)
from devstack.stream_source import matches

NOW = 1_796_400_000.0


def record(status: TaskStatus = TaskStatus.SUCCEEDED, **changes: Any) -> TaskRecord:
    values: dict[str, Any] = {
        "task_id": "7d2b8f0e-1f6a-4c1e-8a39-5b3f7c2e9d10",
        "task": "multiply",
        "status": status,
        "input_json": '{"x":2,"y":3}',
        "created_at": NOW,
        "expires_at": int(NOW) + 86_400,
        "owner": "alice",
        "started_at": NOW + 1 if status is not TaskStatus.QUEUED else None,
        "finished_at": NOW + 2 if status.is_terminal else None,
    }
    return TaskRecord(**(values | changes))


def stream_record(old: TaskRecord | None, new: TaskRecord | None, sequence: str = "100") -> dict[str, Any]:
    """A record of Lambda's DynamoDB stream event, as the table's stream writes it for one write."""
    images: dict[str, Any] = {"SequenceNumber": sequence, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    if old is not None:
        images["OldImage"] = to_item(old)
    if new is not None:
        images["NewImage"] = to_item(new)
    name = "INSERT" if old is None else "REMOVE" if new is None else "MODIFY"
    return {"eventID": sequence, "eventName": name, "eventSource": "aws:dynamodb", "dynamodb": images}


# ---- the event


def test_task_event_of_a_success_carries_a_small_result() -> None:
    event = task_event(record(result_json='{"product": 6}', webhook_url="https://hooks.example.com/x"))

    assert event.detail_type == "Task Succeeded"
    assert event.detail == {
        "task": "multiply",
        "task_id": "7d2b8f0e-1f6a-4c1e-8a39-5b3f7c2e9d10",
        "status": "succeeded",
        "created_at": "2026-12-04T16:00:00.000Z",
        "started_at": "2026-12-04T16:00:01.000Z",
        "finished_at": "2026-12-04T16:00:02.000Z",
        "error": None,
        "result": {"product": 6},
    }
    assert event.webhook_url == "https://hooks.example.com/x"
    assert event.webhook_id == "msg_7d2b8f0e-1f6a-4c1e-8a39-5b3f7c2e9d10_succeeded"


@pytest.mark.parametrize(
    "changes",
    [
        {"result_json": json.dumps("x" * INLINE_RESULT_MAX_BYTES)},
        {"result_json": None, "result_ref": "results/abc", "result_bytes": 10_000_000},
    ],
)
def test_task_event_of_a_large_result_names_where_to_fetch_it(changes: dict[str, Any]) -> None:
    event = task_event(record(**changes))

    assert "result" not in event.detail
    assert event.detail["result_path"] == "/multiply/7d2b8f0e-1f6a-4c1e-8a39-5b3f7c2e9d10/result"


def test_task_event_of_a_failure_and_of_a_cancel() -> None:
    failed = task_event(record(TaskStatus.FAILED, error=TaskFailure("ValueError", "no")))
    cancelled = task_event(record(TaskStatus.CANCELLED, started_at=None))

    assert (failed.detail_type, failed.detail["error"]) == ("Task Failed", {"type": "ValueError", "message": "no"})
    assert "result" not in failed.detail
    assert (cancelled.detail_type, cancelled.detail["status"], cancelled.detail["error"]) == (
        "Task Cancelled",
        "cancelled",
        None,
    )


def test_task_event_of_a_failure_with_many_long_field_errors_stays_one_billing_chunk_and_points_to_the_task() -> None:
    # GIVEN a failure with the most per-field errors a record holds, each field as long as kept, in characters that
    # JSON escapes at twelve bytes each
    errors = tuple(
        {"field": "\U0001f600" * 199 + str(n), "message": "\U0001f600" * 200, "type": "unknown_field"}
        for n in range(MAX_FIELD_ERRORS)
    )
    failure = TaskFailure("InvalidInput", "invalid input for task 'multiply'", errors, errors_omitted=3_000)

    # WHEN its event is built
    event = task_event(record(TaskStatus.FAILED, error=failure))

    # THEN it fits one 64 KB chunk (EventBridge bills and takes it whole), says how many errors it left out, and
    # names where the whole task is
    assert len(event.detail_json().encode()) <= MAX_DETAIL_BYTES
    assert event.detail["error"] == {
        "type": "InvalidInput",
        "message": "invalid input for task 'multiply'",
        "errors_omitted": MAX_FIELD_ERRORS + 3_000,
    }
    assert event.detail["task_path"] == "/multiply/7d2b8f0e-1f6a-4c1e-8a39-5b3f7c2e9d10"


def test_task_event_of_a_failure_with_a_few_errors_lists_them_and_their_count_left_out() -> None:
    failure = TaskFailure("InvalidInput", "bad", ({"field": "x", "message": "m", "type": "invalid"},), 7)

    event = task_event(record(TaskStatus.FAILED, error=failure))

    assert event.detail["error"] == {
        "type": "InvalidInput",
        "message": "bad",
        "errors": [{"field": "x", "message": "m", "type": "invalid"}],
        "errors_omitted": 7,
    }
    assert "task_path" not in event.detail


def test_task_event_is_refused_for_a_task_that_has_not_ended() -> None:
    with pytest.raises(ValueError, match="not finished"):
        task_event(record(TaskStatus.RUNNING))


def test_task_event_is_the_same_every_time_it_is_built() -> None:
    first, again = task_event(record(result_json="6")), task_event(record(result_json="6"))

    assert first == again
    assert first.detail_json() == again.detail_json()


# ---- which stream records are task ends

TRANSITIONS = [
    (None, record(TaskStatus.QUEUED), False),  # created
    (record(TaskStatus.QUEUED), record(TaskStatus.RUNNING), False),  # claimed
    (record(TaskStatus.RUNNING), record(TaskStatus.RUNNING, progress=0.5), False),  # progress
    (record(TaskStatus.RUNNING), record(TaskStatus.QUEUED), False),  # released
    (record(TaskStatus.RUNNING), record(TaskStatus.SUCCEEDED), True),  # finished
    (record(TaskStatus.QUEUED), record(TaskStatus.SUCCEEDED), True),  # a quick unclaimed run
    (record(TaskStatus.RUNNING), record(TaskStatus.FAILED), True),  # failed, or given up
    (record(TaskStatus.QUEUED), record(TaskStatus.CANCELLED), True),
    (record(TaskStatus.RUNNING), record(TaskStatus.CANCELLED), True),
    (record(TaskStatus.SUCCEEDED), None, False),  # TTL removed it
    (record(TaskStatus.QUEUED), None, False),  # withdrawn
    (record(TaskStatus.SUCCEEDED), record(TaskStatus.SUCCEEDED), False),  # not a move (no write does this)
]


@pytest.mark.parametrize(("old", "new", "ends"), TRANSITIONS)
def test_only_a_move_from_a_pending_to_a_terminal_status_is_a_task_end(
    old: TaskRecord | None, new: TaskRecord | None, ends: bool
) -> None:
    raw = stream_record(old, new)

    assert is_terminal_transition(raw) is ends
    # The template's filter, as the local stack's stream poller applies it, agrees with the rule in Python.
    assert matches(TERMINAL_TRANSITION, raw) is ends
    assert (stream_event(raw) is not None) is ends


def test_the_stream_filter_refuses_content_filters_it_does_not_emulate() -> None:
    with pytest.raises(NotImplementedError):
        matches({"dynamodb": {"NewImage": {"status": {"S": [{"prefix": "s"}]}}}}, stream_record(None, record()))


# ---- the notifier


class FakePublisher:
    """Refuses the events of the tasks named in `refuse` for now, and those in `reject` for good."""

    def __init__(self, refuse: Sequence[str] = (), reject: Sequence[str] = ()) -> None:
        self.events: list[TaskEvent] = []
        self._refuse = set(refuse)
        self._reject = set(reject)

    def publish(self, events: Sequence[TaskEvent]) -> Published:
        retry = frozenset(n for n, event in enumerate(events) if event.task_id in self._refuse)
        refused = {n: "InvalidArgument: too large" for n, event in enumerate(events) if event.task_id in self._reject}
        self.events += [event for n, event in enumerate(events) if n not in retry and n not in refused]
        return Published(retry, refused)


class FakeDeliveries(FakePublisher):
    def enqueue(self, events: Sequence[TaskEvent]) -> Published:
        return self.publish(events)


class FakeDeadLetters:
    def __init__(self, available: bool = True) -> None:
        self.kept: list[tuple[str, str]] = []
        self._available = available

    def keep(self, event: TaskEvent, reason: str) -> None:
        if not self._available:
            raise QueueUnavailable("injected")
        self.kept.append((event.task_id, reason))


def ended(task_id: str, sequence: str, **changes: Any) -> dict[str, Any]:
    return stream_record(
        record(TaskStatus.RUNNING, task_id=task_id, **changes),
        record(TaskStatus.SUCCEEDED, task_id=task_id, result_json="1", **changes),
        sequence,
    )


def test_notifier_puts_one_event_per_task_end_and_queues_webhooks_only_for_tasks_that_named_one() -> None:
    publisher, deliveries = FakePublisher(), FakeDeliveries()
    records = [
        ended("a", "1"),
        stream_record(record(TaskStatus.QUEUED), record(TaskStatus.RUNNING), "2"),  # not an end: ignored
        ended("b", "3", webhook_url="https://hooks.example.com/b"),
    ]

    response = Notifier(publisher, deliveries, FakeDeadLetters()).handle(records)

    assert response == {"batchItemFailures": []}
    assert [event.task_id for event in publisher.events] == ["a", "b"]
    assert [event.task_id for event in deliveries.events] == ["b"]


def test_notifier_reports_the_first_record_it_could_not_publish_so_the_stream_resumes_there() -> None:
    publisher = FakePublisher(refuse=["b"])
    deliveries = FakeDeliveries(refuse=["c"])
    records = [ended("a", "1"), ended("b", "2"), ended("c", "3", webhook_url="https://hooks.example.com/c")]

    response = Notifier(publisher, deliveries, FakeDeadLetters()).handle(records)

    assert response == {"batchItemFailures": [{"itemIdentifier": "2"}]}


def test_notifier_keeps_an_event_refused_for_good_in_the_dead_letter_queue_and_holds_back_no_other() -> None:
    # GIVEN a batch whose second event EventBridge will never take, and whose third's webhook SQS will never take
    publisher = FakePublisher(reject=["b"])
    deliveries = FakeDeliveries(reject=["c"])
    dead_letters = FakeDeadLetters()
    records = [
        ended("a", "1"),
        ended("b", "2"),
        ended("c", "3", webhook_url="https://hooks.example.com/c"),
        ended("d", "4"),
    ]

    # WHEN the notifier handles it
    response = Notifier(publisher, deliveries, dead_letters).handle(records)

    # THEN nothing is retried: the others are put, and the refused ones kept with why
    assert response == {"batchItemFailures": []}
    assert [event.task_id for event in publisher.events] == ["a", "c", "d"]
    assert dead_letters.kept == [
        ("b", "event: InvalidArgument: too large"),
        ("c", "webhook: InvalidArgument: too large"),
    ]


def test_notifier_retries_from_an_event_it_could_not_keep_either() -> None:
    publisher = FakePublisher(reject=["b"])
    records = [ended("a", "1"), ended("b", "2"), ended("c", "3")]

    response = Notifier(publisher, FakeDeliveries(), FakeDeadLetters(available=False)).handle(records)

    assert response == {"batchItemFailures": [{"itemIdentifier": "2"}]}


def test_notifier_keeps_no_refusal_that_the_stream_gives_again() -> None:
    # A refusal after the first record to retry is met again when the stream resumes there: kept then, once.
    publisher = FakePublisher(refuse=["a"], reject=["b"])
    dead_letters = FakeDeadLetters()

    response = Notifier(publisher, FakeDeliveries(), dead_letters).handle([ended("a", "1"), ended("b", "2")])

    assert response == {"batchItemFailures": [{"itemIdentifier": "1"}]}
    assert dead_letters.kept == []


def test_notifier_with_events_disabled_still_queues_webhooks() -> None:
    deliveries = FakeDeliveries()

    response = Notifier(None, deliveries, FakeDeadLetters()).handle(
        [ended("a", "1", webhook_url="https://hooks.example.com/a")]
    )

    assert response == {"batchItemFailures": []}
    assert [event.task_id for event in deliveries.events] == ["a"]
