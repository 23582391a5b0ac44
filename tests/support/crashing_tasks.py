"""A task that ends its worker's runtime, for the tests of the local stack's worker processes. Not among the tasks
of the stack the e2e fuzzer reaches: each submission would cost a worker process."""

from __future__ import annotations

import sys

from core.registry import Progress, TaskInput, task


class Nothing(TaskInput):
    pass


@task("exit-runtime")
def exit_runtime(inputs: Nothing, progress: Progress) -> None:
    """As a task that calls sys.exit, or a library that does: Lambda's runtime exits with it."""
    sys.exit(3)
