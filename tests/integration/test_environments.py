"""The local stack's execution environments: a process per environment, one invocation at a time in each, as
Lambda runs them; environments that fail to start are started again, and a function that cannot start at all says
why (devstack.environments)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from devstack.environments import EnvironmentPool, ProcessLambdaRunner
from devstack.lambdas import EnvironmentConfig
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
def running(
    spec: FunctionSpec, started: int = 1, environment: dict[str, str] | None = None
) -> Iterator[ProcessLambdaRunner]:
    """A runner of `spec` alone, with `started` environments kept warm, at most two; all stopped on exit."""
    config = EnvironmentConfig(spec=spec, environment=environment or {}, task_modules=(), log_level=30)
    pool = EnvironmentPool(config, warm=started, limit=2)
    runner = ProcessLambdaRunner({spec.name: pool})
    try:
        pool.start()
        pool.wait_ready()
        yield runner
    finally:
        pool.stop()


def pids_of(runner: ProcessLambdaRunner) -> list[int]:
    return [pid for pool in runner.pools.values() for pid in pool.pids]


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
    (first_pid,) = pids_of(runner)
    assert first_pid != os.getpid()

    # WHEN two invocations overlap
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: invoke(runner, {"seconds": 0.5}), range(2)))

    # THEN each ran in a process of its own (the second a cold start), with the function's context
    pids = {answer["pid"] for answer in answers}
    assert len(pids) == 2
    assert first_pid in pids
    assert set(pids_of(runner)) == pids
    assert {answer["function_name"] for answer in answers} == {"ProbeFunction"}
    assert len({answer["request_id"] for answer in answers}) == 2

    # WHEN invoked again, one at a time THEN warm: the same processes, whose module state carried over
    again = [invoke(runner, {}) for _ in range(3)]
    assert {answer["pid"] for answer in again} <= pids
    assert all(answer["invocation"] >= 2 for answer in again)


def test_a_handler_error_is_lambdas_error_payload_and_its_environment_serves_on(runner: ProcessLambdaRunner) -> None:
    (pid,) = pids_of(runner)

    failed = invoke(runner, {"action": "raise"})

    assert failed["errorType"] == "ValueError"
    assert failed["errorMessage"] == "the handler failed"
    assert invoke(runner, {"action": "unanswerable"})["errorType"] == "TypeError"  # an answer that is not JSON
    assert invoke(runner, {})["pid"] == pid


def test_an_environment_whose_process_ends_is_reported_and_replaced(runner: ProcessLambdaRunner) -> None:
    (pid,) = pids_of(runner)

    # WHEN the handler ends its process
    failed = invoke(runner, {"action": "exit"})

    # THEN the invocation fails as Lambda reports a runtime that exited, and that environment is gone
    assert failed["errorType"] == "Runtime.ExitError"
    assert pid not in pids_of(runner)
    assert not Path(f"/proc/{pid}").exists()
    # AND the next invocation runs in a new one
    answer = invoke(runner, {})
    assert answer["pid"] != pid
    assert answer["invocation"] == 1


def test_stop_ends_every_environment(runner: ProcessLambdaRunner) -> None:
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda _: invoke(runner, {"seconds": 0.3}), range(2)))
    pids = pids_of(runner)
    assert len(pids) == 2

    for pool in runner.pools.values():
        pool.stop()

    assert pids_of(runner) == []
    assert all(not Path(f"/proc/{pid}").exists() for pid in pids)


def test_a_function_whose_init_fails_answers_lambdas_init_error() -> None:
    # GIVEN a function whose handler's module does not exist
    broken = FunctionSpec(
        name="BrokenFunction", handler="tests.support.no_such_module.handler", timeout=3, memory=128, environment={}
    )
    with running(broken, started=0) as runner:
        # WHEN invoked THEN its environment's init fails as in Lambda, and leaves nothing behind
        assert invoke(runner, {})["errorType"] == "Runtime.InitError"
        assert pids_of(runner) == []


def test_an_invocation_past_the_functions_timeout_is_stopped_with_its_environment() -> None:
    # GIVEN a function with a one-second timeout, one environment started
    quick = FunctionSpec(name="QuickFunction", handler=PROBE.handler, timeout=1, memory=128, environment={})
    with running(quick) as runner:
        (pid,) = pids_of(runner)

        # WHEN an invocation runs for longer
        started = time.monotonic()
        failed = invoke(runner, {"seconds": 30})

        # THEN it is answered at the timeout as Lambda answers, and its environment's process is gone
        assert time.monotonic() - started < 10
        assert failed["errorType"] == "Sandbox.Timedout"
        assert "timed out after 1.00 seconds" in failed["errorMessage"]
        assert pid not in pids_of(runner)
        assert not Path(f"/proc/{pid}").exists()
        # AND the next invocation gets a new environment
        assert invoke(runner, {})["pid"] not in (pid, os.getpid())


FLAKY = FunctionSpec(
    name="FlakyFunction", handler="tests.support.flaky_handler.handler", timeout=3, memory=128, environment={}
)


def test_an_environment_that_fails_to_start_is_started_again_and_the_cause_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a function whose module fails at import twice, then imports (as a task module being fixed)
    counter = tmp_path / "imports"
    caplog.set_level(logging.ERROR, logger="devstack.environments")

    # WHEN its pool keeps one environment warm
    with running(FLAKY, environment={"FLAKY_COUNTER": str(counter), "FLAKY_FAILURES": "2"}) as runner:
        # THEN it gets there, each failed start logged with its cause
        assert invoke(runner, {})["pid"] in pids_of(runner)
    assert counter.read_text() == "3"
    failures = [r.getMessage() for r in caplog.records if "failed to start" in r.getMessage()]
    assert len(failures) == 2
    assert all("ImportError: not yet (import 1" in m or "ImportError: not yet (import 2" in m for m in failures)


def test_a_function_that_cannot_start_at_all_says_why(tmp_path: Path) -> None:
    # GIVEN a function whose module never imports
    environment = {"FLAKY_COUNTER": str(tmp_path / "imports"), "FLAKY_FAILURES": "99"}
    pool = EnvironmentPool(
        EnvironmentConfig(spec=FLAKY, environment=environment, task_modules=(), log_level=30), warm=1, limit=1
    )
    try:
        # WHEN its pool starts THEN it gives up after a few starts, naming the cause
        pool.start()
        with pytest.raises(RuntimeError, match=r"FlakyFunction cannot start: 3 starts in a row failed.*ImportError"):
            pool.wait_ready()
        assert pool.fault is not None
        assert (tmp_path / "imports").read_text() == "3"
    finally:
        pool.stop()
