"""Each function's execution environments, as Lambda keeps them: a process per environment (devstack.lambdas), one
invocation at a time in each, a new one started (a cold start) when every existing one is busy, up to a limit, and
kept for the next invocation. An invocation past the function's timeout is stopped with its environment; one whose
process ends is answered as Lambda answers a runtime that exited.

A pool keeps `warm` environments running: one that ends, or fails to start (killed while starting, a task module
that does not import), is started again with a growing delay, each failure logged with its cause. A function whose
environments fail to start on their own several times in a row cannot start at all: the pool's `fault` says why,
and the stack stops on it. samcli hands each invocation over as JSON text, and it crosses the pipe as it is.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import threading
from typing import Any

from samcli.local.lambdafn.exceptions import FunctionNotFound

from devstack.child import ChildProcess, StartFailed
from devstack.lambdas import ERROR, EnvironmentConfig, serve, serve_sqs

logger = logging.getLogger(__name__)

STARTUP_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 10
WATCH_SECONDS = 0.25
FIRST_RETRY_SECONDS = 0.25
MAX_RETRY_SECONDS = 8.0
# Starts that failed on their own (not killed from outside) in a row, after which a function cannot start at all.
FAILED_STARTS_LIMIT = 3


class FunctionError(Exception):
    """The handler raised: the message is Lambda's error payload (JSON)."""


class EnvironmentExited(Exception):
    """The environment's process ended during an invocation (the handler exited the interpreter, or was killed)."""


class EnvironmentTimedOut(Exception):
    """The invocation ran past the function's timeout: its environment was stopped, as Lambda stops it."""


class ExecutionEnvironment:
    """One process that runs one function's invocations, one at a time: sent over a pipe by invoke(), or, for a
    function with SQS events (config.resources set), by its own event source's poller."""

    def __init__(self, config: EnvironmentConfig) -> None:
        self._connection, self._child_end = multiprocessing.get_context("spawn").Pipe(duplex=True)
        polls = config.resources is not None
        self._child = ChildProcess(
            serve_sqs if polls else serve,
            (config,) if polls else (config, self._child_end),
            name=f"lambda-{config.spec.name}",
            description=f"an execution environment of {config.spec.name}",
            startup_timeout=STARTUP_TIMEOUT_SECONDS,
            stop_timeout=STOP_TIMEOUT_SECONDS,
        )
        self.pid: int | None = None

    def launch(self) -> None:
        self._child.launch()
        self._child_end.close()  # the child holds its own copy: its exit then ends our reads

    def wait_ready(self) -> ExecutionEnvironment:
        """StartFailed (its process stopped) when it does not get through its init phase."""
        self.pid = self._child.wait_ready()
        return self

    def alive(self) -> bool:
        return self._child.is_alive()

    def invoke(self, event: str, timeout: float) -> str:
        try:
            self._connection.send_bytes(event.encode())
            if not self._connection.poll(timeout):
                raise EnvironmentTimedOut(f"Task timed out after {timeout:.2f} seconds")
            answer = self._connection.recv_bytes()
        except (EOFError, OSError) as error:
            raise EnvironmentExited(f"the process of this execution environment (pid {self.pid}) exited") from error
        if answer[:1] == ERROR:
            raise FunctionError(answer[1:].decode())
        return answer[1:].decode()

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
    """One function's environments: `warm` kept running, at most `limit`; an invocation takes an idle one, starts
    one when all are busy and the limit allows, else waits for one."""

    def __init__(self, config: EnvironmentConfig, *, warm: int, limit: int) -> None:
        self.config = config
        self._warm = warm
        self._limit = max(limit, warm)
        self._changed = threading.Condition()
        self._idle: list[ExecutionEnvironment] = []
        self._all: list[ExecutionEnvironment] = []
        self._launched: list[ExecutionEnvironment] = []  # not ready yet
        self._starting = 0
        self._failed_starts = 0
        self._retry_seconds = FIRST_RETRY_SECONDS
        self._last_start_error = ""
        self._stopping = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name=f"{config.spec.name}-environments", daemon=True)
        self.fault: str | None = None

    @property
    def name(self) -> str:
        return self.config.spec.name

    @property
    def pids(self) -> list[int]:
        with self._changed:
            return [environment.pid for environment in self._all if environment.pid is not None]

    def start(self) -> None:
        """Start the warm environments in the background; wait_ready() waits for them."""
        self._watcher.start()

    def wait_ready(self) -> None:
        """Until the warm environments run; RuntimeError when they cannot start."""
        with self._changed:
            while len(self._all) < self._warm and self.fault is None:
                self._changed.wait(1)
            if self.fault is not None:
                raise RuntimeError(self.fault)

    def invoke(self, event: str) -> str:
        """The function's answer (JSON text): FunctionError, EnvironmentExited, EnvironmentTimedOut or StartFailed
        when it has none."""
        environment = self._take()
        try:
            answer = environment.invoke(event, timeout=self.config.spec.timeout)
        except EnvironmentExited:
            self._forget(environment)
            environment.stop()
            raise
        except EnvironmentTimedOut:
            self._forget(environment)
            environment.kill()
            raise
        except FunctionError:
            self._give_back(environment)
            raise
        self._give_back(environment)
        return answer

    def stop(self) -> None:
        self._stopping.set()
        with self._changed:
            environments, self._all, self._idle = self._all, [], []
            starting = list(self._launched)
            self._changed.notify_all()
        for environment in starting:
            environment.kill()  # never ran an invocation: nothing to wait for
        for environment in environments:
            environment.request_stop()  # all at once
        for environment in environments:
            environment.stop()
        if self._watcher.is_alive():
            self._watcher.join(timeout=STARTUP_TIMEOUT_SECONDS)

    # -- internals

    def _take(self) -> ExecutionEnvironment:
        with self._changed:
            while True:
                while self._idle:
                    environment = self._idle.pop()
                    if environment.alive():
                        return environment
                    self._all.remove(environment)  # ended while idle: the watcher starts another
                if self._stopping.is_set():
                    raise EnvironmentExited("the stack is stopping")
                if len(self._all) + self._starting < self._limit:
                    self._starting += 1
                    break
                self._changed.wait()
        logger.debug("cold start of %s", self.name)
        (started,) = self._start_environments(1, idle=False)
        if started is None:
            raise StartFailed(self._last_start_error)
        return started

    def _start_environments(self, count: int, *, idle: bool = True) -> list[ExecutionEnvironment | None]:
        """Start `count` environments side by side (their slots already counted in _starting): each one started and
        kept (idle, or busy for the caller), or None when it failed (recorded)."""
        environments = [ExecutionEnvironment(self.config) for _ in range(count)]
        with self._changed:
            self._launched.extend(environments)
        failed: dict[ExecutionEnvironment, StartFailed] = {}
        for environment in environments:
            try:
                environment.launch()
            except StartFailed as error:
                failed[environment] = error
        started: list[ExecutionEnvironment | None] = []
        for environment in environments:
            try:
                if environment in failed:
                    raise failed[environment]
                environment.wait_ready()
            except StartFailed as error:
                self._record_failed_start(environment, error)
                started.append(None)
                continue
            with self._changed:
                self._launched.remove(environment)
                self._starting -= 1
                self._failed_starts = 0
                self._retry_seconds = FIRST_RETRY_SECONDS
                if self._stopping.is_set():
                    environment.kill()
                    started.append(None)
                    continue
                self._all.append(environment)
                if idle:
                    self._idle.append(environment)
                self._changed.notify_all()
            started.append(environment)
        return started

    def _record_failed_start(self, environment: ExecutionEnvironment, error: StartFailed) -> None:
        with self._changed:
            self._launched.remove(environment)
            self._starting -= 1
            self._last_start_error = str(error)
            if not error.killed:
                self._failed_starts += 1
            if self._failed_starts >= FAILED_STARTS_LIMIT and self.fault is None:
                self.fault = (
                    f"{self.name} cannot start: {self._failed_starts} starts in a row failed; the last: {error}"
                )
            self._changed.notify_all()
        if self.fault is None and not self._stopping.is_set():
            logger.error("%s; another start follows in %.2g s", error, self._retry_seconds)

    def _give_back(self, environment: ExecutionEnvironment) -> None:
        with self._changed:
            if environment in self._all:
                self._idle.append(environment)
                self._changed.notify_all()

    def _forget(self, environment: ExecutionEnvironment) -> None:
        with self._changed:
            if environment in self._all:  # stop() may have taken them all meanwhile
                self._all.remove(environment)
            self._changed.notify_all()

    def _watch(self) -> None:
        """Keep `warm` environments: replace those that end while idle, retry failed starts with a growing delay."""
        while self.fault is None and not self._stopping.is_set():
            with self._changed:
                for environment in [e for e in self._idle if not e.alive()]:
                    logger.warning("an execution environment of %s (pid %s) ended", self.name, environment.pid)
                    self._idle.remove(environment)
                    self._all.remove(environment)
                missing = self._warm - len(self._all) - self._starting
                self._starting += max(0, missing)
            if missing > 0 and None in self._start_environments(missing):
                self._stopping.wait(self._retry_seconds)
                self._retry_seconds = min(MAX_RETRY_SECONDS, self._retry_seconds * 2)
                continue
            self._stopping.wait(WATCH_SECONDS)


class ProcessLambdaRunner:
    """A lambda_runner for samcli's LocalApigwService (which runs functions in Docker): each function's invocations
    go to its pool, and failures are answered with the payload Lambda would give."""

    def __init__(self, pools: dict[str, EnvironmentPool]) -> None:
        self.pools = pools

    def is_debugging(self) -> bool:
        # False makes samcli's service multi-threaded, as API Gateway is.
        return False

    def invoke(self, function_identifier: str, event: str, stdout: Any = None, stderr: Any = None, **_: Any) -> None:
        answer = self.answer(function_identifier, event)
        if stdout is not None:
            stdout.write_str(answer)

    def answer(self, function_identifier: str, event: str) -> str:
        pool = self.pools.get(function_identifier)
        if pool is None:
            raise FunctionNotFound(f"unable to find a function with name {function_identifier!r}")
        return lambda_answer(pool, event)[0]


def lambda_answer(pool: EnvironmentPool, event: str) -> tuple[str, bool]:
    """The function's answer to `event` as Lambda gives it, and whether it is a function error (X-Amz-Function-Error):
    the handler's exception, or the runtime's end (killed, exited, past its timeout, failed to start)."""
    try:
        return pool.invoke(event), False
    except FunctionError as error:
        return str(error), True
    except (EnvironmentExited, EnvironmentTimedOut, StartFailed) as error:
        logger.error("%s: %s", pool.name, error)
        return json.dumps({"errorType": LAMBDA_ERROR_TYPES[type(error)], "errorMessage": _lambda_message(error)}), True


# What Lambda reports when the runtime's process ends during an invocation, when it stops an invocation at the
# function's timeout, and when a function's init phase fails.
LAMBDA_ERROR_TYPES: dict[type[Exception], str] = {
    EnvironmentExited: "Runtime.ExitError",
    EnvironmentTimedOut: "Sandbox.Timedout",
    StartFailed: "Runtime.InitError",
}


def _lambda_message(error: Exception) -> str:
    return f"Runtime exited: {error}" if isinstance(error, EnvironmentExited) else str(error)
