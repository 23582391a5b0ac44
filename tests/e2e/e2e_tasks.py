"""Test-only tasks, registered in the module-global registry before the local stack starts."""

from __future__ import annotations

import time

from core.errors import RetryableTaskError
from core.registry import FiniteNumber, Progress, TaskInput, task


class NapInput(TaskInput):
    seconds: FiniteNumber


class NoInput(TaskInput):
    pass


@task("e2e-nap", max_seconds=30)
def nap(inputs: NapInput, progress: Progress) -> str:
    """Sleep, reporting progress, so that a test can cancel it while it is queued or running."""
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < inputs.seconds:
        progress(elapsed / inputs.seconds)
        time.sleep(0.05)
    return "rested"


@task("e2e-fail", max_seconds=5)
def fail(inputs: NoInput, progress: Progress) -> None:
    """A task whose own code fails: the task ends failed, the message is done with."""
    raise ValueError("this task always fails")


@task("e2e-poison", max_seconds=5)
def poison(inputs: NoInput, progress: Progress) -> None:
    """Fails transiently on every delivery: retried until the redrive policy moves it to the dead-letter queue."""
    raise RetryableTaskError("still not ready")


class NoteInput(TaskInput):
    seconds: FiniteNumber
    # A file that each run appends a line to: the test counts the runs, whichever worker process made them.
    runs_file: str


@task("e2e-noted-nap", max_seconds=30)
def noted_nap(inputs: NoteInput, progress: Progress) -> str:
    """Notes each run in a file, then sleeps, reporting progress."""
    with open(inputs.runs_file, "a") as runs:
        runs.write("run\n")
    return nap(NapInput(seconds=inputs.seconds), progress)
