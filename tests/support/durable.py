"""Runs a durable task's function under the durable-execution SDK's own test runner (DurableFunctionTestRunner:
steps checkpointed, replayed and retried as the Lambda service does), with no store and no AWS: for unit tests of
durable tasks."""

from __future__ import annotations

import json
from typing import Any

from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python_testing import DurableFunctionTestResult, DurableFunctionTestRunner

from core.adapters.payloads import InMemoryPayloadStore
from core.registry import get_task
from core.services.durable import DurableSteps
from core.services.runner import encode_result


def run_durable_task(
    name: str,
    inputs: dict[str, Any],
    *,
    invocation_seconds: float = 60,
    remaining_seconds: float = 900,
    progress: list[float] | None = None,
) -> tuple[DurableFunctionTestResult, Any]:
    """The task's execution and its result (decoded JSON, as GET shows it); the progress it reported appended to
    `progress`."""
    definition = get_task(name)
    payloads = InMemoryPayloadStore()
    reported = progress if progress is not None else []

    @durable_execution
    def handler(payload: dict[str, Any], context: DurableContext) -> Any:
        steps = DurableSteps(
            context,
            payloads,
            task_id="unit-test",
            begin_step=lambda step, index, attempt: None,
            remaining_seconds=lambda: remaining_seconds,
            max_attempts=3,
            invocation_seconds=invocation_seconds,
        )

        def progress_of(fraction: float) -> None:
            if not context.is_replaying():
                reported.append(fraction)

        result = definition.function(definition.validate(payload), progress_of, steps)
        return json.loads(encode_result(result))

    with DurableFunctionTestRunner(handler) as runner:
        execution = runner.run(input=json.dumps(inputs), execution_name=name)
    return execution, json.loads(execution.result) if execution.result else None
