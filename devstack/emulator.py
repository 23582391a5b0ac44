"""The AWS emulator: moto's server application, unchanged, in a process of its own on 127.0.0.1 and a free port.

A process of its own, not a thread: moto, the API emulation and the poller are CPU-bound Python, and in one process
they would queue for one interpreter lock while the machine's other cores idle. Around moto's application, two small
WSGI layers: one that makes each DynamoDB request atomic, as DynamoDB is (a correctness fix), and one that counts the
requests by service and operation, for the benchmark's requests per task.
"""

from __future__ import annotations

import json
import multiprocessing.connection
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from devstack.child import ChildProcess, StopSignal
from devstack.serving import HTTP11RequestHandler, ThreadedServer

STARTUP_TIMEOUT_SECONDS = 30
# GET this path of the emulator: {"dynamodb.GetItem": 12, ...}, every request counted since it started.
REQUEST_COUNTS_PATH = "/_devstack/requests"
_SERVICES = {"DynamoDB_20120810": "dynamodb", "AmazonSQS": "sqs"}

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


class AtomicDynamoDB:
    """One DynamoDB request at a time, its answer read whole inside the lock.

    Corrects moto: its server runs requests in threads, and it applies an UpdateItem's SET actions one by one to the
    stored item, so a GetItem between two of them sees half an update (a task `succeeded` whose `result` is not
    written yet). DynamoDB applies each request atomically."""

    def __init__(self, app: WSGIApp) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_20120810."):
            return self._app(environ, start_response)
        started: list[tuple[Any, ...]] = []
        with self._lock:
            answer = self._app(environ, lambda *args: started.append(args))
            try:
                body = b"".join(answer)
            finally:
                close = getattr(answer, "close", None)
                if close is not None:
                    close()
        start_response(*started[0])
        return [body]


class RequestCounter:
    """Counts requests by `service.Operation` (from X-Amz-Target, as botocore's JSON protocol sends it for DynamoDB
    and SQS); serves the counts as JSON on REQUEST_COUNTS_PATH."""

    def __init__(self, app: WSGIApp) -> None:
        self._app = app
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == REQUEST_COUNTS_PATH:
            with self._lock:
                body = json.dumps(dict(self._counts), sort_keys=True).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        target = environ.get("HTTP_X_AMZ_TARGET")
        if target:
            service, _, operation = target.partition(".")
            name = f"{_SERVICES.get(service, service)}.{operation}"
        else:
            name = f"s3.{_s3_operation(environ)}"  # the only REST-protocol service the stack calls
        with self._lock:
            self._counts[name] += 1
        return self._app(environ, start_response)


def _s3_operation(environ: Environ) -> str:
    """An S3 request's operation, as S3 prices it: an object's PUT, GET or HEAD, a form POST (an upload)."""
    method = environ.get("REQUEST_METHOD", "")
    on_object = environ.get("PATH_INFO", "").strip("/").count("/") >= 1
    operations = {"PUT": "PutObject", "GET": "GetObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}
    if on_object and method in operations:
        return operations[method]
    return "PostObject" if method == "POST" else f"Bucket{method.title()}"


class ByTarget:
    """moto's application for the service an X-Amz-Target names (DynamoDB, SQS: every call the functions make), else
    moto's own dispatcher. Both build the service's app with moto's create_backend_app; moto's dispatcher would also
    list its package's directory, under one lock, to recognise a service's name on every request."""

    def __init__(self, fallback: WSGIApp, create_app: Callable[[Any], WSGIApp]) -> None:
        self._fallback = fallback
        self._apps = {target: create_app(service) for target, service in _SERVICES.items()}

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        app = self._apps.get(environ.get("HTTP_X_AMZ_TARGET", "").partition(".")[0], self._fallback)
        return app(environ, start_response)


def moto_app() -> WSGIApp:
    """moto's server application, as `moto_server` and ThreadedMotoServer build it, with the layers above."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    dispatcher = DomainDispatcherApplication(create_backend_app)
    return RequestCounter(AtomicDynamoDB(ByTarget(dispatcher, create_backend_app)))


def moto_request_handler() -> type[HTTP11RequestHandler]:
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    # moto's own handler keeps the original spelling of headers with underscores (S3 metadata).
    return type("MotoHTTP11RequestHandler", (MotoRequestHandler, HTTP11RequestHandler), {})


def _serve(host: str, ready: multiprocessing.connection.Connection, stop: StopSignal) -> None:
    server = ThreadedServer(moto_app(), host, 0, handler=moto_request_handler()).start()
    ready.send((server.host, server.port))
    stop.wait()
    server.stop()


def request_counts(endpoint_url: str) -> Counter[str]:
    """Every request the emulator at `endpoint_url` has answered, by `service.Operation`."""
    import urllib.request

    with urllib.request.urlopen(endpoint_url + REQUEST_COUNTS_PATH, timeout=10) as response:
        return Counter(json.load(response))


class MotoProcess:
    """`with MotoProcess() as moto: moto.endpoint_url` — stopped, and its port freed, on exit; `sentinel` is ready
    once its process has ended."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._child = ChildProcess(
            _serve,
            (host,),
            name="aws-emulator",
            description="the AWS emulator (moto)",
            startup_timeout=STARTUP_TIMEOUT_SECONDS,
            stop_timeout=5,
        )
        self.endpoint_url = ""

    def start(self) -> MotoProcess:
        host, port = self._child.start()
        self.endpoint_url = f"http://{host}:{port}"
        return self

    @property
    def pid(self) -> int | None:
        return self._child.pid

    @property
    def sentinel(self) -> int:
        return self._child.sentinel

    @property
    def exitcode(self) -> int | None:
        return self._child.exitcode

    def stop(self) -> None:
        self._child.stop()

    def __enter__(self) -> MotoProcess:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
