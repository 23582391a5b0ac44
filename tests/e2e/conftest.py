"""The local stack for the e2e tests, started once on free ports; or E2E_BASE_URL, a deployed API.

Against E2E_BASE_URL only the tests of the HTTP contract run; those that need the stack's internals
(the dead-letter queue, test-only tasks, fault injection) are skipped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from devstack import LocalStack
from lrt.auth import resolve_auth
from tests.e2e.e2e_support import e2e_auth, wait_until
from tests.e2e.e2e_tasks import RUNS_DIR

# Short enough that a redelivery takes seconds, longer than any task these tests run.
VISIBILITY_TIMEOUT_SECONDS = 2


@pytest.fixture(scope="package")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the test task e2e-noted-nap notes its runs."""
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="package")
def local_stack(runs_dir: Path) -> Iterator[LocalStack | None]:
    # Package scope: the stack (and the os.environ it sets) is gone before other test packages run.
    if os.environ.get("E2E_BASE_URL"):
        yield None
        return
    stack = LocalStack(
        port=0,
        worker_concurrency=2,
        env={"MULTIPLY_DELAY_SECONDS": "0", RUNS_DIR: str(runs_dir)},
        visibility_timeout=VISIBILITY_TIMEOUT_SECONDS,
        # The test-only tasks, in the API's execution environments too: the fuzzer reaches every task they register.
        task_modules=["tests.e2e.e2e_tasks", "tests.support.extra_tasks"],
    )
    with stack:
        yield stack


@pytest.fixture
def stack(local_stack: LocalStack | None) -> LocalStack:
    if local_stack is None:
        pytest.skip("needs the local stack's internals; E2E_BASE_URL is set")
    return local_stack


@pytest.fixture(scope="package")
def base_url(local_stack: LocalStack | None) -> str:
    return (os.environ.get("E2E_BASE_URL") or (local_stack.api_url if local_stack else "")).rstrip("/")


@pytest.fixture(scope="package")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        # E2E_AUTH=sigv4 (or bearer, with LRT_TOKEN) signs requests for a deployed API that requires auth.
        session.auth = resolve_auth(e2e_auth())
        yield session


@pytest.fixture
def finished(http: requests.Session, base_url: str) -> Callable[..., dict[str, Any]]:
    """Poll a task until it is no longer pending; its final JSON."""

    def poll(task: str, task_id: str, timeout: float = 30, interval: float = 0.1) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            response = http.get(f"{base_url}/{task}/{task_id}", timeout=10)
            assert response.status_code in (200, 202), response.text
            body: dict[str, Any] = response.json()
            return body if response.status_code == 200 else None

        result: dict[str, Any] = wait_until(done, timeout=timeout, interval=interval)
        return result

    return poll
