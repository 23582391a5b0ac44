"""The local stack's worker processes, as `make run` runs them: one that Lambda would end (an invocation past its
timeout, a runtime that exits) ends, and another takes its place.

Not among the e2e tests: each test here starts a stack of its own in this process, which must not run beside the
e2e package's stack (both set the functions' environment in os.environ)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from devstack import LocalStack
from devstack.template import DEFAULT_TEMPLATE
from tests.e2e.e2e_support import wait_until


def _worker_replaced(stack: LocalStack, before: list[int]) -> bool:
    pids = stack.worker_pids
    return len(pids) == len(before) and pids != before


@pytest.mark.parametrize(
    ("task", "inputs", "worker_timeout"),
    [
        pytest.param("exit-runtime", {}, None, id="the task exits its runtime"),
        pytest.param("nap", {"seconds": 2}, 1, id="the task runs past the worker's timeout"),
    ],
)
def test_a_worker_process_that_lambda_would_end_is_ended_and_replaced(
    tmp_path: Path, task: str, inputs: dict[str, Any], worker_timeout: int | None
) -> None:
    # GIVEN the stack with its worker in processes, a template whose worker times out after `worker_timeout`
    template = DEFAULT_TEMPLATE
    if worker_timeout is not None:
        text = DEFAULT_TEMPLATE.read_text()
        # The worker's own Timeout: the first after its resource's name (the durable runner's comes later).
        worker = text.index("\n  WorkerFunction:\n")
        line = text.index("      Timeout: !Ref WorkerTimeout\n", worker)
        template = tmp_path / "template.yaml"
        template.write_text(text[:line] + f"      Timeout: {worker_timeout}\n" + text[line:].split("\n", 1)[1])
    stack = LocalStack(
        template=template,
        port=0,
        env={"MULTIPLY_DELAY_SECONDS": "0"},
        visibility_timeout=60,
        task_modules=["tests.support.extra_tasks", "tests.support.crashing_tasks"],
    )
    with stack:
        before = stack.worker_pids

        # WHEN a task ends its worker's execution environment
        submitted = requests.post(f"{stack.api_url}/{task}", json=inputs, timeout=10)
        assert submitted.status_code == 202, submitted.text

        # THEN that process ends and another takes its place
        assert wait_until(lambda: _worker_replaced(stack, before), timeout=30)
        # AND the stack runs tasks as before
        multiply = requests.post(f"{stack.api_url}/multiply", json={"x": 6, "y": 7}, timeout=10)
        location = f"{stack.api_url}{multiply.headers['Location']}"
        result = wait_until(lambda: (r := requests.get(location, timeout=10)).status_code == 200 and r.json())
        assert result["result"] == 42


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    """Redeliveries after 2 s: a killed process's long poll, still open in the emulator for up to a second, may take
    the next message, as SQS would; it comes back after that."""
    with LocalStack(
        port=0, env={"MULTIPLY_DELAY_SECONDS": "0"}, visibility_timeout=2, task_modules=["tests.support.crashing_tasks"]
    ) as stack:
        yield stack


def test_a_worker_process_killed_from_outside_is_replaced(stack: LocalStack) -> None:
    # GIVEN the stack with its worker in processes
    before = stack.worker_pids

    # WHEN one is killed while idle, as the OOM killer would (it was waiting for its stop signal)
    os.kill(before[0], signal.SIGKILL)

    # THEN another takes its place
    assert wait_until(lambda: _worker_replaced(stack, before), timeout=30)
    # AND the stack runs tasks as before
    multiply = requests.post(f"{stack.api_url}/multiply", json={"x": 6, "y": 7}, timeout=10)
    location = f"{stack.api_url}{multiply.headers['Location']}"
    result = wait_until(lambda: (r := requests.get(location, timeout=10)).status_code == 200 and r.json())
    assert result["result"] == 42


def test_a_worker_invocation_that_crashes_mid_batch_loses_nothing(stack: LocalStack, tmp_path: Path) -> None:
    # GIVEN the stack, and among many tasks one whose first run ends its worker's process (a container killed
    # mid-batch: the batch's other messages, run or not, are not deleted)
    marker = tmp_path / "crashed"

    def submit(task: str, inputs: dict[str, Any]) -> str:
        response = requests.post(f"{stack.api_url}/{task}", json=inputs, timeout=10)
        assert response.status_code == 202, response.text
        return f"{stack.api_url}{response.headers['Location']}"

    def result(location: str) -> Any:
        return wait_until(lambda: (r := requests.get(location, timeout=10)).status_code == 200 and r.json())

    # WHEN they are submitted at once
    with ThreadPoolExecutor(max_workers=10) as pool:
        locations = list(pool.map(lambda n: submit("multiply", {"x": n, "y": 3}), range(10)))
        crashing = submit("crash-once", {"marker": str(marker)})
        locations += list(pool.map(lambda n: submit("multiply", {"x": n, "y": 3}), range(10, 20)))
        results = list(pool.map(result, locations))
        crashed = result(crashing)

    # THEN the crash happened, and every task still succeeded, once
    assert marker.exists()
    assert crashed["result"] == "survived"
    assert [r["result"] for r in results] == [n * 3 for n in range(20)]
    assert all(r["attempts"] == 1 for r in results)
