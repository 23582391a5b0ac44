"""Which progress reports the worker writes (core.services.runner.TaskRun.progress): each write costs what the task's creation
does, so a task that declared its run time and keeps to it writes only what readers could not work out."""

from __future__ import annotations

import msgspec

from core.adapters.memory_store import InMemoryTaskStore
from core.domain.progress import ON_SCHEDULE_PROGRESS_INTERVAL_SECONDS
from core.domain.records import TaskRecord, TaskStatus
from core.services.runner import TaskRun
from tests.support.records import queued_multiply

STARTED = 1_795_831_200.0


class CountingStore(InMemoryTaskStore):
    def __init__(self) -> None:
        super().__init__()
        self.progress_writes: list[float] = []

    def report_progress(self, expected: TaskRecord, fraction: float, now: float) -> None:
        self.progress_writes.append(fraction)
        super().report_progress(expected, fraction, now)


def _run(store: CountingStore, clock: list[float], expected_seconds: float | None) -> TaskRun:
    record = queued_multiply(STARTED, input_json="{}", owner="someone", expected_seconds=expected_seconds)
    store.create(record, STARTED)
    run = TaskRun(store, record, lambda: clock[0], lease_seconds=60)
    run.pacer.expected_seconds = expected_seconds
    return run


def _report_each_second(run: TaskRun, clock: list[float], seconds: int, total: float) -> None:
    for second in range(1, seconds + 1):
        clock[0] = STARTED + second
        run.progress(second / total)


def test_a_declared_task_on_schedule_writes_no_progress_beyond_its_claim() -> None:
    # GIVEN a task declared at 10 s that reports its progress every second, on schedule
    store, clock = CountingStore(), [STARTED]
    run = _run(store, clock, expected_seconds=10.0)
    # WHEN it runs its 10 s
    _report_each_second(run, clock, 9, total=10.0)
    # THEN it was claimed (readers see it running, since when) and no progress was written
    assert store.progress_writes == []
    record = store.get(run.task_id)
    assert record is not None
    assert record.status is TaskStatus.RUNNING
    assert record.started_at == STARTED


def test_a_declared_task_off_schedule_writes_its_progress_once_and_then_keeps_to_the_new_rate() -> None:
    # GIVEN a task declared at 10 s that in fact takes 40 s, at a steady rate
    store, clock = CountingStore(), [STARTED]
    run = _run(store, clock, expected_seconds=10.0)
    # WHEN it reports every second for 20 s
    _report_each_second(run, clock, 20, total=40.0)
    # THEN its progress was written once it pointed to another end (with when), and not again while that held
    assert store.progress_writes == [0.025]
    record = store.get(run.task_id)
    assert record is not None
    assert record.progress_at == STARTED + 1


def test_a_declared_task_on_schedule_still_writes_its_progress_every_half_minute() -> None:
    store, clock = CountingStore(), [STARTED]
    run = _run(store, clock, expected_seconds=100.0)

    _report_each_second(run, clock, 70, total=100.0)

    assert len(store.progress_writes) == 70 // int(ON_SCHEDULE_PROGRESS_INTERVAL_SECONDS)


def test_a_task_that_declares_no_run_time_writes_its_progress_every_second() -> None:
    store, clock = CountingStore(), [STARTED]
    run = _run(store, clock, expected_seconds=None)

    _report_each_second(run, clock, 5, total=10.0)

    assert store.progress_writes == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert msgspec.structs.asdict(store.get(run.task_id) or run.observed)["progress_at"] == STARTED + 5
