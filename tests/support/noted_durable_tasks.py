"""A durable task for the local stack's tests of the real durable runner (tests/integration/test_durable_runner_local.py):
each step notes its run, and the process that ran it, in a file of DURABLE_MARKS_DIR (read with
tests.support.durable_handlers.runs), then sleeps."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import msgspec

from core.registry import Progress, Steps, TaskInput, task
from tests.support.durable_handlers import MARKS_DIR


class NotedSteps(TaskInput):
    note: Annotated[str, msgspec.Meta(pattern="^[a-z0-9-]{1,64}$")]
    steps: Annotated[int, msgspec.Meta(ge=1, le=10)]
    seconds: Annotated[float, msgspec.Meta(ge=0, le=10)]


def noted_step(note: str, step: str, seconds: float) -> int:
    with (Path(os.environ[MARKS_DIR]) / note).open("a") as notes:
        notes.write(f"{step} {os.getpid()}\n")
    time.sleep(seconds)
    return os.getpid()


@task("durable-noted-steps", durable=True)
def noted_steps(inputs: NotedSteps, progress: Progress, steps: Steps) -> list[int]:
    """`steps` steps of `seconds` each; the result is the process id each ran in."""
    pids = []
    for n in range(inputs.steps):
        pids.append(steps.run(f"step-{n}", noted_step, inputs.note, f"step-{n}", inputs.seconds))
        progress((n + 1) / inputs.steps)
    return pids
