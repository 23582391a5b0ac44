"""The durable runner (functions/durable/app.py) on the local stack, as `python -m devstack --parameter
WorkerTimeout=30` runs it: each of its invocations in an execution environment process, its checkpoints in the
durable execution emulator. A task longer than an invocation succeeds, one whose runner process is killed mid-step
resumes from its last completed step, and a cancel stops the steps.

Not among the e2e tests: the stack here runs in this process, which must not run beside the e2e package's stack (both
set the functions' environment in os.environ)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from devstack import LocalStack
from tests.e2e.e2e_support import wait_until
from tests.support.durable_handlers import MARKS_DIR, runs

RUNNER = "DurableRunnerFunction"
WORKER_TIMEOUT = 30


@pytest.fixture(scope="module")
def marks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("marks")


@pytest.fixture(scope="module")
def stack(marks: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(
        port=0,
        env={MARKS_DIR: str(marks)},
        parameter_overrides={"WorkerTimeout": str(WORKER_TIMEOUT)},
        task_modules=["tests.support.noted_durable_tasks"],
        state_dir=tmp_path_factory.mktemp("state"),
    ) as stack:
        yield stack


def submit(stack: LocalStack, note: str, steps: int, seconds: float) -> str:
    response = requests.post(
        f"{stack.api_url}/durable-noted-steps", json={"note": note, "steps": steps, "seconds": seconds}, timeout=10
    )
    assert response.status_code == 202, response.text
    task_id: str = response.json()["task_id"]
    return task_id


def task(stack: LocalStack, task_id: str) -> dict[str, Any]:
    body: dict[str, Any] = requests.get(f"{stack.api_url}/durable-noted-steps/{task_id}", timeout=10).json()
    return body


def finished(stack: LocalStack, task_id: str, timeout: float) -> dict[str, Any]:
    result: dict[str, Any] = wait_until(
        lambda: (body := task(stack, task_id))["status"] not in ("queued", "running") and body,
        timeout=timeout,
        interval=0.5,
    )
    return result


def execution_of(stack: LocalStack, task_id: str) -> dict[str, Any]:
    lambda_ = boto3.client("lambda", endpoint_url=stack.lambda_url, region_name="us-east-1")
    (listed,) = lambda_.list_durable_executions_by_function(
        FunctionName="local-durable-runner", DurableExecutionName=task_id
    )["DurableExecutions"]
    arn = listed["DurableExecutionArn"]
    execution: dict[str, Any] = lambda_.get_durable_execution(DurableExecutionArn=arn)
    execution["Events"] = lambda_.get_durable_execution_history(DurableExecutionArn=arn)["Events"]
    return execution


def test_a_durable_task_of_48_seconds_of_steps_succeeds_in_invocations_of_30_seconds(
    stack: LocalStack, marks: Path
) -> None:
    # GIVEN the runner stopped after WORKER_TIMEOUT seconds an invocation
    assert stack.sam_app.functions[RUNNER].timeout == WORKER_TIMEOUT

    # WHEN a durable task of six 8-second steps runs
    task_id = submit(stack, "long", steps=6, seconds=8)
    outcome = finished(stack, task_id, timeout=180)

    # THEN it succeeds: the runner suspended before a step that would not have fit in what was left of an invocation,
    # and went on in another
    assert outcome["status"] == "succeeded", outcome
    assert len(outcome["result"]) == 6
    events = [event["EventType"] for event in execution_of(stack, task_id)["Events"]]
    assert "WaitStarted" in events, events
    assert events.count("InvocationCompleted") >= 2, events
    # (Each step ran once, unless the machine was so loaded that a step and its checkpoints outran the runner's margin,
    # and its invocation was stopped at the Timeout: it then ran again, as on Lambda.)
    ran = [len(runs(marks / "long", f"step-{n}")) for n in range(6)]
    assert all(ran), ran


def test_a_runner_process_killed_mid_step_resumes_from_its_last_completed_step(stack: LocalStack, marks: Path) -> None:
    # GIVEN a durable task whose second step runs
    task_id = submit(stack, "killed", steps=3, seconds=2)
    (pid,) = wait_until(lambda: runs(marks / "killed", "step-1"), timeout=30)
    assert pid in stack.durable_pids[RUNNER]

    # WHEN the runner's process is killed (SIGKILL: the OOM killer, a crash)
    os.kill(pid, signal.SIGKILL)

    # THEN the task resumes in another process and succeeds: the completed step ran once, the interrupted one twice
    outcome = finished(stack, task_id, timeout=60)
    assert outcome["status"] == "succeeded", outcome
    assert runs(marks / "killed", "step-0") == [pid]
    first, second = runs(marks / "killed", "step-1")
    assert (first, second != pid) == (pid, True)
    assert runs(marks / "killed", "step-2") == [second]
    assert outcome["result"] == [pid, second, second]


def test_a_cancel_stops_the_durable_tasks_steps_and_its_execution(stack: LocalStack, marks: Path) -> None:
    # GIVEN a durable task in its first step
    task_id = submit(stack, "cancelled", steps=3, seconds=2)
    wait_until(lambda: runs(marks / "cancelled", "step-0"), timeout=30)

    # WHEN its owner cancels it
    response = requests.delete(f"{stack.api_url}/durable-noted-steps/{task_id}", timeout=10)
    assert response.status_code == 200, response.text

    # THEN its execution is stopped, and no later step starts (once the step under way has had its time)
    assert wait_until(lambda: execution_of(stack, task_id)["Status"] == "STOPPED", timeout=10)
    time.sleep(3)
    assert task(stack, task_id)["status"] == "cancelled"
    assert runs(marks / "cancelled", "step-0") != []
    assert runs(marks / "cancelled", "step-1") == []
