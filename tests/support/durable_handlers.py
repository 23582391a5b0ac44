"""A durable handler for the local stack's durable execution tests (tests/support/durable_template.yaml): each step
notes its run, and the process that ran it, in a file of DURABLE_MARKS_DIR named after the execution; a step named in
the event's `first_run_seconds` sleeps that long on its first run only, so that a test can kill it there."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from aws_durable_execution_sdk_python import DurableContext, StepContext, durable_execution
from aws_durable_execution_sdk_python.config import StepConfig
from aws_durable_execution_sdk_python.retries import RetryStrategyConfig, create_retry_strategy

MARKS_DIR = "DURABLE_MARKS_DIR"
# A step that raises fails at once (the SDK's default retries it, with backoff).
NO_RETRY = StepConfig(retry_strategy=create_retry_strategy(RetryStrategyConfig(max_attempts=1)))


def runs(marks: Path, step: str) -> list[int]:
    """The process ids that ran `step`, in order."""
    lines = marks.read_text().splitlines() if marks.exists() else []
    return [int(pid) for name, pid in (line.split() for line in lines) if name == step]


def run_step(marks: Path, step: str, event: dict[str, Any]) -> int:
    first = not runs(marks, step)
    with marks.open("a") as notes:
        notes.write(f"{step} {os.getpid()}\n")
    if first:
        time.sleep(event.get("first_run_seconds", {}).get(step, 0))
    if step in event.get("fail", []):
        raise ValueError(f"{step} fails")
    return os.getpid()


@durable_execution
def handler(event: dict[str, Any], context: DurableContext) -> dict[str, Any]:
    marks = Path(os.environ[MARKS_DIR]) / event["name"]
    pids = {}
    for step in (f"step-{n}" for n in range(event["steps"])):

        def body(_: StepContext, step: str = step) -> int:
            return run_step(marks, step, event)

        pids[step] = context.step(body, name=step, config=NO_RETRY)
    return pids
