"""The lifecycle's rules (core.domain.lifecycle) in the in-memory store: every transition, who may make it and when it is
refused, in milliseconds and without moto. tests/integration/test_store_contract.py runs the DynamoDB store through
the same sequences."""

from __future__ import annotations

import pytest
from msgspec.structs import replace

from core.adapters.memory_store import InMemoryTaskStore
from core.domain.lifecycle import TRANSITIONS, Write, view
from core.domain.records import TaskFailure, TaskStatus
from core.domain.store import TransitionRefused, UploadTaken
from tests.support.records import queued_multiply

NOW = 1_795_831_200.0
QUEUED = queued_multiply(NOW)
RUNNING_LAST = replace(
    QUEUED,
    status=TaskStatus.RUNNING,
    attempts=3,
    started_at=NOW + 1,
    lease_until=NOW + 800,
    last_attempt=True,
)


@pytest.fixture
def store() -> InMemoryTaskStore:
    store = InMemoryTaskStore()
    store.create(QUEUED, NOW)
    return store


def test_every_write_has_a_transition_with_a_condition_and_a_reason() -> None:
    assert set(TRANSITIONS) == set(Write)
    for transition in TRANSITIONS.values():
        assert transition.condition
        assert transition.why
        assert transition.by
        assert transition.sources
        assert transition.targets


def test_create_refuses_a_live_record_with_the_same_id_and_returns_it(store: InMemoryTaskStore) -> None:
    with pytest.raises(TransitionRefused) as refused:
        store.create(replace(QUEUED, input_json="{}"), NOW)

    assert refused.value.current == QUEUED


def test_create_takes_the_id_of_an_expired_record(store: InMemoryTaskStore) -> None:
    fresh = replace(QUEUED, created_at=QUEUED.expires_at + 1.0)

    store.create(fresh, QUEUED.expires_at + 1.0)

    assert store.get(QUEUED.task_id) == fresh


UPLOAD = "uploads/0123abcd/1b4e28ba-2fa1-41d2-883f-0016d3cca427"
OTHER_ID = "5d6c1a0e-8f3b-4c2d-9e7a-1b2c3d4e5f60"


def test_create_claims_the_upload_it_names_for_that_task_alone(store: InMemoryTaskStore) -> None:
    # GIVEN a task created on an upload
    first = replace(QUEUED, task_id=OTHER_ID, input_json=None, input_ref=UPLOAD)
    store.create(first, NOW, upload=UPLOAD)

    # WHEN another task names the same upload
    second = replace(first, task_id="9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d")
    with pytest.raises(UploadTaken) as taken:
        store.create(second, NOW + 1, upload=UPLOAD)

    # THEN it is refused, naming the task the upload serves, and nothing of it was written
    assert taken.value.task_id == OTHER_ID
    assert store.get(second.task_id) is None


def test_create_refuses_a_live_record_before_looking_at_its_upload(store: InMemoryTaskStore) -> None:
    # An idempotent replay (the same id) of a task on an upload meets its own record, whatever the upload's claim.
    with pytest.raises(TransitionRefused) as refused:
        store.create(replace(QUEUED, input_json=None, input_ref=UPLOAD), NOW, upload=UPLOAD)

    assert refused.value.current == QUEUED


def test_a_refused_create_claims_no_upload(store: InMemoryTaskStore) -> None:
    with pytest.raises(TransitionRefused):
        store.create(replace(QUEUED, input_json=None, input_ref=UPLOAD), NOW, upload=UPLOAD)

    store.create(replace(QUEUED, task_id=OTHER_ID, input_json=None, input_ref=UPLOAD), NOW, upload=UPLOAD)

    assert store.get(OTHER_ID) is not None


def test_an_upload_whose_task_has_expired_may_be_claimed_again(store: InMemoryTaskStore) -> None:
    first = replace(QUEUED, task_id=OTHER_ID, input_json=None, input_ref=UPLOAD)
    store.create(first, NOW, upload=UPLOAD)
    later = first.expires_at + 1.0
    second = replace(
        first, task_id="9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", created_at=later, expires_at=int(later) + 60
    )

    store.create(second, later, upload=UPLOAD)

    assert store.get(second.task_id) == second


def test_claim_records_when_the_run_began_not_when_it_was_claimed(store: InMemoryTaskStore) -> None:
    claimed = store.claim(QUEUED.task_id, NOW + 2, 60, started_at=NOW + 1)

    assert claimed.status is TaskStatus.RUNNING
    assert claimed.started_at == NOW + 1
    assert claimed.lease_until == NOW + 62
    assert claimed.attempts == 1


def test_claim_is_refused_under_a_live_lease_and_taken_over_once_it_lapses(store: InMemoryTaskStore) -> None:
    store.claim(QUEUED.task_id, NOW, 60, started_at=NOW)

    with pytest.raises(TransitionRefused):
        store.claim(QUEUED.task_id, NOW + 59, 60, started_at=NOW + 59)
    again = store.claim(QUEUED.task_id, NOW + 61, 60, started_at=NOW + 61)

    assert again.attempts == 2
    assert again.started_at == NOW + 61


def test_finish_applies_only_to_the_record_the_run_saw(store: InMemoryTaskStore) -> None:
    claimed = store.claim(QUEUED.task_id, NOW, 60, started_at=NOW)
    taken_over = store.claim(QUEUED.task_id, NOW + 61, 60, started_at=NOW + 61)

    with pytest.raises(TransitionRefused) as refused:
        store.finish(claimed, NOW + 70, claimed=True, started_at=NOW, result_json="6")
    assert refused.value.current == taken_over

    done = store.finish(taken_over, NOW + 70, claimed=True, started_at=NOW + 61, result_json="6")
    assert (done.status, done.result_json, done.started_at, done.attempts) == (TaskStatus.SUCCEEDED, "6", NOW + 61, 2)


def test_an_unclaimed_run_counts_its_attempt_in_its_outcome(store: InMemoryTaskStore) -> None:
    failed = store.finish(QUEUED, NOW + 1, claimed=False, started_at=NOW, error=TaskFailure("ValueError", "bad"))

    assert (failed.status, failed.attempts, failed.progress) == (TaskStatus.FAILED, 1, None)


def test_no_write_moves_a_cancelled_task(store: InMemoryTaskStore) -> None:
    cancelled = store.cancel(QUEUED.task_id, NOW)

    with pytest.raises(TransitionRefused):
        store.finish(QUEUED, NOW + 1, claimed=False, started_at=NOW, result_json="6")
    with pytest.raises(TransitionRefused):
        store.claim(QUEUED.task_id, NOW + 1, 60, started_at=NOW + 1)
    with pytest.raises(TransitionRefused):
        store.give_up(QUEUED.task_id, NOW + 1, TaskFailure("GaveUp", "x"))
    with pytest.raises(TransitionRefused):
        store.cancel(QUEUED.task_id, NOW + 1)
    with pytest.raises(TransitionRefused):
        store.resume(QUEUED.task_id, NOW + 1, 60, execution_arn=EXECUTION)
    assert store.get(QUEUED.task_id) == cancelled


def test_give_up_fails_a_queued_task_or_a_lapsed_claim_but_not_a_live_one(store: InMemoryTaskStore) -> None:
    store.claim(QUEUED.task_id, NOW, 60, started_at=NOW)

    with pytest.raises(TransitionRefused):
        store.give_up(QUEUED.task_id, NOW + 30, TaskFailure("GaveUp", "x"))
    failed = store.give_up(QUEUED.task_id, NOW + 61, TaskFailure("GaveUp", "x"))

    assert (failed.status, failed.lease_until, failed.finished_at) == (TaskStatus.FAILED, None, NOW + 61)


EXECUTION = "arn:aws:lambda:us-east-1:123456789012:function:runner:1/durable-execution/x/y"


def test_resume_runs_a_durable_task_and_counts_each_invocation(store: InMemoryTaskStore) -> None:
    first = store.resume(QUEUED.task_id, NOW + 1, 60, execution_arn=EXECUTION)
    second = store.resume(QUEUED.task_id, NOW + 100, 60, execution_arn=EXECUTION)

    assert (first.status, first.execution_arn, first.started_at, first.attempts) == (
        TaskStatus.RUNNING,
        EXECUTION,
        NOW + 1,
        1,
    )
    # started_at is the first invocation's; each invocation is an attempt with a lease of its own time.
    assert (second.started_at, second.attempts, second.lease_until) == (NOW + 1, 2, NOW + 160)


def test_resume_is_refused_once_the_task_has_ended(store: InMemoryTaskStore) -> None:
    running = store.resume(QUEUED.task_id, NOW + 1, 60, execution_arn=EXECUTION)
    store.finish(running, NOW + 2, claimed=True, started_at=NOW + 1, result_json="1", steps_done=1)

    with pytest.raises(TransitionRefused) as refused:
        store.resume(QUEUED.task_id, NOW + 3, 60, execution_arn=EXECUTION)
    assert refused.value.current is not None
    assert refused.value.current.status is TaskStatus.SUCCEEDED


def test_begin_step_records_the_step_for_the_invocation_that_resumed_the_task(store: InMemoryTaskStore) -> None:
    running = store.resume(QUEUED.task_id, NOW + 1, 60, execution_arn=EXECUTION)

    stepping = store.begin_step(running, NOW + 2, 50, name="epochs from 1", steps_done=0, step_attempts=1)
    # A newer invocation took the task over: the older one's step start is refused.
    newer = store.resume(QUEUED.task_id, NOW + 3, 60, execution_arn=EXECUTION)
    with pytest.raises(TransitionRefused):
        store.begin_step(stepping, NOW + 4, 50, name="epochs from 9", steps_done=1, step_attempts=1)

    assert (stepping.current_step, stepping.steps_done, stepping.step_attempts) == ("epochs from 1", 0, 1)
    assert stepping.lease_until == NOW + 52
    done = store.finish(newer, NOW + 5, claimed=True, started_at=NOW + 1, result_json="1", steps_done=2)
    assert (done.steps_done, done.current_step) == (2, None)


def test_begin_step_is_refused_after_a_cancel(store: InMemoryTaskStore) -> None:
    running = store.resume(QUEUED.task_id, NOW + 1, 60, execution_arn=EXECUTION)
    store.cancel(QUEUED.task_id, NOW + 2)

    with pytest.raises(TransitionRefused) as refused:
        store.begin_step(running, NOW + 3, 50, name="second", steps_done=1, step_attempts=1)
    assert refused.value.current is not None
    assert refused.value.current.status is TaskStatus.CANCELLED


def test_give_up_ends_a_durable_task_once_its_last_invocation_lease_lapsed(store: InMemoryTaskStore) -> None:
    store.resume(QUEUED.task_id, NOW + 1, 60, execution_arn=EXECUTION)

    with pytest.raises(TransitionRefused):
        store.give_up(QUEUED.task_id, NOW + 30, TaskFailure("DurableExecutionEnded", "x"))
    failed = store.give_up(QUEUED.task_id, NOW + 62, TaskFailure("DurableExecutionEnded", "x"))

    assert failed.status is TaskStatus.FAILED


def test_withdraw_removes_only_a_queued_record(store: InMemoryTaskStore) -> None:
    store.claim(QUEUED.task_id, NOW, 60, started_at=NOW)
    with pytest.raises(TransitionRefused):
        store.withdraw(QUEUED.task_id)

    other = replace(QUEUED, task_id="9d1e8f3a-1b2c-4d5e-8f90-123456789abc")
    store.create(other, NOW)
    store.withdraw(other.task_id)
    assert store.get(other.task_id) is None


def test_release_puts_a_claimed_task_back_in_the_queue(store: InMemoryTaskStore) -> None:
    claimed = store.claim(QUEUED.task_id, NOW, 60, started_at=NOW)

    store.release(claimed, claimed=True)

    back = store.get(QUEUED.task_id)
    assert back is not None
    assert (back.status, back.lease_until, back.attempts) == (TaskStatus.QUEUED, None, 1)


def test_last_attempt_whose_lease_ran_out_is_seen_failed() -> None:
    seen = view(RUNNING_LAST, RUNNING_LAST.lease_until + 0.5)  # type: ignore[operator]

    assert seen is not None
    assert seen.status is TaskStatus.FAILED
    assert seen.finished_at == RUNNING_LAST.lease_until
    assert seen.error is not None
    assert seen.error.type == "GaveUp"
    assert "timed out or ran out of memory" in seen.error.message


def test_a_live_lease_or_a_later_delivery_keeps_the_task_running() -> None:
    assert view(RUNNING_LAST, NOW + 800) is RUNNING_LAST  # the lease runs to its last instant
    not_last = replace(RUNNING_LAST, last_attempt=False)
    assert view(not_last, NOW + 10_000) is not_last  # its next delivery takes it over
    done = replace(RUNNING_LAST, status=TaskStatus.SUCCEEDED, result_json="6")
    assert view(done, NOW + 10_000) is done


def test_an_expired_or_absent_record_is_seen_as_none() -> None:
    assert view(None, NOW) is None
    assert view(QUEUED, QUEUED.expires_at) is None


def test_the_design_document_draws_the_lifecycle_as_the_stores_apply_it() -> None:
    from tools.lifecycle_doc import DESIGN, render

    assert render() in DESIGN.read_text(), "run `make docs`"
