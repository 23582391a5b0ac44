"""Durable tasks: what a step costs in time (measured, in process under the durable-execution SDK's own test runner and
on the local stack) and what an hour of a long training run costs (from list prices, beside plain Lambda and Fargate).

List prices of us-east-1 (docs/performance.md names the sources and dates): Lambda durable functions bill each durable
operation (an execution's start, a step, a wait, a retry), the checkpoint data written and the data retained, on top of
the function's requests and GB-seconds (replays included)."""

from __future__ import annotations

import json
import math
import statistics
import time
from typing import Any

from bench.cost import DYNAMODB_PER_WRITE_UNIT, LAMBDA_ARM64_PER_GB_SECOND, LAMBDA_PER_REQUEST

DURABLE_PER_OPERATION = 8.00 / 1e6
DURABLE_PER_GB_WRITTEN = 0.25
DURABLE_PER_GB_MONTH_RETAINED = 0.15
# Fargate, Linux on ARM (Graviton), per hour: the smallest task near a 512 MB function (0.25 vCPU, 0.5 GB).
FARGATE_ARM_PER_VCPU_HOUR = 0.03238
FARGATE_ARM_PER_GB_HOUR = 0.00356
# The runner's retention of an ended execution's checkpoints (template.yaml DurableConfig.RetentionPeriodInDays).
RETENTION_DAYS = 14
# Kept free beyond the longest step before the next one starts in an invocation (core.services.durable).
STEP_MARGIN_SECONDS = 5.0


def hour_of_training(
    *,
    hours: float = 4.0,
    step_minutes: float = 10.0,
    worker_timeout: int = 900,
    memory_mb: int = 512,
    checkpoint_bytes: int = 20_000,
    replay_seconds_per_step: float = 0.01,
) -> dict[str, Any]:
    """The cost of one hour of a `hours`-long durable task of `step_minutes` steps, each checkpointing
    `checkpoint_bytes` (train's weights: ≈ 20 bytes a coefficient), beside the same hours on one plain Lambda
    invocation (were it allowed to run that long) and on Fargate."""
    step_seconds = step_minutes * 60
    steps = math.ceil(hours * 60 / step_minutes)
    # The runner suspends when the next step would not fit in what is left of its invocation.
    steps_per_invocation = max(1, int((worker_timeout - STEP_MARGIN_SECONDS) // (step_seconds + STEP_MARGIN_SECONDS)))
    invocations = math.ceil(steps / steps_per_invocation)
    suspends = invocations - 1
    # Each invocation replays the steps before it from their checkpoints (no work, but billed time).
    replayed = sum(min(steps, n * steps_per_invocation) for n in range(invocations))
    gb = memory_mb / 1024
    compute_seconds = steps * step_seconds + replayed * replay_seconds_per_step
    operations = 1 + steps + suspends
    written_gb = steps * checkpoint_bytes / 1e9
    # Each invocation's RESUME, each step's BEGIN_STEP, one progress report a step and the outcome: about a write unit
    # each (the record stays under 1 KB); the create and its index entry.
    record_writes = invocations + steps + steps + 1 + 2
    durable = {
        "lambda_requests": invocations * LAMBDA_PER_REQUEST,
        "lambda_gb_seconds": compute_seconds * gb * LAMBDA_ARM64_PER_GB_SECOND,
        "durable_operations": operations * DURABLE_PER_OPERATION,
        "checkpoint_data_written": written_gb * DURABLE_PER_GB_WRITTEN,
        "checkpoint_data_retained": written_gb * DURABLE_PER_GB_MONTH_RETAINED * RETENTION_DAYS / 30,
        "task_record_writes": record_writes * DYNAMODB_PER_WRITE_UNIT,
    }
    plain = hours * 3600 * gb * LAMBDA_ARM64_PER_GB_SECOND + LAMBDA_PER_REQUEST
    fargate = hours * (0.25 * FARGATE_ARM_PER_VCPU_HOUR + 0.5 * FARGATE_ARM_PER_GB_HOUR)
    total = sum(durable.values())
    return {
        "hours": hours,
        "step_minutes": step_minutes,
        "worker_timeout_s": worker_timeout,
        "memory_mb": memory_mb,
        "steps": steps,
        "invocations": invocations,
        "durable_operations": operations,
        "usd_per_task_hour": round(total / hours, 5),
        "usd_per_task_hour_breakdown": {key: round(value / hours, 7) for key, value in durable.items()},
        "usd_per_hour_plain_lambda": round(plain / hours, 5),
        "usd_per_hour_fargate_0_25_vcpu_0_5_gb": round(fargate / hours, 5),
    }


def step_overhead_in_process(steps: int = 60, runs: int = 5) -> dict[str, Any]:
    """Milliseconds a checkpointed step adds, in process under the SDK's test runner (its checkpoints in memory): the
    difference between a run of `steps` empty steps and a run of one, per step, median of `runs`."""
    from aws_durable_execution_sdk_python import DurableContext, durable_execution
    from aws_durable_execution_sdk_python_testing import DurableFunctionTestRunner

    from core.adapters.payloads import InMemoryPayloadStore
    from core.services.durable import DurableSteps

    @durable_execution
    def handler(payload: dict[str, Any], context: DurableContext) -> int:
        steps_ = DurableSteps(
            context,
            InMemoryPayloadStore(),
            task_id="bench",
            begin_step=lambda name, index, attempt: None,
            remaining_seconds=lambda: 900.0,
            max_attempts=3,
            invocation_seconds=900,
        )
        return sum(steps_.run(f"step {n}", int, n) for n in range(int(payload["steps"])))

    def timed(count: int) -> float:
        with DurableFunctionTestRunner(handler) as runner:
            started = time.perf_counter()
            result = runner.run(input=json.dumps({"steps": count}))
            elapsed = time.perf_counter() - started
        assert result.status.value == "SUCCEEDED", result.error
        return elapsed

    per_step = []
    for _ in range(runs):
        one, many = timed(1), timed(steps)
        per_step.append((many - one) / (steps - 1) * 1000)
    return {"steps": steps, "runs": runs, "ms_per_step_median": round(statistics.median(per_step), 2)}


EMPTY_STEPS_MODULE = "bench.empty_steps"


def step_overhead_local(steps: int = 20, runs: int = 5) -> dict[str, Any]:
    """Milliseconds a checkpointed step adds on the local stack (the real runner in its own processes, checkpoints
    through the stack's Lambda service to the SDK's emulator, each step's start written to the table): a task of
    `steps` empty steps against one of a single step, each timed by its record (from its first invocation's start to
    its outcome, so the client's polling is not counted), per step, median of `runs`."""
    from devstack.stack import LocalStack
    from lrt import TaskClient

    def timed(client: TaskClient, count: int) -> float:
        task = client.submit("empty-steps", steps=count)
        done = client.wait("empty-steps", task.task_id, timeout=120)
        if done.status != "succeeded" or done.started_at is None or done.finished_at is None:
            raise RuntimeError(f"the bench's durable task did not succeed: {done}")
        return (done.finished_at - done.started_at).total_seconds()

    per_step = []
    with LocalStack(port=0, task_modules=[EMPTY_STEPS_MODULE]) as stack:
        client = TaskClient(stack.api_url)
        timed(client, 1)  # the runner's environment warm, as in use
        for _ in range(runs):
            one, many = timed(client, 1), timed(client, steps)
            per_step.append((many - one) / (steps - 1) * 1000)
    return {"steps": steps, "runs": runs, "ms_per_step_median": round(statistics.median(per_step), 1)}
