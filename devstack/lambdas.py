"""One function's execution environment, as Lambda runs it: a process of its own that imports the handler's module
once (the init phase), then runs one invocation at a time, each with a Lambda context, and after each prints the
runtime's `REPORT` line (its duration, billed duration and memory).

An API function's environment takes its invocations from the stack over a pipe (serve). A function with an SQS
event runs its event source's poller in its environment (serve_sqs): one poller per environment, so one invocation
at a time in each, as Lambda gives each concurrent invocation an environment of its own. (The poller in the stack's
process, each batch sent over a pipe as the API's events are, measured 26.4 against 28.1 tasks/s under 16 clients:
its AWS calls shared one interpreter with the API emulation.)"""

from __future__ import annotations

import importlib
import json
import logging
import math
import multiprocessing.connection
import os
import resource
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from devstack.child import StopSignal, start_function_process
from devstack.resources import LocalResources
from devstack.template import ACCOUNT_ID, REGION, FunctionSpec

logger = logging.getLogger(__name__)
STOP_CHECK_SECONDS = 1.0
# How often an SQS environment checks for a stop request, its invocation's timeout and its poller.
WATCH_SECONDS = 0.25
# The exit code of an SQS environment that Lambda would end (an invocation past its timeout, a runtime that exited).
EXIT_FAULT = 70
# On the pipe, before each answer's JSON: the handler returned it, or it is Lambda's error payload.
ANSWER, ERROR = b"0", b"1"

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class LambdaContext:
    """What Lambda's Python runtime passes as `context`, enough for Powertools' inject_lambda_context."""

    function_name: str
    memory_limit_in_mb: int
    timeout_seconds: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    _started: float = field(default_factory=time.monotonic, repr=False)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"local/[{self.function_version}]{os.getpid()}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self._started)) * 1000))


def error_payload(error: BaseException) -> dict[str, Any]:
    """The body Lambda returns for an unhandled exception."""
    return {
        "errorMessage": str(error),
        "errorType": type(error).__name__,
        "stackTrace": traceback.format_tb(error.__traceback__),
    }


def report_line(request_id: str, seconds: float, memory_mb: int, init_seconds: float | None = None) -> str:
    """Lambda's REPORT line, billed by the millisecond; all the functions share one output here, so the function's
    name comes first, in brackets."""
    init = f"Init Duration: {init_seconds * 1000:.2f} ms\t" if init_seconds is not None else ""
    used = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    return (
        f"REPORT RequestId: {request_id}\t{init}Duration: {seconds * 1000:.2f} ms\t"
        f"Billed Duration: {max(1, math.ceil(seconds * 1000))} ms\tMemory Size: {memory_mb} MB\tMax Memory Used: {used} MB"
    )


class LambdaFunction:
    """The handler of one function of the template, imported as Lambda imports it."""

    def __init__(self, spec: FunctionSpec) -> None:
        self.spec = spec
        module_name, _, attribute = spec.handler.rpartition(".")
        started = time.perf_counter()
        self._handler: Handler = getattr(importlib.import_module(module_name), attribute)
        self._init_seconds: float | None = time.perf_counter() - started

    def invoke(self, event: dict[str, Any]) -> Any:
        """Run the handler on `event`; its exceptions propagate, as Lambda reports them."""
        context = LambdaContext(self.spec.name, self.spec.memory, self.spec.timeout)
        started = time.perf_counter()
        try:
            return self._handler(event, context)
        finally:
            elapsed = time.perf_counter() - started
            line = report_line(context.aws_request_id, elapsed, self.spec.memory, self._init_seconds)
            self._init_seconds = None
            print(f"[{self.spec.name}] {line}", flush=True)


@dataclass(frozen=True)
class EnvironmentConfig:
    spec: FunctionSpec
    # Added to the child's os.environ: the functions' variables, region, credentials and AWS_ENDPOINT_URL.
    environment: dict[str, str]
    task_modules: tuple[str, ...]
    log_level: int
    # For a function with SQS events: the local resources its event sources read.
    resources: LocalResources | None = None


def serve(
    config: EnvironmentConfig,
    invocations: multiprocessing.connection.Connection,
    ready: multiprocessing.connection.Connection,
    stop: StopSignal,
) -> None:
    """The environment's process: init, then each event from the pipe answered on it, until told to stop."""
    start_function_process(config.environment, config.task_modules, config.log_level)
    function = LambdaFunction(config.spec)
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
            answer = ANSWER + json.dumps(function.invoke(json.loads(event))).encode()
        except Exception as error:  # the handler's, or an answer that is not JSON: Lambda's error payload
            logger.exception("%s failed", config.spec.name)
            answer = ERROR + json.dumps(error_payload(error)).encode()
        invocations.send_bytes(answer)


def serve_sqs(config: EnvironmentConfig, ready: multiprocessing.connection.Connection, stop: StopSignal) -> None:
    """An environment of a function with SQS or DynamoDB stream events: its event sources' pollers, invoking the
    function here."""
    start_function_process(config.environment, config.task_modules, config.log_level)
    import boto3

    from devstack.event_source import SqsEventSource, start_event_sources
    from devstack.stream_source import StreamEventSource, start_stream_sources

    assert config.resources is not None
    function = LambdaFunction(config.spec)
    endpoint = config.environment["AWS_ENDPOINT_URL"]
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name=REGION)
    sources: list[SqsEventSource | StreamEventSource] = [
        *start_event_sources([function], config.resources, sqs, concurrency=1)
    ]
    # A function fed by the table's stream (the notifier) reads it here as well, as Lambda's stream poller would.
    sources += start_stream_sources(
        function,
        config.resources,
        streams=boto3.client("dynamodbstreams", endpoint_url=endpoint, region_name=REGION),
        dynamodb=boto3.client("dynamodb", endpoint_url=endpoint, region_name=REGION),
        sqs=sqs,
    )
    ready.send(os.getpid())
    # Until told to stop, or orphaned (a parent that dies closes the stop signal's pipe too).
    while not stop.wait(WATCH_SECONDS):
        for source in sources:
            fault = source.fault()
            if fault is not None:
                # As Lambda ends an execution environment whose invocation timed out or whose runtime exited: the
                # batch's messages reappear after the visibility timeout, and the stack starts another environment.
                logger.error("%s; this execution environment ends", fault)
                os._exit(EXIT_FAULT)
    for source in sources:
        source.stop()
