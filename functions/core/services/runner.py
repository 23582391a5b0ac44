"""What the worker does with one task message: read the task, run it (claiming it if it runs long), record
the outcome. The writes it makes, and their conditions, are core.domain.lifecycle's.

The read skips a finished, cancelled or live-leased task, so a duplicate or late delivery never runs a
finished task again; every write is conditional on the record being as this run last saw it, so none
overwrites a terminal state or a newer attempt, and a run whose record changed under it leaves the message to a
later delivery unless the task has finished. A transient error is raised so that SQS delivers the
message again; on the last delivery the task is failed and the message goes to the dead-letter queue.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec
from botocore.exceptions import BotoCoreError

from core.adapters.aws_errors import is_aws_unavailable
from core.adapters.executions import DurableExecutions
from core.adapters.payloads import INLINE_RESULT_MAX_BYTES, MAX_RESULT_BYTES, PayloadStore, result_key
from core.adapters.queue import TaskMessage
from core.domain import json_text
from core.domain.deliveries import Disposition, Outcome, TaskBusy
from core.domain.lifecycle import view
from core.domain.progress import ProgressPacer, clamped
from core.domain.records import TaskFailure, TaskRecord, TaskStatus
from core.domain.store import TaskStore, TransitionRefused
from core.errors import ApiError, InvalidInput, RetryableTaskError, RunCancelled, RunTakenOver, ServiceUnavailable
from core.registry import get_task
from core.services.scheduler import Scheduled, scheduler

logger = logging.getLogger(__name__)

# A run this long is claimed (shown running, with a lease); a quicker one is recorded only when it ends.
CLAIM_AFTER_SECONDS = 1.0


def is_transient(error: BaseException) -> bool:
    """Errors that a later attempt may not meet: throttling, timeouts, lost connections."""
    if isinstance(error, RetryableTaskError | TimeoutError | ConnectionError | TaskBusy | ServiceUnavailable):
        return True
    # A task's own AWS calls: throttling, or any failure of botocore's own (a response it could not read, say).
    return is_aws_unavailable(error) or isinstance(error, BotoCoreError)


def describe(error: BaseException) -> TaskFailure:
    """A task's failure as the API shows it; invalid input keeps its per-field errors, as a 422 would give them."""
    if isinstance(error, InvalidInput):
        errors = tuple(error.extra.get("errors", ()))
        omitted = int(error.extra.get("errors_omitted", 0))
        return TaskFailure(type="InvalidInput", message=str(error)[:2000], errors=errors, errors_omitted=omitted)
    return TaskFailure(type=type(error).__name__, message=str(error)[:2000] or type(error).__name__)


def encode_result(value: Any) -> bytes:
    if isinstance(value, msgspec.Struct):
        value = msgspec.to_builtins(value)
    try:
        encoded = json.dumps(value, allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the task's result is not JSON: {exc}") from exc
    if len(encoded) > MAX_RESULT_BYTES:
        raise ValueError(f"the task's result is {len(encoded)} bytes; at most {MAX_RESULT_BYTES} are kept")
    return encoded


def decode_input(data: bytes, task: str) -> dict[str, Any]:
    """An uploaded input, as submit would have read it from a body; InvalidInput (a failed task, with the 422's
    errors) when it is not a JSON object."""
    try:
        value = json_text.loads(data)
    except (ValueError, RecursionError) as exc:
        message = f"not valid JSON: {str(exc)[:500]}"
        raise InvalidInput(
            f"invalid input for task {task!r}", errors=[{"field": "(body)", "message": message, "type": "invalid"}]
        ) from exc
    if not isinstance(value, dict):
        message = f"a JSON object with the inputs of {task!r} expected, got {type(value).__name__}"
        raise InvalidInput(
            f"invalid input for task {task!r}", errors=[{"field": "(body)", "message": message, "type": "invalid"}]
        )
    return value


def inputs_of(record: TaskRecord, payloads: PayloadStore) -> Any:
    """The task's input as it was accepted: in its record, or in the payload bucket (large, or uploaded)."""
    if record.input_ref is None:
        return json.loads(record.input_json or "null")
    data = payloads.get(record.input_ref, record.input_version)
    if data is None:
        version = f" (version {record.input_version})" if record.input_version else ""
        raise InputGone(
            f"the task's input is gone: {record.input_ref}{version} is no longer in the payload bucket "
            "(expired or deleted)"
        )
    return decode_input(data, record.task)


def stored_result(task_id: str, result: bytes, payloads: PayloadStore) -> dict[str, Any]:
    """The finish write's result: inline when small, else in the payload bucket (claim check)."""
    if len(result) <= INLINE_RESULT_MAX_BYTES:
        return {"result_json": result.decode()}
    key = result_key(task_id)
    payloads.put(key, result)
    return {"result_ref": key, "result_bytes": len(result)}


class InputGone(Exception):
    """The task's input is no longer in the payload bucket (deleted by hand; the bucket keeps it the task's
    retention)."""


class TaskRun:
    """One attempt at a task. It claims the task (running, with a lease) only once the run outlasts
    CLAIM_AFTER_SECONDS or first reports progress: a quick task goes from queued to its outcome in one write,
    as Celery records no STARTED state unless asked. Until the claim, the outcome's own condition (the record
    unchanged since it was read) is what stops a duplicate or a cancelled task from being recorded twice."""

    def __init__(
        self,
        store: TaskStore,
        observed: TaskRecord,
        clock: Callable[[], float],
        lease_seconds: float,
        *,
        last_attempt: bool = False,
    ) -> None:
        self.observed = observed
        # The last delivery SQS allows: the run claims the task before it starts (see TaskRunner._run).
        self.last_attempt = last_attempt
        self._store = store
        self._clock = clock
        self._lease_seconds = lease_seconds
        # When the run began: started_at on the record, whenever the claim that records it is made.
        self.started_at = clock()
        self.pacer = ProgressPacer(self.started_at)
        self._lock = threading.Lock()
        self._claimed: TaskRecord | None = None
        self._refused: TransitionRefused | None = None
        self._done = False
        self._scheduled: Scheduled | None = None

    @property
    def task_id(self) -> str:
        return self.observed.task_id

    def __enter__(self) -> TaskRun:
        self._scheduled = scheduler.call_later(CLAIM_AFTER_SECONDS, self._claim_in_background)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop_claiming()

    def _stop_claiming(self) -> None:
        if self._scheduled is not None:
            self._scheduled.cancelled = True

    def _try_claim(self) -> None:
        with self._lock:
            if self._claimed is None and self._refused is None and not self._done:
                try:
                    self._claimed = self._store.claim(
                        self.task_id,
                        self._clock(),
                        self._lease_seconds,
                        started_at=self.started_at,
                        last_attempt=self.last_attempt,
                    )
                except TransitionRefused as refused:
                    self._refused = refused  # the next progress report stops the task; its outcome is dropped

    def _claim_in_background(self) -> None:
        try:
            self._try_claim()
        except ServiceUnavailable as error:
            # The run goes on unclaimed; its outcome's condition still keeps the record right.
            logger.warning("could not claim the running task", extra={"task_id": self.task_id, "error": str(error)})

    @property
    def refusal(self) -> TransitionRefused | None:
        """The refused claim that stopped this run (its `current`: the record as another delivery left it), if any."""
        with self._lock:
            return self._refused

    def claim(self) -> TaskRecord:
        """The claimed record; RunCancelled or RunTakenOver when the task changed under this run."""
        self._try_claim()
        with self._lock:
            if self._refused is not None:
                raise self._stop_for(self._refused) from self._refused
            if self._claimed is None:
                raise RunTakenOver(self.task_id)  # the run has ended: nothing to claim any more
            return self._claimed

    def _stop_for(self, refused: TransitionRefused) -> Exception:
        """Why the task must stop, when the record changed under this run: cancelled, or taken by another."""
        current = refused.current
        if current is not None and current.status is TaskStatus.CANCELLED:
            return RunCancelled(self.task_id)
        return RunTakenOver(self.task_id)

    def progress(self, fraction: float) -> None:
        """The task's Progress callback: written as core.domain.progress paces it; stops a cancelled task."""
        now = self._clock()
        if not self.pacer.due(now):
            return
        claimed = self.claim()
        fraction = clamped(fraction)
        if not self.pacer.worth_writing(fraction, now):
            return
        try:
            self._store.report_progress(claimed, fraction, now)
            self.pacer.written(fraction, now)
        except TransitionRefused as refused:
            raise self._stop_for(refused) from refused
        except ServiceUnavailable as error:
            # A progress report is advisory: a throttled write must not cost the task its run.
            logger.warning("progress not recorded", extra={"task_id": self.task_id, "error": str(error)})

    def _settle(self) -> tuple[TaskRecord, bool]:
        """Stop claiming; the record the outcome's condition expects, and whether this run claimed it."""
        self._stop_claiming()
        with self._lock:
            self._done = True
            if self._claimed is not None:
                return self._claimed, True
            if self._refused is not None:
                raise self._refused
            return self.observed, False

    def finish(
        self,
        *,
        result_json: str | None = None,
        error: TaskFailure | None = None,
        result_ref: str | None = None,
        result_bytes: int | None = None,
    ) -> TaskRecord:
        expected, claimed = self._settle()
        return self._store.finish(
            expected,
            self._clock(),
            claimed=claimed,
            started_at=self.started_at,
            result_json=result_json,
            error=error,
            result_ref=result_ref,
            result_bytes=result_bytes,
        )

    def release(self) -> None:
        expected, claimed = self._settle()
        self._store.release(expected, claimed=claimed)


class TaskRunner:
    def __init__(
        self,
        store: TaskStore,
        payloads: PayloadStore,
        *,
        max_receive_count: int,
        lease_seconds: float,
        clock: Callable[[], float] = time.time,
        on_finished: Callable[[TaskRecord], None] = lambda record: None,
        executions: DurableExecutions | None = None,
    ) -> None:
        self._store = store
        self._payloads = payloads
        # Where durable tasks' executions start (core.adapters.executions): such a task is run by the durable runner.
        self._executions = executions
        self._max_receive_count = max_receive_count
        self._lease_seconds = lease_seconds
        self._clock = clock
        # Called once per task that this runner moved to succeeded or failed (metrics).
        self._on_finished = on_finished

    def handle(self, message: TaskMessage, receive_count: int) -> Outcome:
        """Process one delivery. Returns when the message is done with; raises when SQS should deliver it again."""
        now = self._clock()
        current = view(self._store.get(message.task_id), now)
        if current is None:
            logger.warning("message for a task that no longer exists", extra={"task_id": message.task_id})
            return Outcome(message.task_id, message.task, Disposition.GONE)
        if current.status.is_terminal:
            logger.info("duplicate delivery of a finished task", extra={"task_id": message.task_id})
            return Outcome(message.task_id, message.task, Disposition.ALREADY_FINISHED, current)
        if current.durable:
            return self._start_durable(current)
        last_attempt = receive_count >= self._max_receive_count
        if current.status is TaskStatus.RUNNING and (current.lease_until or 0) >= now:
            if last_attempt and not current.last_attempt:
                self._mark_last_attempt(current)
            raise TaskBusy(f"task {message.task_id} is running elsewhere until its lease ends")
        with TaskRun(self._store, current, self._clock, self._lease_seconds, last_attempt=last_attempt) as run:
            try:
                return self._run(run)
            except TaskBusy:
                raise  # another delivery holds the task or put it back: nothing of this run's to count or record
            except Exception as error:  # noqa: BLE001 - re-raised by _retry_or_give_up once the attempt is counted
                # _run records every failure of the task's own; what reaches here is transient or our infrastructure's.
                return self._retry_or_give_up(run, error, receive_count)

    def _start_durable(self, current: TaskRecord) -> Outcome:
        """A durable task runs in the durable runner, for as long as it takes: start its execution (a redelivery
        finds the one started before: the execution's name is the task's id) and be done with the message. The
        runner records the task running, its steps and its outcome."""
        if self._executions is None:
            raise RuntimeError("TaskRunner needs durable executions to run a durable task")
        execution_arn = self._executions.start(current.task_id, current.task)
        logger.info("durable execution started", extra={"task_id": current.task_id, "execution_arn": execution_arn})
        return Outcome(current.task_id, current.task, Disposition.STARTED, current)

    def _mark_last_attempt(self, running: TaskRecord) -> None:
        """The last delivery found another worker's live claim: no delivery follows this one, so should that worker
        be stopped too, its claim must read as the last attempt."""
        try:
            self._store.mark_last_attempt(running)
        except TransitionRefused:
            pass  # the claim has ended or moved on meanwhile: its own outcome or claim tells the task's state
        except ServiceUnavailable as error:
            logger.warning("could not mark the last attempt", extra={"task_id": running.task_id, "error": str(error)})

    def _run(self, run: TaskRun) -> Outcome:
        record = run.observed
        failure: TaskFailure | None = None
        stored: dict[str, Any] = {}
        try:
            definition = get_task(record.task)
            run.pacer.expected_seconds = definition.expected_seconds
            if run.last_attempt or definition.exclusive:
                # A worker stopped on this attempt (timed out, out of memory) would leave no outcome and no
                # delivery to follow: the claim, marked last, lets readers see the task failed once its lease ends.
                # An exclusive task is claimed before every run: a second delivery then finds it held and waits.
                run.claim()
            inputs = definition.validate(inputs_of(record, self._payloads))
            result = encode_result(definition.function(inputs, run.progress))
            stored = stored_result(record.task_id, result, self._payloads)
        except RunCancelled:
            logger.info("task cancelled while running", extra={"task_id": record.task_id})
            return Outcome(record.task_id, record.task, Disposition.CANCELLED, record)
        except RunTakenOver:
            logger.warning("task was taken by another delivery; stopping this run", extra={"task_id": record.task_id})
            refusal = run.refusal  # it holds the record as the other delivery left it: no need to read it again
            return self._lost_to_another(run, refusal.current if refusal else self._store.get(record.task_id))
        except (ApiError, InputGone, ValueError, TypeError, ArithmeticError, LookupError) as error:
            if isinstance(error, ServiceUnavailable):
                raise
            failure = describe(error)
        except Exception as error:
            if is_transient(error):
                raise
            failure = describe(error)
        return self._finish(run, error=failure, **stored)

    def _finish(self, run: TaskRun, *, error: TaskFailure | None = None, **stored: Any) -> Outcome:
        record = run.observed
        try:
            finished = run.finish(error=error, **stored)
        except TransitionRefused as refused:
            current = refused.current
            status = current.status.value if current else "gone"
            logger.info("task changed while running; outcome dropped", extra={"task_id": record.task_id, "now": status})
            return self._lost_to_another(run, current)
        self._on_finished(finished)
        return Outcome(record.task_id, record.task, Disposition.of(finished.status), finished)

    def _lost_to_another(self, run: TaskRun, current: TaskRecord | None) -> Outcome:
        """This run's record changed under it: another delivery of the message (SQS's duplicate, or a redelivery
        after this run's lease ran out) claimed the task, or claimed it and put it back in the queue. A finished,
        cancelled or vanished task is done with. Any other is left to a later delivery: deleting this delivery's
        message would also delete the one the other delivery relies on (it is the same message), and should that
        delivery's worker then stop, or should the task be back in the queue, nothing would run it again."""
        record = run.observed
        seen = view(current, self._clock())
        if seen is None:
            return Outcome(record.task_id, record.task, Disposition.GONE)
        if seen.status.is_terminal:
            return Outcome(record.task_id, record.task, Disposition.ALREADY_FINISHED, seen)
        if run.last_attempt and seen.status is TaskStatus.RUNNING and not seen.last_attempt:
            self._mark_last_attempt(seen)  # view() changes only a claim past its lease, which is terminal then
        raise TaskBusy(f"task {record.task_id} was taken by another delivery; left to a later one")

    def _retry_or_give_up(self, run: TaskRun, error: Exception, receive_count: int) -> Outcome:
        if receive_count >= self._max_receive_count:
            message = f"gave up after {receive_count} attempts: {describe(error).type}: {error}"
            self._finish(run, error=TaskFailure(type="GaveUp", message=message[:2000]))
            logger.error("task gave up; its message goes to the dead-letter queue", extra={"task_id": run.task_id})
        else:
            try:
                run.release()
            except TransitionRefused:
                logger.info("task changed before release", extra={"task_id": run.task_id})
        raise error
