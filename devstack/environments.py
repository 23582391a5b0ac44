"""The API's functions in execution environments of their own, as Lambda runs them: one process per environment,
one invocation at a time in each, environments started when every existing one is busy (a cold start) and kept
for the next invocation (warm), an invocation stopped at the function's timeout (its environment with it).

In the API's own process, concurrent invocations would share what Lambda never shares between them: the module
state of `core` (Powertools' Logger with its correlation id and Lambda context keys, Metrics' metric set, the
cached clients), so that a log line of one request could carry another request's task id.

samcli hands each invocation over as the event's JSON text and takes the function's answer as JSON text: here they
cross a pipe as they are.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from samcli.local.lambdafn.exceptions import FunctionNotFound

from devstack.child import ChildProcess, StopSignal, start_function_process
from devstack.lambdas import LambdaFunction, LambdaRunner, error_payload
from devstack.template import FunctionSpec

logger = logging.getLogger(__name__)

STARTUP_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 5
STOP_CHECK_SECONDS = 1.0


@dataclass(frozen=True)
class EnvironmentConfig:
    spec: FunctionSpec
    # Added to the child's os.environ: the functions' variables, region, credentials and AWS_ENDPOINT_URL.
    environment: dict[str, str]
    task_modules: tuple[str, ...]
    log_level: int


class EnvironmentExited(Exception):
    """The environment's process ended during an invocation (the handler exited the interpreter, or was killed)."""


class EnvironmentTimedOut(Exception):
    """The invocation ran past the function's timeout: its environment was stopped, as Lambda stops it."""


class EnvironmentStartFailed(Exception):
    """A new environment's process did not get through its init phase (its error is in the log)."""


def _serve(
    config: EnvironmentConfig,
    invocations: multiprocessing.connection.Connection,
    ready: multiprocessing.connection.Connection,
    stop: StopSignal,
) -> None:
    start_function_process(config.environment, config.task_modules, config.log_level)
    function = LambdaFunction(config.spec)
    function.initialize()  # the init phase: the handler's module imported before the first invocation
    ready.send(os.getpid())
    while True:
        if not invocations.poll(STOP_CHECK_SECONDS):
            # Idle: told to stop? (A parent that dies closes both pipes: that ends the loop too.)
            if stop.is_set():
                return
            continue
        try:
            event = invocations.recv_bytes()
        except EOFError:
            return  # the parent closed its end: stopping
        try:
            answer = json.dumps(function.invoke(json.loads(event)))
        except Exception as error:  # the handler's, or an answer that is not JSON: Lambda's error payload
            logger.exception("%s failed", config.spec.name)
            answer = json.dumps(error_payload(error))
        invocations.send_bytes(answer.encode())


class ExecutionEnvironment:
    """One process that runs one function's invocations, one at a time."""

    def __init__(self, config: EnvironmentConfig) -> None:
        context = multiprocessing.get_context("spawn")
        self._connection, child_end = context.Pipe(duplex=True)
        self._child = ChildProcess(
            _serve,
            (config, child_end),
            name=f"lambda-{config.spec.name}",
            description=f"an execution environment of {config.spec.name}",
            startup_timeout=STARTUP_TIMEOUT_SECONDS,
            stop_timeout=STOP_TIMEOUT_SECONDS,
        )
        self._child_end = child_end
        self.pid: int | None = None

    def launch(self) -> None:
        self._child.launch()
        self._child_end.close()  # the child holds its own copy: its exit then ends our reads

    def wait_ready(self) -> ExecutionEnvironment:
        self.pid = self._child.wait_ready()
        return self

    def invoke(self, event: str, timeout: float) -> str:
        try:
            self._connection.send_bytes(event.encode())
            if not self._connection.poll(timeout):
                raise EnvironmentTimedOut(f"Task timed out after {timeout:.2f} seconds")
            return self._connection.recv_bytes().decode()
        except (EOFError, OSError) as error:
            raise EnvironmentExited(f"the process of this execution environment (pid {self.pid}) exited") from error

    def kill(self) -> None:
        """End the process now, whatever it is running."""
        with contextlib.suppress(OSError):
            self._connection.close()
        self._child.terminate()

    def request_stop(self) -> None:
        self._child.request_stop()
        with contextlib.suppress(OSError):
            self._connection.close()

    def stop(self) -> None:
        self.request_stop()
        self._child.stop()


class EnvironmentPool:
    """One function's environments: an invocation takes an idle one, or starts one when all are busy."""

    def __init__(self, config: EnvironmentConfig) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._idle: list[ExecutionEnvironment] = []
        self._all: list[ExecutionEnvironment] = []

    @property
    def pids(self) -> list[int]:
        with self._lock:
            return [environment.pid for environment in self._all if environment.pid is not None]

    def launch(self, count: int) -> list[ExecutionEnvironment]:
        """Start `count` environments without waiting for them (several functions' start side by side)."""
        launched = [ExecutionEnvironment(self._config) for _ in range(count)]
        with self._lock:
            self._all.extend(launched)  # from now on, stop() stops them too
        for environment in launched:
            environment.launch()
        return launched

    def add_ready(self, environments: Iterable[ExecutionEnvironment]) -> None:
        """Wait for launched environments to finish their init phase, then keep them idle."""
        for environment in environments:
            self._wait_ready(environment)
            with self._lock:
                self._idle.append(environment)

    def invoke(self, event: str) -> str:
        environment = self._take()
        try:
            answer = environment.invoke(event, timeout=self._config.spec.timeout)
        except EnvironmentExited:
            self._forget(environment)
            environment.stop()
            raise
        except EnvironmentTimedOut:
            self._forget(environment)
            environment.kill()
            raise
        with self._lock:
            self._idle.append(environment)
        return answer

    def _take(self) -> ExecutionEnvironment:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        logger.debug("cold start of %s", self._config.spec.name)
        (environment,) = self.launch(1)
        self._wait_ready(environment)
        return environment

    def _wait_ready(self, environment: ExecutionEnvironment) -> None:
        try:
            environment.wait_ready()  # stops the process when it fails
        except RuntimeError as error:
            self._forget(environment)
            raise EnvironmentStartFailed(str(error)) from error

    def _forget(self, environment: ExecutionEnvironment) -> None:
        with self._lock:
            if environment in self._all:  # stop() may have taken them all meanwhile
                self._all.remove(environment)

    def stop(self) -> None:
        with self._lock:
            environments, self._all, self._idle = self._all, [], []
        for environment in environments:
            environment.request_stop()  # all at once
        for environment in environments:
            environment.stop()


class ProcessLambdaRunner(LambdaRunner):
    """Invokes each function in execution environments of its own (see the module's documentation)."""

    def __init__(self, pools: dict[str, EnvironmentPool]) -> None:
        self.pools = pools

    def answer(self, function_identifier: str, event: str) -> str:
        pool = self.pools.get(function_identifier)
        if pool is None:
            raise FunctionNotFound(f"unable to find a function with name {function_identifier!r}")
        try:
            return pool.invoke(event)
        except EnvironmentExited as error:
            logger.error("%s: %s", function_identifier, error)
            # What Lambda reports when the runtime's process ends during an invocation.
            return json.dumps({"errorType": "Runtime.ExitError", "errorMessage": f"Runtime exited: {error}"})
        except EnvironmentTimedOut as error:
            logger.error("%s: %s", function_identifier, error)
            # What Lambda reports when it stops an invocation at the function's timeout.
            return json.dumps({"errorType": "Sandbox.Timedout", "errorMessage": str(error)})
        except EnvironmentStartFailed as error:
            logger.error("%s: %s", function_identifier, error)
            # What Lambda reports when a function's init phase fails (its handler's module does not import).
            return json.dumps({"errorType": "Runtime.InitError", "errorMessage": str(error)})

    @property
    def pids(self) -> list[int]:
        return [pid for pool in self.pools.values() for pid in pool.pids]

    def stop(self) -> None:
        for pool in self.pools.values():
            pool.stop()
