"""A durable task's run: the durable runner (a Lambda durable function) hands each of its invocations here.

The Lambda service checkpoints every step (`Steps.run`, over the SDK's `context.step`) and, after a failure or a
suspension, invokes the function again: the task's function then runs from its start, completed steps return their
checkpointed values without running, and the first step not completed runs. So each invocation:

1. resumes the task (RESUME: queued | running -> running, the execution recorded, the invocation counted, a lease
   for its time); a cancelled or ended task ends the execution here;
2. runs the task's function with `steps`: a step that is not a replay first records that it starts (BEGIN_STEP,
   refused after a cancel: no step starts after it; a step started more than MaxReceiveCount times without
   completing fails the task), and after it decides, from the time left, whether the next step starts in this
   invocation or the execution suspends for a second (a new invocation, with a whole WorkerTimeout, takes over);
3. records the outcome (FINISH), as the worker does for a plain task.

The decision to suspend is part of the step's checkpointed value, so that a replay takes the same path (the SDK
refuses a replay whose operations differ from the checkpoints'). A step's value goes to the payload bucket when it is
too large for a checkpoint, and the checkpoint keeps its key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from aws_durable_execution_sdk_python import DurableContext, ExecutionError, InvocationError, StepContext, StepError
from aws_durable_execution_sdk_python.config import Duration, StepConfig
from aws_durable_execution_sdk_python.retries import RetryDecision, RetryStrategyConfig, create_retry_strategy
from aws_durable_execution_sdk_python.serdes import JsonSerDes

from core.adapters.payloads import PayloadStore
from core.domain.lifecycle import view
from core.domain.progress import ProgressPacer, clamped
from core.domain.records import TaskFailure, TaskRecord
from core.domain.store import TaskStore, TransitionRefused
from core.errors import ApiError, ServiceUnavailable
from core.registry import TaskDefinition, get_task
from core.services.runner import InputGone, describe, encode_result, inputs_of, is_transient, stored_result

logger = logging.getLogger(__name__)

# A step's value above this goes to the payload bucket and its checkpoint holds the key: the service's checkpoint
# payload limit is 256 KB, and the step's record in the checkpoint has its own fields beside the value.
CHECKPOINT_VALUE_MAX_BYTES = 200 * 1024
# Kept free at the end of an invocation beyond the longest step so far, before the next step is started in it.
STEP_MARGIN_SECONDS = 5.0
# Beyond the invocation's remaining time, so that a live invocation is never taken for an ended one.
LEASE_MARGIN_SECONDS = 5.0
# How long the execution suspends before a step that would not fit in this invocation: the least the SDK allows.
SUSPEND_SECONDS = 1
# Of an invocation's time, what a step may take: the rest is for the invocation's start, the replay of the steps before
# it, and its checkpoint.
STEP_SHARE = 0.8


class EndExecution(ExecutionError):
    """The execution ends now, without retry: the task was cancelled or has ended, or a step failed it for being
    interrupted too often. Raised inside a step, it skips the SDK's retry strategy."""


def checkpoint_key(task_id: str, step: str) -> str:
    return f"checkpoints/{task_id}/{hashlib.sha256(step.encode()).hexdigest()[:32]}"


class DurableRun:
    """One invocation's hold on its task: every write is conditional on the record as this invocation last wrote
    it, so a cancel (or anything else that changed the task) refuses the next one."""

    def __init__(
        self,
        store: TaskStore,
        record: TaskRecord,
        *,
        clock: Callable[[], float],
        remaining_seconds: Callable[[], float],
        max_interruptions: int,
        replaying: Callable[[], bool],
    ) -> None:
        self.record = record
        self._store = store
        self._clock = clock
        self._remaining_seconds = remaining_seconds
        self._max_interruptions = max_interruptions
        self._replaying = replaying
        self.pacer = ProgressPacer(record.started_at or clock())

    @property
    def lease_seconds(self) -> float:
        return self._remaining_seconds() + LEASE_MARGIN_SECONDS

    def begin_step(self, name: str, index: int, attempt: int) -> None:
        """Record that step `name` (the `index`th of the run, its SDK `attempt`) starts; EndExecution when the task
        was cancelled, or when the step has been interrupted MaxReceiveCount times (the task fails)."""
        current = self.record
        same_step = current.current_step == name and current.steps_done == index
        starts = current.step_attempts + 1 if same_step else 1
        # Each of the SDK's attempts starts once; any other start followed an interrupted one.
        if starts - attempt >= self._max_interruptions:
            message = (
                f"step {name!r} was interrupted {starts - attempt} times (its invocation crashed, ran out of memory, or "
                "outran WorkerTimeout): a step must fit in one invocation"
            )
            self.finish(error=TaskFailure(type="StepInterrupted", message=message), steps_done=index)
            raise EndExecution(message)
        try:
            self.record = self._store.begin_step(
                current, self._clock(), self.lease_seconds, name=name, steps_done=index, step_attempts=starts
            )
        except TransitionRefused as refused:
            raise EndExecution(f"task {current.task_id} changed: {_status(refused.current)}") from refused

    def progress(self, fraction: float) -> None:
        """The task's Progress callback, paced as a plain task's; ignored while completed steps are replayed (their
        reports were written when they ran); stops a cancelled task."""
        if self._replaying():
            return
        now = self._clock()
        if not self.pacer.due(now):
            return
        fraction = clamped(fraction)
        if not self.pacer.worth_writing(fraction, now):
            return
        try:
            self._store.report_progress(self.record, fraction, now)
            self.pacer.written(fraction, now)
        except TransitionRefused as refused:
            raise EndExecution(f"task {self.record.task_id} changed: {_status(refused.current)}") from refused
        except ServiceUnavailable as error:
            logger.warning("progress not recorded", extra={"task_id": self.record.task_id, "error": str(error)})

    def finish(self, *, error: TaskFailure | None = None, steps_done: int, **stored: Any) -> TaskRecord | None:
        """The task's outcome; None when the task changed meanwhile (cancelled): its state stands."""
        try:
            return self._store.finish(
                self.record,
                self._clock(),
                claimed=True,
                started_at=self.record.started_at or self._clock(),
                error=error,
                steps_done=steps_done,
                **stored,
            )
        except TransitionRefused as refused:
            logger.info("task changed before its outcome; outcome dropped", extra={"task_id": self.record.task_id})
            self.record = refused.current or self.record
            return None


class DurableSteps:
    """`Steps` over the durable-execution SDK: each `run` is one checkpointed step."""

    def __init__(
        self,
        context: DurableContext,
        payloads: PayloadStore,
        *,
        task_id: str,
        begin_step: Callable[[str, int, int], None],
        remaining_seconds: Callable[[], float],
        max_attempts: int,
        invocation_seconds: float,
    ) -> None:
        self._context = context
        self.step_seconds = max(1.0, invocation_seconds * STEP_SHARE - STEP_MARGIN_SECONDS)
        self._task_id = task_id
        # Called before a step runs (not when it is replayed) with its name, index and the SDK's attempt number.
        self._begin_step = begin_step
        self._payloads = payloads
        self._remaining_seconds = remaining_seconds
        self._names: set[str] = set()
        self._completed = 0
        self._longest = 0.0
        backoff = create_retry_strategy(RetryStrategyConfig(max_attempts=max_attempts))

        def retry(error: Exception, attempt: int) -> RetryDecision:
            # As a plain task: retried on what a later attempt may not meet, failed on anything else.
            return backoff(error, attempt) if is_transient(error) else RetryDecision.no_retry()

        self._config = StepConfig(retry_strategy=retry, serdes=JsonSerDes())

    @property
    def done(self) -> int:
        """Steps completed (run or replayed) so far in this run."""
        return self._completed

    def run(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        if not isinstance(name, str) or not name.strip():
            raise ValueError("a step needs a name")
        if name in self._names:
            raise ValueError(f"step name {name!r} is used twice in this run: step names are unique within a run")
        index = len(self._names)
        self._names.add(name)

        def body(step: StepContext) -> dict[str, Any]:
            self._begin_step(name, index, step.attempt)
            started = time.monotonic()
            value = fn(*args)
            seconds = time.monotonic() - started
            checkpoint = self._checkpointed(name, value)
            checkpoint["seconds"] = round(seconds, 3)
            # Decided here, with the step: a replay reads the same decision from the checkpoint.
            checkpoint["suspend"] = self._remaining_seconds() < max(self._longest, seconds) + STEP_MARGIN_SECONDS
            return checkpoint

        checkpoint = self._context.step(body, name=name, config=self._config)
        self._completed += 1
        self._longest = max(self._longest, float(checkpoint["seconds"]))
        value = checkpoint["value"] if "ref" not in checkpoint else self._referenced(str(checkpoint["ref"]))
        if checkpoint["suspend"]:
            self._context.wait(Duration.from_seconds(SUSPEND_SECONDS), name=f"{name}: next step in a new invocation")
        return value

    def _checkpointed(self, name: str, value: Any) -> dict[str, Any]:
        try:
            encoded = json.dumps(value, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"step {name!r} returned a value that is not JSON: {exc}") from exc
        if len(encoded) <= CHECKPOINT_VALUE_MAX_BYTES:
            return {"value": json.loads(encoded)}
        key = checkpoint_key(self._task_id, name)
        self._payloads.put(key, encoded.encode())
        return {"ref": key}

    def _referenced(self, key: str) -> Any:
        data = self._payloads.get(key)
        if data is None:
            raise InputGone(f"a step's value ({key}) is no longer in the payload bucket")
        return json.loads(data)


class DurableRunner:
    """What each invocation of the durable runner does for its task (see the module's docstring)."""

    def __init__(
        self,
        store: TaskStore,
        payloads: PayloadStore,
        *,
        max_receive_count: int,
        invocation_seconds: float,
        clock: Callable[[], float] = time.time,
        on_finished: Callable[[TaskRecord], None] = lambda record: None,
    ) -> None:
        self._store = store
        self._payloads = payloads
        self._max_receive_count = max_receive_count
        # The runner's Timeout (WorkerTimeout): one invocation's time, the same for every invocation of a run.
        self._invocation_seconds = invocation_seconds
        self._clock = clock
        self._on_finished = on_finished

    def run(
        self, payload: dict[str, Any], context: DurableContext, remaining_seconds: Callable[[], float] | None = None
    ) -> dict[str, Any]:
        """One invocation for the task `payload` names; what it returns is the execution's result when it ends."""
        task_id = str(payload["task_id"])
        remaining = remaining_seconds or _remaining_of(context)
        try:
            record = self._resume(task_id, context, remaining)
        except (ServiceUnavailable, TimeoutError, ConnectionError) as error:
            # This invocation fails and Lambda invokes the execution again: nothing of the task has run.
            raise InvocationError(f"the task could not be resumed: {error}") from error
        if record is None:
            return {"task_id": task_id, "status": _status(self._store.get(task_id))}
        run = DurableRun(
            self._store,
            record,
            clock=self._clock,
            remaining_seconds=remaining,
            max_interruptions=self._max_receive_count,
            replaying=context.is_replaying,
        )
        steps = DurableSteps(
            context,
            self._payloads,
            task_id=task_id,
            begin_step=run.begin_step,
            remaining_seconds=remaining,
            max_attempts=self._max_receive_count,
            invocation_seconds=self._invocation_seconds,
        )
        try:
            definition = get_task(record.task)
            run.pacer.expected_seconds = definition.expected_seconds
            outcome = self._outcome(definition, record, run, steps)
        except (ServiceUnavailable, TimeoutError, ConnectionError) as error:
            raise InvocationError(f"the task's run was interrupted: {error}") from error
        finished = run.finish(steps_done=steps.done, **outcome)
        if finished is not None:
            self._on_finished(finished)
            return {"task_id": task_id, "status": finished.status.value}
        return {"task_id": task_id, "status": _status(run.record)}

    def _resume(self, task_id: str, context: DurableContext, remaining: Callable[[], float]) -> TaskRecord | None:
        try:
            return self._store.resume(
                task_id,
                self._clock(),
                remaining() + LEASE_MARGIN_SECONDS,
                execution_arn=context.execution_context.durable_execution_arn,
            )
        except TransitionRefused as refused:
            current = view(refused.current, self._clock())
            logger.info("durable task not resumed: %s", _status(current), extra={"task_id": task_id})
            return None

    def _outcome(
        self, definition: TaskDefinition, record: TaskRecord, run: DurableRun, steps: DurableSteps
    ) -> dict[str, Any]:
        """The finish write's outcome: the stored result, or `error`. A transient failure outside the steps is
        raised, so that the invocation is tried again."""
        try:
            inputs = definition.validate(inputs_of(record, self._payloads))
            result = encode_result(definition.function(inputs, run.progress, steps))
            return stored_result(record.task_id, result, self._payloads)
        except StepError as error:
            # A step failed for good (its own exception, or its retries used up): the same on every replay.
            failure = TaskFailure(type=error.error_type.rpartition(".")[2], message=(error.message or "")[:2000])
            return {"error": failure}
        except (ApiError, InputGone, ValueError, TypeError, ArithmeticError, LookupError) as error:
            if isinstance(error, ServiceUnavailable):
                raise
            return {"error": describe(error)}
        except ExecutionError:
            raise
        except Exception as error:
            if is_transient(error):
                raise
            return {"error": describe(error)}


def _remaining_of(context: DurableContext) -> Callable[[], float]:
    lambda_context = context.lambda_context
    if lambda_context is None:
        raise RuntimeError("the durable runner needs its Lambda context's remaining time")
    return lambda: lambda_context.get_remaining_time_in_millis() / 1000


def _status(record: TaskRecord | None) -> str:
    return record.status.value if record is not None else "gone"
