"""A task for the payload bench (bench.payloads): its result is its input, so both are the size asked for."""

from __future__ import annotations

from core.registry import Progress, TaskInput, task


class EchoInput(TaskInput):
    data: str


@task("echo", max_seconds=60)
def echo(inputs: EchoInput, progress: Progress) -> str:
    """Return `data` as it came."""
    return inputs.data
