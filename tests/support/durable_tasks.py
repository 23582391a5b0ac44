"""Durable tasks that exist only in tests: they count their steps' runs, fail, retry and cancel themselves in the
ways the durable runner must handle."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import msgspec

from core.errors import RetryableTaskError
from core.registry import Progress, Steps, TaskInput, task

# How often each step's function ran, by (run key, step): a replayed step does not run.
runs: dict[tuple[str, str], int] = {}
# Called by `durable-hook` between its steps (a test cancels the task there).
hooks: dict[str, Callable[[], None]] = {}


class Plan(TaskInput):
    key: str
    steps: Annotated[int, msgspec.Meta(ge=1, le=50)] = 3
    # The step (by index) that meets a busy dependency on its first attempt, or that fails for good.
    flaky: int | None = None
    failing: int | None = None
    # The step whose value is this many characters (more than a checkpoint holds goes to the payload bucket).
    large: int | None = None
    large_size: int = 0


def _step(key: str, index: int, plan: Plan) -> int | str:
    count = runs[(key, f"step {index}")] = runs.get((key, f"step {index}"), 0) + 1
    if index == plan.flaky and count == 1:
        raise RetryableTaskError("the dependency is busy")
    if index == plan.failing:
        raise ValueError(f"step {index} cannot work")
    if index == plan.large:
        return "x" * plan.large_size
    return index * 10


@task("durable-steps", durable=True)
def durable_steps(inputs: Plan, progress: Progress, steps: Steps) -> list[int | str]:
    """Runs `steps` steps, each returning its index times ten (or its large value)."""
    values = []
    for index in range(inputs.steps):
        values.append(steps.run(f"step {index}", _step, inputs.key, index, inputs))
        progress((index + 1) / inputs.steps)
    return values


class Keyed(TaskInput):
    key: str


@task("durable-twice", durable=True)
def durable_twice(inputs: Keyed, progress: Progress, steps: Steps) -> int:
    """Names two steps alike: not allowed."""
    steps.run("same", int, 1)
    return steps.run("same", int, 2)


@task("durable-hook", durable=True)
def durable_hook(inputs: Keyed, progress: Progress, steps: Steps) -> int:
    """Calls the test's hook after its first step, then runs a second."""

    def first() -> int:
        runs[(inputs.key, "first")] = runs.get((inputs.key, "first"), 0) + 1
        hooks[inputs.key]()
        return 1

    def second() -> int:
        runs[(inputs.key, "second")] = runs.get((inputs.key, "second"), 0) + 1
        return 2

    return steps.run("first", first) + steps.run("second", second)
