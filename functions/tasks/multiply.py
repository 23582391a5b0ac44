"""The original example task: multiply two numbers, slowly."""

from __future__ import annotations

import os
import time

from core.registry import FiniteNumber, Progress, TaskInput, task


def _delay_seconds() -> float:
    # As the original slow_multiply; MULTIPLY_DELAY_SECONDS (the template's MultiplyDelaySeconds) changes it.
    return float(os.environ.get("MULTIPLY_DELAY_SECONDS", "10"))


class MultiplyInput(TaskInput):
    x: FiniteNumber
    y: FiniteNumber


# Its run time is its delay: a client waiting on it is told to come back then (one GET, not one a second).
@task("multiply", expected_seconds=_delay_seconds(), max_seconds=_delay_seconds() + 5)
def slow_multiply(inputs: MultiplyInput, progress: Progress) -> int | float:
    """Return x * y after MULTIPLY_DELAY_SECONDS (10 by default, as in the original), reporting progress."""
    delay = _delay_seconds()
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < delay:
        progress(elapsed / delay)
        time.sleep(min(1.0, delay - elapsed))
    return inputs.x * inputs.y
