"""Helpers shared by the e2e tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

POLL_TIMEOUT_SECONDS = 30


def wait_until(condition: Callable[[], Any], timeout: float = POLL_TIMEOUT_SECONDS, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)
