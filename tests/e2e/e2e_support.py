"""Helpers shared by the e2e tests."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, cast

from lrt.auth import AuthOption

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


def e2e_auth() -> AuthOption:
    """E2E_AUTH: none (default), sigv4 or bearer."""
    value = os.environ.get("E2E_AUTH", "none")
    if value not in ("none", "sigv4", "bearer"):
        raise ValueError(f"E2E_AUTH must be none, sigv4 or bearer, not {value!r}")
    return cast(AuthOption, value)
