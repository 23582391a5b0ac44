"""The local stack's execution environments for the API's functions: a process per environment, one invocation at
a time in each, as Lambda runs them (devstack.environments)."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from devstack.environments import EnvironmentConfig, EnvironmentPool, ProcessLambdaRunner
from devstack.template import FunctionSpec

PROBE = FunctionSpec(
    name="ProbeFunction",
    handler="tests.support.environment_handlers.handler",
    timeout=3,
    memory=128,
    environment={},
)


class Captured:
    """samcli's stdout stream for a function's answer."""

    def __init__(self) -> None:
        self.text = ""

    def write_str(self, text: str) -> None:
        self.text += text


@contextlib.contextmanager
def running(spec: FunctionSpec, started: int = 1) -> Iterator[ProcessLambdaRunner]:
    """A runner of `spec` alone, with `started` environments started ahead; all stopped on exit."""
    pool = EnvironmentPool(EnvironmentConfig(spec=spec, environment={}, task_modules=(), log_level=30))
    runner = ProcessLambdaRunner({spec.name: pool})
    try:
        pool.add_ready(pool.launch(started))
        yield runner
    finally:
        runner.stop()


@pytest.fixture
def runner() -> Iterator[ProcessLambdaRunner]:
    with running(PROBE) as runner:
        yield runner


def invoke(runner: ProcessLambdaRunner, event: dict[str, Any]) -> Any:
    """The answer, as samcli reads it, of the runner's one function."""
    (name,) = runner.pools
    captured = Captured()
    runner.invoke(name, json.dumps(event), stdout=captured)
    return json.loads(captured.text)


def test_concurrent_invocations_run_in_processes_of_their_own_and_later_ones_reuse_them(
    runner: ProcessLambdaRunner,
) -> None:
    # GIVEN one environment started ahead
    (first_pid,) = runner.pids
    assert first_pid != os.getpid()

    # WHEN two invocations overlap
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: invoke(runner, {"seconds": 0.5}), range(2)))

    # THEN each ran in a process of its own (the second a cold start), with the function's context
    pids = {answer["pid"] for answer in answers}
    assert len(pids) == 2
    assert first_pid in pids
    assert set(runner.pids) == pids
    assert {answer["function_name"] for answer in answers} == {"ProbeFunction"}
    assert len({answer["request_id"] for answer in answers}) == 2

    # WHEN invoked again, one at a time THEN warm: the same processes, whose module state carried over
    again = [invoke(runner, {}) for _ in range(3)]
    assert {answer["pid"] for answer in again} <= pids
    assert all(answer["invocation"] >= 2 for answer in again)


def test_a_handler_error_is_lambdas_error_payload_and_its_environment_serves_on(runner: ProcessLambdaRunner) -> None:
    (pid,) = runner.pids

    failed = invoke(runner, {"action": "raise"})

    assert failed["errorType"] == "ValueError"
    assert failed["errorMessage"] == "the handler failed"
    assert invoke(runner, {"action": "unanswerable"})["errorType"] == "TypeError"  # an answer that is not JSON
    assert invoke(runner, {})["pid"] == pid


def test_an_environment_whose_process_ends_is_reported_and_replaced(runner: ProcessLambdaRunner) -> None:
    (pid,) = runner.pids

    # WHEN the handler ends its process
    failed = invoke(runner, {"action": "exit"})

    # THEN the invocation fails as Lambda reports a runtime that exited, and that environment is gone
    assert failed["errorType"] == "Runtime.ExitError"
    assert runner.pids == []
    assert not Path(f"/proc/{pid}").exists()
    # AND the next invocation starts a new one
    answer = invoke(runner, {})
    assert answer["pid"] != pid
    assert answer["invocation"] == 1
    assert runner.pids == [answer["pid"]]


def test_stop_ends_every_environment(runner: ProcessLambdaRunner) -> None:
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda _: invoke(runner, {"seconds": 0.3}), range(2)))
    pids = runner.pids
    assert len(pids) == 2

    runner.stop()

    assert runner.pids == []
    assert all(not Path(f"/proc/{pid}").exists() for pid in pids)


def test_a_function_whose_init_fails_answers_lambdas_init_error() -> None:
    # GIVEN a function whose handler's module does not exist
    broken = FunctionSpec(
        name="BrokenFunction", handler="tests.support.no_such_module.handler", timeout=3, memory=128, environment={}
    )
    with running(broken, started=0) as runner:
        # WHEN invoked THEN its environment's init fails as in Lambda, and leaves nothing behind
        assert invoke(runner, {})["errorType"] == "Runtime.InitError"
        assert runner.pids == []


def test_an_invocation_past_the_functions_timeout_is_stopped_with_its_environment() -> None:
    # GIVEN a function with a one-second timeout, one environment started
    quick = FunctionSpec(name="QuickFunction", handler=PROBE.handler, timeout=1, memory=128, environment={})
    with running(quick) as runner:
        (pid,) = runner.pids

        # WHEN an invocation runs for longer
        started = time.monotonic()
        failed = invoke(runner, {"seconds": 30})

        # THEN it is answered at the timeout as Lambda answers, and its environment's process is gone
        assert time.monotonic() - started < 10
        assert failed["errorType"] == "Sandbox.Timedout"
        assert "timed out after 1.00 seconds" in failed["errorMessage"]
        assert runner.pids == []
        assert not Path(f"/proc/{pid}").exists()
        # AND the next invocation gets a new environment
        assert invoke(runner, {})["pid"] not in (pid, os.getpid())
