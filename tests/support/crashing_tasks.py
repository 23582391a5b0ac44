"""Tasks that end their worker's runtime, for the tests of the local stack's worker processes. Not among the tasks
of the stack the e2e fuzzer reaches: each submission would cost a worker process."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from core.registry import Progress, TaskInput, task


class Nothing(TaskInput):
    pass


@task("exit-runtime")
def exit_runtime(inputs: Nothing, progress: Progress) -> None:
    """As a task that calls sys.exit, or a library that does: Lambda's runtime exits with it."""
    sys.exit(3)


class Marker(TaskInput):
    marker: str


@task("crash-once")
def crash_once(inputs: Marker, progress: Progress) -> str:
    """Ends its worker's process on its first run (the marker file not there yet), as a container killed mid-batch;
    runs on the next delivery."""
    marker = Path(inputs.marker)
    if not marker.exists():
        marker.write_text("crashed")
        os._exit(9)
    return "survived"
