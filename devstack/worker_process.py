"""The worker side of the local stack (the SQS event sources and the functions they invoke) in processes of its
own, one per concurrent invocation, as Lambda runs each invocation of the worker in an execution environment of
its own: an invocation never shares module-level state (Powertools' Logger keys, a task's cached objects) with
another running at the same time, as threads of one process would.

The API's handlers and the worker are CPU-bound Python. In one process they take turns on one interpreter lock:
with 16 clients polling the API, the worker whose results they wait for got a fraction of one core, and the
clients polled more (16 clients, 2 cores, side by side when this changed: 32 tasks/s and 2.3 polls per task with
the worker in the API's process, 38 to 44 tasks/s and 1.5 polls with the worker apart).
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
from dataclasses import dataclass

from devstack.child import ChildHandle, ChildProcess, StopSignal, start_function_process
from devstack.resources import LocalResources
from devstack.template import REGION, FunctionSpec

logger = logging.getLogger(__name__)

STARTUP_TIMEOUT_SECONDS = 60
# Beyond the event sources' own drain time (a long poll, then running invocations).
STOP_TIMEOUT_SECONDS = 10
# How often the process checks for a stop request, its invocations' timeouts and its pollers.
WATCH_SECONDS = 0.25
EXIT_FAULT = 70


@dataclass(frozen=True)
class WorkerConfig:
    functions: dict[str, FunctionSpec]
    resources: LocalResources
    endpoint_url: str
    # Added to the child's os.environ: the functions' variables, region and credentials.
    environment: dict[str, str]
    task_modules: tuple[str, ...]
    concurrency: int
    log_level: int


def _serve(config: WorkerConfig, ready: multiprocessing.connection.Connection, stop: StopSignal) -> None:
    start_function_process(config.environment, config.task_modules, config.log_level)
    import boto3

    from devstack.event_source import start_event_sources
    from devstack.lambdas import LambdaFunction

    functions = [LambdaFunction(spec) for spec in config.functions.values() if spec.sqs_events()]
    sqs = boto3.client("sqs", endpoint_url=config.endpoint_url, region_name=REGION)
    sources = start_event_sources(functions, config.resources, sqs, concurrency=config.concurrency)
    ready.send(len(sources))
    # Until told to stop, or orphaned (a parent that dies closes the stop signal's pipe too).
    while not stop.wait(WATCH_SECONDS):
        for source in sources:
            fault = source.fault()
            if fault is not None:
                # As Lambda ends an execution environment whose invocation timed out or whose runtime exited: the
                # batch's messages reappear after the visibility timeout, and the stack starts another process.
                logger.error("%s; this execution environment ends", fault)
                os._exit(EXIT_FAULT)
    for source in sources:
        source.stop()


class WorkerProcess(ChildHandle):
    """`WorkerProcess(config).start()`; `stop()` lets running invocations finish (a few seconds at most).
    launch() then wait_ready(), and request_stop() then stop(), start and stop several side by side."""

    def __init__(self, config: WorkerConfig) -> None:
        self._child = ChildProcess(
            _serve,
            (config,),
            name="lambda-worker",
            description="the worker process",
            startup_timeout=STARTUP_TIMEOUT_SECONDS,
            stop_timeout=STOP_TIMEOUT_SECONDS,
        )
        self.sources = 0

    def start(self) -> WorkerProcess:
        self.launch()
        return self.wait_ready()

    def launch(self) -> None:
        self._child.launch()

    def wait_ready(self) -> WorkerProcess:
        self.sources = self._child.wait_ready()
        return self

    def request_stop(self) -> None:
        self._child.request_stop()
