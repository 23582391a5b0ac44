"""A durable task for the durable bench (bench.durable): `steps` steps that do nothing, so that its run time is the
steps' overhead alone (checkpoints, the step-start write, the replay)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from core.registry import Progress, Steps, TaskInput, task


class EmptySteps(TaskInput):
    steps: Annotated[int, msgspec.Meta(ge=1, le=200)]


@task("empty-steps", durable=True)
def empty_steps(inputs: EmptySteps, progress: Progress, steps: Steps) -> int:
    """`steps` steps returning their index; the result is their sum."""
    return sum(steps.run(f"step {n}", int, n) for n in range(inputs.steps))
