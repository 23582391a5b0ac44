"""The whole stack, started and stopped from this process: the AWS emulator, the template's resources, the HTTP API
with its functions' execution environments, and the worker with its SQS event sources."""

from __future__ import annotations

import importlib
import logging
import multiprocessing.connection
import os
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import boto3

from devstack.emulator import MotoProcess
from devstack.event_source import SqsEventSource, start_event_sources
from devstack.lambdas import InProcessLambdaRunner, LambdaFunction, LambdaRunner
from devstack.resources import LocalResources, create_resources
from devstack.template import DEFAULT_TEMPLATE, REGION, SamApp, load_sam_app
from devstack.worker_process import WorkerConfig, WorkerProcess

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

    from devstack.api import ApiServer
    from devstack.environments import ProcessLambdaRunner

logger = logging.getLogger(__name__)

DEFAULT_WORKER_CONCURRENCY = 2
# Requests in the API's functions at once (more wait for a slot), and so at most this many execution environments
# of each. On 2 cores, more only take the CPU from the worker whose results the clients wait for (16 polling
# clients, side by side: 2 slots 48 to 62 tasks/s and 1.0 polls per task; 3 slots 52 to 57; 4 slots 36 to 53 and
# 2.5 polls). With the functions in this process, 2, 3 and 4 measured within noise of each other.
DEFAULT_API_CONCURRENCY = 2
# Variables passed from the caller's environment to the functions, over the template's values.
PASSTHROUGH_VARIABLES = ("MULTIPLY_DELAY_SECONDS",)
# Modules whose lru_cache'd factories read the environment: cleared when the stack's environment changes.
_CACHED_FACTORIES = {
    "core.settings": ("settings", "submit_settings", "worker_settings"),
    "core.aws": (
        "dynamodb_client",
        "sqs_client",
        "s3_client",
        "task_store",
        "task_queue",
        "deferral_queue",
        "payload_store",
    ),
}


def _clear_factories() -> None:
    for module_name, names in _CACHED_FACTORIES.items():
        module = sys.modules.get(module_name)
        for name in names:
            factory = getattr(module, name, None)
            if factory is not None and hasattr(factory, "cache_clear"):
                factory.cache_clear()


class LocalStack:
    """Start with `with LocalStack(port=0) as stack:`; `stack.api_url` is then ready for requests.

    endpoint_url: an AWS emulator already running (default: AWS_ENDPOINT_URL, else a moto server started here).
    env: variables for the functions over the template's (e.g. {"MULTIPLY_DELAY_SECONDS": "0"}).
    visibility_timeout: replaces the queues' VisibilityTimeout (local only, to see redeliveries quickly).
    worker_process: run the SQS event sources and the worker in processes of their own (see
        devstack.worker_process); False keeps them in this one, where a test can reach `functions` and
        `event_sources`.
    api_process: run the API's functions in execution environments of their own, one process each (see
        devstack.environments); False runs them in this process, where a test or the bench can reach them.
    task_modules: modules to import before the handlers, e.g. test-only tasks registered with core.registry.task.
    """

    def __init__(
        self,
        *,
        template: str | Path = DEFAULT_TEMPLATE,
        host: str = "127.0.0.1",
        port: int = 3000,
        api: bool = True,
        worker: bool = True,
        worker_concurrency: int | None = None,
        worker_process: bool = True,
        api_process: bool = True,
        env: Mapping[str, str] | None = None,
        parameter_overrides: Mapping[str, Any] | None = None,
        visibility_timeout: int | None = None,
        endpoint_url: str | None = None,
        task_modules: Iterable[str] = (),
    ) -> None:
        self.template = Path(template).resolve()
        self._host = host
        self._port = port
        self._with_api = api
        self._with_worker = worker
        self.worker_process = worker_process
        self.api_process = api_process
        self.worker_concurrency = worker_concurrency or int(
            os.environ.get("WORKER_CONCURRENCY", DEFAULT_WORKER_CONCURRENCY)
        )
        self._env = dict(env or {})
        self._parameter_overrides = dict(parameter_overrides or {})
        self._visibility_timeout = visibility_timeout
        self.endpoint_url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
        self._task_modules = list(task_modules)
        self._moto: MotoProcess | None = None
        self._api: ApiServer | None = None
        self._api_runner: ProcessLambdaRunner | None = None
        self._event_sources: list[SqsEventSource] = []
        self._worker_processes: list[WorkerProcess] = []
        self._worker_supervisor: threading.Thread | None = None
        self._stopping_workers = threading.Event()
        self._saved_environ: dict[str, str | None] = {}
        self.resources: LocalResources
        self.sam_app: SamApp
        self.functions: dict[str, LambdaFunction] = {}
        self.environment: dict[str, str] = {}

    # -- lifecycle

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> LocalStack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self._set_environ(
            {
                "AWS_DEFAULT_REGION": REGION,
                "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
                "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
                # samcli's API emulation records telemetry events; nothing leaves this machine.
                "SAM_CLI_TELEMETRY": "0",
            }
        )
        if self.endpoint_url is None:
            self._moto = MotoProcess().start()
            self.endpoint_url = self._moto.endpoint_url
        # The template's LocalEndpointUrl parameter declares AWS_ENDPOINT_URL for the functions, so that the
        # env-vars file for `sam local start-api` may set it.
        self._parameter_overrides.setdefault("LocalEndpointUrl", self.endpoint_url)
        self.resources = create_resources(
            self.endpoint_url,
            template=self.template,
            parameter_overrides=self._parameter_overrides,
            visibility_timeout=self._visibility_timeout,
        )
        self.sam_app = load_sam_app(self.template, self.resources.translator())
        self.environment = self._function_environment()
        self._set_environ(self.environment | {"AWS_ENDPOINT_URL": self.endpoint_url})
        _clear_factories()
        for module in self._task_modules:
            importlib.import_module(module)
        self.functions = {name: LambdaFunction(spec) for name, spec in self.sam_app.functions.items()}
        api = self.sam_app.api(self.template.parent) if self._with_api else None
        starting = self._launch_api_environments(api) if api is not None and self.api_process else None
        if self._with_worker:
            self._start_worker()
        if api is not None:
            from devstack.api import ApiServer

            runner: LambdaRunner = InProcessLambdaRunner(self.functions)
            if starting is not None:
                runner = self._api_runner = starting()
            self._api = ApiServer(
                api,
                runner,
                host=self._host,
                port=self._port,
                max_concurrency=DEFAULT_API_CONCURRENCY,
            )
            self._api.start()

    def stop(self) -> None:
        self._stopping_workers.set()  # no replacements for worker processes that end from now on
        if self._api is not None:
            self._api.stop()
            self._api = None
        if self._api_runner is not None:
            self._api_runner.stop()
            self._api_runner = None
        for source in self._event_sources:
            source.stop()
        self._event_sources = []
        if self._worker_supervisor is not None:
            self._worker_supervisor.join(timeout=70)  # it may be starting a replacement
            self._worker_supervisor = None
        for worker in self._worker_processes:
            worker.request_stop()  # all drain at once
        for worker in self._worker_processes:
            worker.stop()
        self._worker_processes = []
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
            self.endpoint_url = None
        self._restore_environ()
        _clear_factories()

    # -- what a caller uses

    @property
    def api_url(self) -> str:
        if self._api is None:
            raise RuntimeError("the API is not running (started with api=False, or not started)")
        return self._api.url

    @property
    def sqs(self) -> SQSClient:
        return boto3.client("sqs", endpoint_url=self.endpoint_url, region_name=REGION)

    @property
    def dynamodb(self) -> DynamoDBClient:
        return boto3.client("dynamodb", endpoint_url=self.endpoint_url, region_name=REGION)

    @property
    def event_sources(self) -> list[SqsEventSource]:
        """The running SQS event sources, when they run in this process (worker_process=False)."""
        return list(self._event_sources)

    def fault(self) -> str | None:
        """Why this stack can serve nothing any more (the AWS emulator it started has ended, and with it every
        table, queue and task), or None while it can."""
        moto = self._moto
        if moto is None or not multiprocessing.connection.wait([moto.sentinel], timeout=0):
            return None
        return (
            f"the AWS emulator (pid {moto.pid}) ended with exit code {moto.exitcode}: its tables and queues, and every"
            " task in them, are gone; start the stack again"
        )

    @property
    def emulator_pid(self) -> int | None:
        """The AWS emulator's process id, when this stack started it."""
        return self._moto.pid if self._moto is not None else None

    @property
    def api_pids(self) -> list[int]:
        """The API functions' execution environments' process ids, when they run in processes of their own."""
        return self._api_runner.pids if self._api_runner is not None else []

    @property
    def worker_pids(self) -> list[int]:
        """The worker processes' ids (one per concurrent invocation), when the worker runs in processes of its own."""
        return [worker.pid for worker in self._worker_processes if worker.pid is not None]

    # -- internals

    def _function_environment(self) -> dict[str, str]:
        """The union of the functions' variables: they run in one process, so they share os.environ."""
        union: dict[str, str] = {}
        for spec in self.sam_app.functions.values():
            for key, value in spec.environment.items():
                if union.get(key, value) != value:
                    logger.warning("%s differs between functions; %s's value %r wins", key, spec.name, value)
                union[key] = value
        union.update({key: os.environ[key] for key in PASSTHROUGH_VARIABLES if key in os.environ})
        union.update(self._env)
        return union

    def _launch_api_environments(self, api: Any) -> Callable[[], ProcessLambdaRunner]:
        """Start one execution environment of each API function (more start when requests overlap); what it
        returns waits for them, so that they start beside the worker's processes."""
        from devstack.environments import EnvironmentConfig, EnvironmentPool, ProcessLambdaRunner

        environment = {key: os.environ[key] for key in self._saved_environ if key in os.environ}
        names = sorted({route.function_name for route in api.routes if route.function_name})
        pools = {
            name: EnvironmentPool(
                EnvironmentConfig(
                    spec=self.sam_app.functions[name],
                    environment=environment,
                    task_modules=tuple(self._task_modules),
                    log_level=logging.getLogger().getEffectiveLevel(),
                )
            )
            for name in names
        }
        runner = ProcessLambdaRunner(pools)
        self._api_runner = runner  # stopped by stop(), should starting fail
        launched = {name: pool.launch(1) for name, pool in pools.items()}

        def ready() -> ProcessLambdaRunner:
            for name, pool in pools.items():
                pool.add_ready(launched[name])
            return runner

        return ready

    def _start_worker(self) -> None:
        if not self.worker_process:
            self._event_sources = start_event_sources(
                self.functions.values(), self.resources, self.sqs, concurrency=self.worker_concurrency
            )
            return
        assert self.endpoint_url is not None
        config = WorkerConfig(
            functions=self.sam_app.functions,
            resources=self.resources,
            endpoint_url=self.endpoint_url,
            environment={key: os.environ[key] for key in self._saved_environ if key in os.environ},
            task_modules=tuple(self._task_modules),
            # One invocation at a time per process, as in a Lambda execution environment.
            concurrency=1,
            log_level=logging.getLogger().getEffectiveLevel(),
        )
        self._worker_processes = [WorkerProcess(config) for _ in range(self.worker_concurrency)]
        for worker in self._worker_processes:
            worker.launch()
        for worker in self._worker_processes:
            worker.wait_ready()
        self._stopping_workers.clear()
        self._worker_supervisor = threading.Thread(
            target=self._supervise_workers, args=(config,), name="worker-supervisor", daemon=True
        )
        self._worker_supervisor.start()

    def _supervise_workers(self, config: WorkerConfig) -> None:
        """Another worker process for each one that ends on its own (an invocation past its timeout, a task that
        exits its process or crashes it), as Lambda starts a new execution environment; until the stack stops."""
        while not self._stopping_workers.is_set():
            workers = list(self._worker_processes)
            ended = multiprocessing.connection.wait([worker.sentinel for worker in workers], timeout=0.5)
            for index, worker in enumerate(workers):
                if worker.sentinel not in ended or self._stopping_workers.is_set():
                    continue
                logger.warning(
                    "the worker process %s ended (exit code %s); starting another", worker.pid, worker.exitcode
                )
                worker.stop()
                replacement = WorkerProcess(config)
                replacement.start()
                self._worker_processes[index] = replacement

    def _set_environ(self, values: Mapping[str, str]) -> None:
        for key, value in values.items():
            if key not in self._saved_environ:
                self._saved_environ[key] = os.environ.get(key)
            os.environ[key] = value

    def _restore_environ(self) -> None:
        for key, value in self._saved_environ.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_environ = {}
