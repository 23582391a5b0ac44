"""When a polling client is told to come back (core.domain.polling), and how the 202 says it."""

from __future__ import annotations

import json

import pytest
from msgspec.structs import replace

from core.domain import polling
from core.domain.records import TaskRecord, TaskStatus
from core.http.api import Request, task_response
from tests.support.records import queued_multiply

CREATED = 1_795_831_200.0
# A 10 s multiply as submit records it: declared to take 10 s.
QUEUED = queued_multiply(
    CREATED, retention_seconds=7 * 86_400, owner="arn:aws:iam::123456789012:role/analyst", expected_seconds=10.0
)
RUNNING = replace(QUEUED, status=TaskStatus.RUNNING, started_at=CREATED + 0.1, attempts=1)


def test_retry_after_of_a_queued_task_is_its_expected_run_and_a_margin() -> None:
    # GIVEN a queued task declared to take 10 s
    # WHEN it is polled right after its submission
    hint = polling.retry_after(QUEUED, CREATED + 0.02)
    # THEN the client comes back just after it can have ended: not before 10 s, not a whole second late
    assert 10.0 < hint <= 10.8


def test_retry_after_of_a_task_queued_long_is_still_its_whole_run() -> None:
    # A task still queued after a minute has its whole run ahead of it
    assert 10.0 < polling.retry_after(QUEUED, CREATED + 60) <= 10.8


def test_retry_after_of_a_running_task_follows_its_progress_rate() -> None:
    # GIVEN a task declared at 10 s that has done a quarter of its work in its first 5 s (it will take 20 s)
    slow = replace(RUNNING, progress=0.25, progress_at=RUNNING.started_at + 5)
    # WHEN polled 6 s into the run
    hint = polling.retry_after(slow, RUNNING.started_at + 6)
    # THEN it is told the 14 s its rate leaves, not the 4 s its declaration would
    assert 14.0 < hint <= 14.8


def test_retry_after_of_a_running_task_without_progress_is_its_declared_end() -> None:
    # GIVEN a task declared at 10 s, running for 3 s, with no progress written
    hint = polling.retry_after(RUNNING, RUNNING.started_at + 3)
    # THEN it is told the 7 s left
    assert 7.0 < hint <= 7.8


def test_retry_after_of_an_overdue_task_is_a_tenth_of_its_run_so_far() -> None:
    # GIVEN a task declared at 10 s that has run for 40 s
    hint = polling.retry_after(RUNNING, RUNNING.started_at + 40)
    # THEN its outcome is seen within a tenth of its run
    assert hint == pytest.approx(4.0)


def test_retry_after_when_nothing_tells_the_end_grows_with_the_run_from_the_declared_interval() -> None:
    # GIVEN a task that declares no run time and reports no progress
    unknown = replace(RUNNING, expected_seconds=None, retry_after_seconds=2)
    # THEN early on it is its declared interval, later a tenth of its run
    assert polling.retry_after(unknown, RUNNING.started_at + 1) == 2.0
    assert polling.retry_after(unknown, RUNNING.started_at + 100) == pytest.approx(10.0)


def test_retry_after_is_never_zero_and_never_absurd() -> None:
    # A task about to end, or that ends at once, is still given a pause; one declared at a day, a capped one
    assert polling.retry_after(RUNNING, RUNNING.started_at + 9.99) >= polling.MIN_SECONDS
    instant = replace(QUEUED, expected_seconds=0.0)
    assert polling.retry_after(instant, CREATED) >= polling.MIN_SECONDS
    assert polling.retry_after(replace(QUEUED, expected_seconds=86_400.0), CREATED) == polling.MAX_SECONDS


def test_pending_answer_has_the_hint_in_the_body_and_whole_seconds_rounded_up_in_the_header() -> None:
    # GIVEN a GET of a running task with 7.4 s left (and the 0.3 s margin)
    request = Request({"requestContext": {"http": {"method": "GET"}, "stage": "$default"}})
    # WHEN the API answers
    answer = task_response(request, RUNNING, now=RUNNING.started_at + 2.6)
    # THEN the body's retry_after is to a tenth, and the header, whole seconds, never earlier than it
    body = json.loads(answer["body"])
    assert answer["statusCode"] == 202
    assert 7.4 < body["retry_after"] <= 8.0
    assert answer["headers"]["Retry-After"] == str(int(body["retry_after"]) + 1)


def test_finished_answer_has_no_hint() -> None:
    request = Request({"requestContext": {"http": {"method": "GET"}, "stage": "$default"}})
    done = replace(RUNNING, status=TaskStatus.SUCCEEDED, result_json="6", finished_at=CREATED + 10.2)

    answer = task_response(request, done, now=CREATED + 11)

    assert answer["statusCode"] == 200
    assert "Retry-After" not in answer["headers"]
    assert "retry_after" not in json.loads(answer["body"])


@pytest.mark.parametrize(("seconds", "header"), [(0.5, "1"), (1.0, "1"), (1.05, "2"), (10.4, "11")])
def test_header_is_whole_seconds_rounded_up_and_at_least_one(seconds: float, header: str) -> None:
    assert polling.header_value(seconds) == header


def _finished(task: str, created: float, waited: float, ran: float) -> TaskRecord:
    started = created + waited
    return replace(
        QUEUED,
        task=task,
        status=TaskStatus.SUCCEEDED,
        created_at=created,
        started_at=started,
        finished_at=started + ran,
        result_json="6",
    )


def test_a_queued_task_is_told_the_rest_of_the_queue_wait_its_kind_has_had_lately() -> None:
    # GIVEN an environment that has shown multiplies end after waiting 0.5 s in the queue
    recent = polling.RecentRuns()
    for n in range(3):
        recent.note(_finished("multiply", CREATED - 100 + n, waited=0.5, ran=10.0))
    # WHEN a multiply queued 0.1 s ago is polled
    hint = polling.retry_after(QUEUED, CREATED + 0.1, recent)
    # THEN it is told the 0.4 s it may still wait, its 10 s run, and the margin
    assert 10.4 < hint <= 10.8
    # AND one that has waited 5 s already is told a tenth of that on top of its run, not a negative wait
    assert 10.5 < polling.retry_after(QUEUED, CREATED + 5, recent) <= 10.9


def test_a_task_that_declares_no_run_time_is_told_the_run_its_kind_has_taken_lately() -> None:
    recent = polling.RecentRuns()
    recent.note(_finished("fit", CREATED - 100, waited=0.0, ran=4.0))
    undeclared = replace(QUEUED, task="fit", expected_seconds=None)

    assert 4.0 < polling.retry_after(undeclared, CREATED + 0.05, recent) <= 4.5
    # Another kind learns nothing from it
    assert polling.retry_after(replace(undeclared, task="describe"), CREATED + 0.05, recent) == 1.0


def test_only_finished_runs_teach_anything() -> None:
    recent = polling.RecentRuns()
    recent.note(RUNNING)
    recent.note(QUEUED)

    assert recent.queue_wait("multiply") is None
    assert recent.run_seconds("multiply") is None
