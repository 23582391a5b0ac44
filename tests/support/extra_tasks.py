"""Tasks that exist only in tests: they fail, retry and count in the ways the worker must handle."""

from __future__ import annotations

from typing import Annotated

import msgspec

from core.errors import RetryableTaskError
from core.registry import Progress, TaskInput, task


class Nothing(TaskInput):
    pass


class Count(TaskInput):
    n: int


calls: dict[str, int] = {}


@task("always-transient", max_seconds=5)
def always_transient(inputs: Nothing, progress: Progress) -> None:
    """Meets a busy dependency every time: a poison message."""
    raise RetryableTaskError("the dependency is busy")


@task("always-fails", max_seconds=5)
def always_fails(inputs: Nothing, progress: Progress) -> None:
    raise ValueError("this input can never work")


@task("counting", max_seconds=5)
def counting(inputs: Count, progress: Progress) -> int:
    """Counts its runs, so that a test sees a task run twice."""
    calls[str(inputs.n)] = calls.get(str(inputs.n), 0) + 1
    return inputs.n


@task("exclusive-counting", exclusive=True, max_seconds=5)
def exclusive_counting(inputs: Count, progress: Progress) -> int:
    """Counts its runs, claimed before each."""
    calls[f"exclusive-{inputs.n}"] = calls.get(f"exclusive-{inputs.n}", 0) + 1
    return inputs.n


class Sized(TaskInput):
    size: Annotated[int, msgspec.Meta(ge=0, le=5_000_000)] = 400_000


@task("huge-result", max_seconds=5)
def huge_result(inputs: Sized, progress: Progress) -> str:
    """A result of `size` characters (and two quotes)."""
    return "x" * inputs.size


class Nap(TaskInput):
    # Bounded: the e2e fuzzer reaches every registered task, and a nap that reports no progress can't be cut short.
    seconds: Annotated[float, msgspec.Meta(ge=0, le=2)]


@task("nap", max_seconds=5)
def nap(inputs: Nap, progress: Progress) -> float:
    """Sleeps without reporting progress."""
    import time

    time.sleep(inputs.seconds)
    return inputs.seconds


@task("declared-slow", max_seconds=20)
def declared_slow(inputs: Count, progress: Progress) -> int:
    """Says a run may take 20 s (it takes none): the worker starts it only with that much time left."""
    calls[f"declared-slow-{inputs.n}"] = calls.get(f"declared-slow-{inputs.n}", 0) + 1
    return inputs.n


@task("undeclared")
def undeclared(inputs: Count, progress: Progress) -> int:
    """Says nothing of how long it may run: the worker runs it only first in a batch."""
    return inputs.n
