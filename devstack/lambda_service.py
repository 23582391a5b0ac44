"""Lambda's API for the template's durable functions, on 127.0.0.1: the functions reach it as AWS_ENDPOINT_URL_LAMBDA.

The durable execution service is aws-durable-execution-sdk-python-testing's web runner (the "dex emulator"), in a
process of its own with a sqlite store that outlives the execution environments. This service adds what that runner
leaves to Lambda, and passes it every other request (checkpoint, state, get, stop, list, history):
- Invoke of a durable function, InvocationType Event, starts its execution, idempotent by execution name as Lambda
  documents it (docs.aws.amazon.com/lambda/latest/dg/durable-execution-idempotency.html): the same name and payload
  answer the existing execution, running or closed; another payload is DurableExecutionAlreadyStartedException (409).
  RequestResponse and DryRun, and Invoke of any other function, are refused (501): locally the API and the event
  sources invoke those.
- The runner's own Invoke of the handler (marked X-Dex-Handler-Invoke) runs in one of the function's execution
  environments (devstack.environments: one invocation at a time, stopped at the function's Timeout); a handler that
  raised, was killed or timed out is a function error, which the runner retries (its 5 s backoff, 5 at most in a row).
- When an execution started here ends, Lambda's "Durable Execution Status Change" event goes to the default bus.
A function with AutoPublishAlias has one published version locally, 1, which the alias names.
"""

from __future__ import annotations

import http.client
import json
import logging
import multiprocessing.connection
import re
import socket
import sys
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from botocore.exceptions import BotoCoreError, ClientError
from werkzeug.wrappers import Request, Response

from devstack.child import ChildProcess, StopSignal
from devstack.environments import EnvironmentPool, lambda_answer
from devstack.serving import ThreadedServer
from devstack.template import ACCOUNT_ID, REGION, FunctionSpec

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient

logger = logging.getLogger(__name__)

# The runner's handler invocations carry this header (aws_durable_execution_sdk_python_testing.invoker).
HANDLER_INVOKE_HEADER = "X-Dex-Handler-Invoke"
# The runner gives up on an invocation after this long; the environments stop each at its function's own Timeout,
# so this only bounds the wait for a free environment (Lambda's longest Timeout).
RUNNER_INVOCATION_TIMEOUT_SECONDS = 900
WATCH_SECONDS = 0.5
STATUS_CHANGE = "Durable Execution Status Change"
DEX_TIMEOUT_SECONDS = 30
_FUNCTION = re.compile(
    r"^(?:arn:aws[a-zA-Z-]*:lambda:(?P<region>[a-z0-9-]+):)?(?:(?P<account>\d{12}):)?(?:function:)?"
    r"(?P<name>[a-zA-Z0-9_-]+)(?::(?P<qualifier>\$LATEST|[a-zA-Z0-9_-]+))?$"
)
_INVOKE = re.compile(r"^/2015-03-31/functions/(?P<function>[^/]+)/invocations$")
_EXECUTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class Refused(Exception):
    """A request Lambda answers with an error: `status`, its error type and message."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type

    def response(self) -> Response:
        body = json.dumps({"Type": "User" if self.status < 500 else "Service", "Message": str(self)})
        return Response(body, self.status, {"x-amzn-ErrorType": self.error_type}, content_type="application/json")


class LambdaService:
    """The WSGI application and its server: bound at once, since its URL goes into the functions' environment;
    serving from start(), given the template's functions, the durable ones' pools, the runner and the bus."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._functions: dict[str, FunctionSpec] = {}
        self._pools: dict[str, EnvironmentPool] = {}
        self._dex_url = ""
        self._events: EventBridgeClient | None = None
        self._starting = threading.Lock()  # one start at a time: a name is looked up and started as one step
        self._running: set[str] = set()  # the executions started here, until their end is announced
        self._stopping = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="durable-execution-ends", daemon=True)
        self._server = ThreadedServer(self, host, 0)

    @property
    def url(self) -> str:
        return self._server.url

    def start(
        self,
        functions: dict[str, FunctionSpec],
        pools: dict[str, EnvironmentPool],
        dex_url: str = "",
        events: EventBridgeClient | None = None,
    ) -> None:
        """`functions` by logical id; `pools` the durable ones' environments, by logical id; `events` the client
        that puts the executions' ends on the default bus."""
        self._functions = {spec.function_name or spec.name: spec for spec in functions.values()}
        self._pools, self._dex_url, self._events = pools, dex_url, events
        self._server.start()
        if events is not None:
            self._watcher.start()

    def stop(self) -> None:
        self._server.stop()
        self._stopping.set()
        if self._watcher.is_alive():
            self._watcher.join(timeout=DEX_TIMEOUT_SECONDS)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        invoke = _INVOKE.match(request.path)
        try:
            if invoke and request.method == "POST":
                response = self._invoke(request, invoke["function"])
            else:
                # The durable execution APIs, passed as sent: an execution's ARN is one path segment, its / encoded.
                response = self._pass(request, environ.get("RAW_URI") or request.full_path)
        except Refused as refusal:
            response = refusal.response()
        return response(environ, start_response)

    def _invoke(self, request: Request, identifier: str) -> Response:
        spec, version = self._resolve(identifier, request.args.get("Qualifier"))
        payload = request.get_data(as_text=True) or "{}"
        if request.headers.get(HANDLER_INVOKE_HEADER) == "true" and spec.name in self._pools:
            answer, failed = lambda_answer(self._pools[spec.name], payload)
            headers = {"X-Amz-Executed-Version": version} | ({"X-Amz-Function-Error": "Unhandled"} if failed else {})
            return Response(answer, 200, headers, content_type="application/json")
        invocation_type = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if spec.durable is None or invocation_type != "Event":
            raise Refused(
                501,
                "NotImplemented",
                "the local stack's Lambda invokes durable functions, with InvocationType Event, only"
                f" ({spec.function_name} is {'durable' if spec.durable else 'not durable'}; {invocation_type})",
            )
        try:
            json.loads(payload)
        except ValueError as error:
            raise Refused(400, "InvalidRequestContentException", "Could not parse request body into json") from error
        name = request.headers.get("X-Amz-Durable-Execution-Name") or str(uuid.uuid4())
        if not _EXECUTION_NAME.match(name):
            raise Refused(400, "InvalidParameterValueException", f"invalid durable execution name {name!r}")
        arn = self._start(spec, version, name, payload)
        return Response(b"", 202, {"X-Amz-Durable-Execution-Arn": arn})

    def _resolve(self, identifier: str, qualifier: str | None) -> tuple[FunctionSpec, str]:
        """The function a name, partial or full ARN names, and the version its qualifier gives ($LATEST or 1)."""
        parts = _FUNCTION.match(identifier)
        if parts is None:
            raise Refused(400, "ValidationException", f"invalid function name {identifier!r}")
        if qualifier and parts["qualifier"] and qualifier != parts["qualifier"]:
            raise Refused(
                400, "InvalidParameterValueException", "The derived qualifier from the function name does not match"
            )
        qualifier = qualifier or parts["qualifier"] or "$LATEST"
        spec = self._functions.get(parts["name"])
        if spec is None or (parts["region"] or REGION) != REGION or (parts["account"] or ACCOUNT_ID) != ACCOUNT_ID:
            raise Refused(404, "ResourceNotFoundException", f"Function not found: {identifier}")
        if qualifier == "$LATEST":
            return spec, qualifier
        if spec.alias is not None and qualifier in (spec.alias, "1"):
            return spec, "1"
        raise Refused(404, "ResourceNotFoundException", f"Function not found: {spec.function_name}:{qualifier}")

    def _start(self, spec: FunctionSpec, version: str, name: str, payload: str) -> str:
        assert spec.durable is not None
        with self._starting:
            function = quote(spec.function_name, safe="")
            listed = _dex(self._dex_url, "GET", f"/2025-12-01/functions/{function}/durable-executions", name=name)
            for execution in listed.get("DurableExecutions", []):
                arn: str = execution["DurableExecutionArn"]
                existing = _dex(self._dex_url, "GET", f"/2025-12-01/durable-executions/{quote(arn, safe='')}")
                if existing.get("InputPayload") != payload:
                    raise Refused(
                        409,
                        "DurableExecutionAlreadyStartedException",
                        f"durable execution {name!r} of {spec.function_name} already started with another payload",
                    )
                return arn
            started = _dex(
                self._dex_url,
                "POST",
                "/start-durable-execution",
                body={
                    "AccountId": ACCOUNT_ID,
                    "FunctionName": spec.function_name,
                    "FunctionQualifier": version,
                    "ExecutionName": name,
                    "ExecutionTimeoutSeconds": int(spec.durable["ExecutionTimeout"]),
                    "ExecutionRetentionPeriodDays": int(spec.durable.get("RetentionPeriodInDays", 14)),
                    "Input": payload,
                },
            )
            arn = started["ExecutionArn"]
            self._running.add(arn)
        return arn

    def _pass(self, request: Request, uri: str) -> Response:
        status, headers, body = _request(self._dex_url, request.method, uri, request.get_data(), request.content_type)
        return Response(body, status, headers)

    def _watch(self) -> None:
        """Lambda puts "Durable Execution Status Change" on the default bus as an execution ends (source aws.lambda;
        the template's rules route it): each execution started here is read twice a second until it has ended.
        RUNNING is not announced."""
        assert self._events is not None
        while not self._stopping.wait(WATCH_SECONDS):
            with self._starting:
                running = list(self._running)
            for arn in running:
                try:
                    execution = _dex(self._dex_url, "GET", f"/2025-12-01/durable-executions/{quote(arn, safe='')}")
                    if execution["Status"] == "RUNNING":
                        continue
                    detail = {
                        "durableExecutionArn": arn,
                        "durableExecutionName": execution["DurableExecutionName"],
                        "functionArn": execution["FunctionArn"],
                        "status": execution["Status"],
                        "startTimestamp": _iso(execution["StartTimestamp"]),
                        "endTimestamp": _iso(execution["EndTimestamp"]),
                    }
                    put = self._events.put_events(
                        Entries=[{"Source": "aws.lambda", "DetailType": STATUS_CHANGE, "Detail": json.dumps(detail)}]
                    )
                    if put["FailedEntryCount"] == 0:
                        with self._starting:
                            self._running.discard(arn)
                except (Refused, BotoCoreError, ClientError):
                    logger.exception("the end of durable execution %s could not be announced; trying again", arn)


def _request(
    base_url: str, method: str, uri: str, body: bytes | None = None, content_type: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request to the runner: its status, the headers a Lambda client reads, and its body."""
    address = urlsplit(base_url)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=DEX_TIMEOUT_SECONDS)
    try:
        connection.request(method, uri, body=body, headers={"Content-Type": content_type or "application/json"})
        response = connection.getresponse()
        answer = response.read()
    except OSError as error:
        raise Refused(500, "ServiceException", f"the durable execution emulator did not answer: {error}") from error
    finally:
        connection.close()
    headers = {key: value for key, value in response.getheaders() if key.lower().startswith(("content-type", "x-amz"))}
    return response.status, headers, answer


def _dex(base_url: str, method: str, path: str, *, body: Any = None, name: str | None = None) -> dict[str, Any]:
    """The runner's JSON answer; Refused (500) when it has none."""
    uri = path + (f"?DurableExecutionName={quote(name)}" if name else "")
    status, _, answer = _request(base_url, method, uri, json.dumps(body).encode() if body is not None else None)
    if status >= 300:
        raise Refused(500, "ServiceException", f"the durable execution emulator answered {status}: {answer[:500]!r}")
    result: dict[str, Any] = json.loads(answer or b"{}")
    return result


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _serve_dex(
    host: str,
    lambda_url: str,
    store: Path,
    log_level: int,
    ready: multiprocessing.connection.Connection,
    stop: StopSignal,
) -> None:
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stdout)
    # It logs every request at INFO.
    logging.getLogger("aws_durable_execution_sdk_python_testing").setLevel(max(logging.WARNING, log_level))
    from aws_durable_execution_sdk_python_testing import WebRunner, WebRunnerConfig
    from aws_durable_execution_sdk_python_testing.stores.base import StoreType
    from aws_durable_execution_sdk_python_testing.web.server import WebServiceConfig

    # The runner serves on the port it is given and does not say which one port 0 gave it: a free one, picked here.
    with socket.socket() as probe:
        probe.bind((host, 0))
        port = probe.getsockname()[1]
    runner = WebRunner(
        WebRunnerConfig(
            web_service=WebServiceConfig(host=host, port=port, log_level=log_level),
            lambda_endpoint=lambda_url,
            local_runner_region=REGION,
            store_type=StoreType.SQLITE,
            store_path=str(store),
            invocation_timeout_seconds=RUNNER_INVOCATION_TIMEOUT_SECONDS,
        )
    )
    runner.start()
    threading.Thread(target=runner.serve_forever, name="dex", daemon=True).start()
    ready.send(port)
    stop.wait()
    runner.stop()


class DexProcess(ChildProcess):
    """The durable execution emulator in a process of its own; `url` once ready. Its store is a new sqlite file,
    removed when it stops: an execution in flight when the stack stops is not resumed by the next start (the
    runner's timers live in its process)."""

    def __init__(self, lambda_url: str, store: Path, host: str = "127.0.0.1") -> None:
        self._store = store
        self._remove_store()  # a stack killed with this pid left it
        store.parent.mkdir(parents=True, exist_ok=True)
        arguments = (host, lambda_url, store, logging.getLogger().getEffectiveLevel())
        description = "the durable execution emulator"
        super().__init__(_serve_dex, arguments, name="dex", description=description, startup_timeout=60, stop_timeout=5)
        self._host = host
        self.url = ""

    def wait_ready(self) -> int:
        port: int = super().wait_ready()
        self.url = f"http://{self._host}:{port}"
        return port

    def stop(self) -> None:
        super().stop()
        self._remove_store()

    def _remove_store(self) -> None:
        for path in self._store.parent.glob(f"{self._store.name}*"):  # with its -wal and -shm files
            path.unlink(missing_ok=True)
