"""What a call costs: its wall time, and the most memory it holds at once (tracemalloc sees numpy's arrays too)."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Cost[T]:
    result: T
    seconds: float
    peak_bytes: int


def measure[T](call: Callable[[], T]) -> Cost[T]:
    started = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - started
    # A second call for the memory: tracing every allocation slows the call down.
    tracemalloc.start()
    try:
        call()
        peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return Cost(result, seconds, peak_bytes)
