"""The whole stack, started and stopped from this process: the AWS emulator, the template's resources, the HTTP API
with its authorizers, each function's execution environments, the worker's SQS event sources, and Lambda's API for
the durable functions with the durable execution emulator behind it."""

from __future__ import annotations

import logging
import multiprocessing.connection
import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import boto3

from devstack.emulator import MotoProcess
from devstack.environments import EnvironmentPool, ProcessLambdaRunner
from devstack.event_source import sqs_events
from devstack.lambda_service import DexProcess, LambdaService
from devstack.lambdas import EnvironmentConfig
from devstack.resources import LocalResources, create_resources
from devstack.stream_source import stream_events
from devstack.template import DEFAULT_TEMPLATE, REGION, FunctionSpec, SamApp, load_sam_app

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

    from devstack.api import ApiServer, RouteAuthorizers
    from devstack.auth import LocalIssuer

logger = logging.getLogger(__name__)

DEFAULT_WORKER_CONCURRENCY = 2
# The template's parameters as the local stack sets them unless told otherwise: webhooks to this machine's receivers
# (http://127.0.0.1 allowed, nothing but loopback), retried seconds apart rather than over a day.
LOCAL_PARAMETERS = {"WebhookUrlPolicy": "loopback", "WebhookRetrySchedule": "1,2,2"}
# Execution environments of each API function at most (more requests wait for one). On 2 cores, more only take the
# CPU from the worker whose results the clients wait for (16 polling clients, side by side: 2 environments 48 to 62
# tasks/s and 1.0 polls per task; 3 environments 52 to 57; 4 environments 36 to 53 and 2.5 polls).
API_ENVIRONMENTS = 2
# Variables passed from the caller's environment to the functions, over the template's values.
PASSTHROUGH_VARIABLES = ("MULTIPLY_DELAY_SECONDS",)
AUTH_TYPES = ("NONE", "JWT")
WEBHOOK_SECRET = "WebhookSecret"
WEBHOOK_SECRET_FILE = "webhook-secret"


class LocalStack:
    """Start with `with LocalStack(port=0) as stack:`; `stack.api_url` is then ready for requests.

    endpoint_url: an AWS emulator already running (default: AWS_ENDPOINT_URL, else a moto server started here).
    env: variables for the functions over the template's (e.g. {"MULTIPLY_DELAY_SECONDS": "0"}).
    visibility_timeout: replaces the queues' VisibilityTimeout (local only, to see redeliveries quickly).
    task_modules: modules every function's environment imports before its handler, e.g. test-only tasks.
    auth_type: "NONE", or "JWT": the stack is the issuer of its routes' JWT authorizers, and its key is saved in
        `state_dir` for `python -m devstack token`.
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
        env: Mapping[str, str] | None = None,
        parameter_overrides: Mapping[str, Any] | None = None,
        visibility_timeout: int | None = None,
        endpoint_url: str | None = None,
        task_modules: Iterable[str] = (),
        auth_type: str = "NONE",
        state_dir: Path | None = None,
    ) -> None:
        if auth_type not in AUTH_TYPES:
            raise ValueError(f"the local stack emulates AuthType {' or '.join(AUTH_TYPES)}, not {auth_type!r}")
        self.template = Path(template).resolve()
        self._host = host
        self._port = port
        self._with_api = api
        self._with_worker = worker
        self.worker_concurrency = worker_concurrency or int(
            os.environ.get("WORKER_CONCURRENCY", DEFAULT_WORKER_CONCURRENCY)
        )
        self._env = dict(env or {})
        self._parameter_overrides = LOCAL_PARAMETERS | dict(parameter_overrides or {})
        self._visibility_timeout = visibility_timeout
        self.endpoint_url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
        self._task_modules = tuple(task_modules)
        self.auth_type = auth_type
        self._state_dir = state_dir
        self.issuer: LocalIssuer | None = None
        self._moto: MotoProcess | None = None
        self._lambda: LambdaService | None = None
        self._dex: DexProcess | None = None
        self._durable_pools: dict[str, EnvironmentPool] = {}
        self._api: ApiServer | None = None
        self._api_pools: dict[str, EnvironmentPool] = {}
        self._worker_pools: dict[str, EnvironmentPool] = {}
        self._saved_environ: dict[str, str | None] = {}
        self.resources: LocalResources
        self.sam_app: SamApp
        self.environment: dict[str, str] = {}
        # The key this stack's webhooks are signed with (its WebhookSecret), for receivers to verify with.
        self.webhook_secret: str | None = None

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
        # Lambda's API, bound now: its URL is AWS_ENDPOINT_URL_LAMBDA in every function's environment (and the
        # template's LocalLambdaEndpointUrl, for env.json).
        self._lambda = LambdaService()
        self._parameter_overrides.setdefault("LocalLambdaEndpointUrl", self._lambda.url)
        self._parameter_overrides["AuthType"] = self.auth_type
        if self.auth_type == "JWT":
            from devstack.auth import STATE_DIR, LocalIssuer

            self.issuer = LocalIssuer.generate()
            self.issuer.save(self._state_dir or STATE_DIR)
            self._parameter_overrides |= {"JwtIssuer": self.issuer.issuer, "JwtAudience": self.issuer.audience}
        self.resources = create_resources(
            self.endpoint_url,
            template=self.template,
            parameter_overrides=self._parameter_overrides,
            visibility_timeout=self._visibility_timeout,
        )
        self.webhook_secret = self._save_webhook_secret()
        self.sam_app = load_sam_app(self.template, self.resources.translator())
        self.environment = self._function_environment()
        api = self.sam_app.api(self.template.parent) if self._with_api else None
        if api is not None:
            names = sorted({route.function_name for route in api.routes if route.function_name})
            self._api_pools = {name: self._pool(name, warm=1, limit=API_ENVIRONMENTS) for name in names}
        if self._with_worker:
            # The worker (the task queue's consumer) runs worker_concurrency invocations at once; any other queue's
            # consumer (the dead-letter consumer) one: it handles a trickle.
            self._worker_pools = {
                name: self._pool(name, warm=concurrency, limit=concurrency)
                for name, spec in self.sam_app.functions.items()
                if (concurrency := self._consumer_concurrency(spec))
            }
        durable = [name for name, spec in self.sam_app.functions.items() if spec.durable is not None]
        if durable:
            from devstack.auth import STATE_DIR

            store = (self._state_dir or STATE_DIR) / f"durable-executions-{os.getpid()}.sqlite"
            self._dex = DexProcess(self._lambda.url, store)
            self._dex.launch()
            # Each invocation in an environment of its own, as many at once as the worker runs tasks.
            self._durable_pools = {name: self._pool(name, warm=1, limit=self.worker_concurrency) for name in durable}
        pools = [*self._api_pools.values(), *self._worker_pools.values(), *self._durable_pools.values()]
        for pool in pools:
            pool.start()  # side by side
        for pool in pools:
            pool.wait_ready()
        if self._dex is None:
            self._lambda.start(self.sam_app.functions, {})
        else:
            self._dex.wait_ready()
            events = boto3.client("events", endpoint_url=self.endpoint_url, region_name=REGION)
            self._lambda.start(self.sam_app.functions, self._durable_pools, self._dex.url, events)
        if api is not None:
            from devstack.api import ApiServer

            self._api = ApiServer(
                api,
                ProcessLambdaRunner(self._api_pools),
                host=self._host,
                port=self._port,
                authorizers=self._route_authorizers(),
            )
            self._api.start()

    def stop(self) -> None:
        if self._api is not None:
            self._api.stop()
            self._api = None
        if self._lambda is not None:
            self._lambda.stop()
            self._lambda = None
        # Side by side: each consumer's environments finish their long poll before they stop (a second or so each).
        stopping = [
            threading.Thread(target=pool.stop, name=f"stop-{name}")
            for name, pool in [*self._api_pools.items(), *self._worker_pools.items(), *self._durable_pools.items()]
        ]
        for thread in stopping:
            thread.start()
        for thread in stopping:
            thread.join()
        self._api_pools, self._worker_pools, self._durable_pools = {}, {}, {}
        if self._dex is not None:
            self._dex.stop()
            self._dex = None
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
            self.endpoint_url = None
        self._restore_environ()

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

    def fault(self) -> str | None:
        """Why this stack can serve nothing any more (the AWS emulator it started has ended, and with it every
        table, queue and task; or a function's environments cannot start), or None while it can."""
        for pool in [*self._api_pools.values(), *self._worker_pools.values(), *self._durable_pools.values()]:
            if pool.fault is not None:
                return f"{pool.fault}; fix it and start the stack again"
        dex = self._dex
        if dex is not None and multiprocessing.connection.wait([dex.sentinel], timeout=0):
            return (
                f"the durable execution emulator (pid {dex.pid}) ended with exit code {dex.exitcode}: every durable"
                " execution is gone; start the stack again"
            )
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
    def lambda_url(self) -> str:
        """Lambda's API for the durable functions (Invoke, the durable execution APIs)."""
        if self._lambda is None:
            raise RuntimeError("the stack is not running")
        return self._lambda.url

    @property
    def dex_pid(self) -> int | None:
        """The durable execution emulator's process id, when the template has durable functions."""
        return self._dex.pid if self._dex is not None else None

    @property
    def durable_pids(self) -> dict[str, list[int]]:
        """The durable functions' execution environments' process ids, by function (one per concurrent invocation)."""
        return {name: pool.pids for name, pool in self._durable_pools.items()}

    @property
    def api_pids(self) -> list[int]:
        """The process ids of the API functions' execution environments."""
        return [pid for pool in self._api_pools.values() for pid in pool.pids]

    @property
    def worker_pids(self) -> list[int]:
        """The process ids of the worker's execution environments (one per concurrent invocation)."""
        return [
            pid for name, pool in self._worker_pools.items() if name == self._task_queue_consumer for pid in pool.pids
        ]

    @property
    def consumer_pids(self) -> dict[str, list[int]]:
        """Every queue consumer's execution environments' process ids, by function."""
        return {name: pool.pids for name, pool in self._worker_pools.items()}

    @property
    def _task_queue_consumer(self) -> str | None:
        return next(
            (name for name, spec in self.sam_app.functions.items() if self._consumes_task_queue(spec)),
            None,
        )

    def _consumes_task_queue(self, spec: FunctionSpec) -> bool:
        return any(str(event.get("Queue")) == self.resources.queue_arn for event in sqs_events(spec))

    def _consumer_concurrency(self, spec: FunctionSpec) -> int:
        if stream_events(spec) and not sqs_events(spec):
            return 1  # a stream's shard is read by one poller, in order
        if not sqs_events(spec):
            return 0
        return self.worker_concurrency if self._consumes_task_queue(spec) else 1

    # -- internals

    def _save_webhook_secret(self) -> str | None:
        """The value the stack generated for its WebhookSecret, written to `<state dir>/webhook-secret` (readable by
        its owner only) for a developer's receiver; None when the template has no such secret."""
        if WEBHOOK_SECRET not in self.resources.resources:
            return None
        from devstack.auth import STATE_DIR

        secrets = boto3.client("secretsmanager", endpoint_url=self.endpoint_url, region_name=REGION)
        value = secrets.get_secret_value(SecretId=self.resources[WEBHOOK_SECRET].arn)["SecretString"]
        directory = self._state_dir or STATE_DIR
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / WEBHOOK_SECRET_FILE
        path.touch(mode=0o600, exist_ok=True)
        path.write_text(f"whsec_{value}\n")
        return f"whsec_{value}"

    def _function_environment(self) -> dict[str, str]:
        """The union of the functions' variables (the functions' processes are started with all of them)."""
        union: dict[str, str] = {}
        for spec in self.sam_app.functions.values():
            for key, value in spec.environment.items():
                if union.get(key, value) != value:
                    logger.warning("%s differs between functions; %s's value %r wins", key, spec.name, value)
                union[key] = value
        union.update({key: os.environ[key] for key in PASSTHROUGH_VARIABLES if key in os.environ})
        if self._visibility_timeout is not None:
            # The worker's heartbeat reads the queue's visibility timeout from its settings, as deployed from the
            # template: here, the override the queues were created with.
            union["QUEUE_VISIBILITY_TIMEOUT"] = str(self._visibility_timeout)
        union.update(self._env)
        return union

    def _pool(self, name: str, *, warm: int, limit: int) -> EnvironmentPool:
        assert self.endpoint_url is not None
        assert self._lambda is not None
        saved = {key: os.environ[key] for key in self._saved_environ if key in os.environ}
        spec = self.sam_app.functions[name]
        config = EnvironmentConfig(
            spec=spec,
            environment=saved
            | self.environment
            | {"AWS_ENDPOINT_URL": self.endpoint_url, "AWS_ENDPOINT_URL_LAMBDA": self._lambda.url},
            task_modules=self._task_modules,
            log_level=logging.getLogger().getEffectiveLevel(),
            resources=self.resources if sqs_events(spec) or stream_events(spec) else None,
        )
        return EnvironmentPool(config, warm=warm, limit=limit)

    def _route_authorizers(self) -> RouteAuthorizers | None:
        if self.issuer is None:
            return None
        from devstack.api import RouteAuthorizers
        from devstack.auth import JwtAuthorizer, JwtConfiguration
        from devstack.template import api_security

        security = api_security(self.template, self.resources.parameters)
        authorizers = {}
        for name, scheme in security.schemes.items():
            declared = scheme.get("x-amazon-apigateway-authorizer", {})
            if declared.get("type") != "jwt":
                continue
            jwt = declared["jwtConfiguration"]
            audience = jwt["audience"]
            configuration = JwtConfiguration(
                issuer=jwt["issuer"],
                audience=tuple(audience.split(",") if isinstance(audience, str) else audience),
                identity_header=declared.get("identitySource", "$request.header.Authorization").rsplit(".", 1)[-1],
            )
            if configuration.issuer != self.issuer.issuer:
                raise ValueError(f"authorizer {name}: the local stack issues tokens for {self.issuer.issuer} only")
            authorizers[name] = JwtAuthorizer(configuration, self.issuer.public_keys())
        return RouteAuthorizers(security, authorizers)

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
