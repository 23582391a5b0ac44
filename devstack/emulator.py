"""The AWS emulator: moto's server in a process of its own, on 127.0.0.1 and a free port.

A process of its own, not a thread: moto, the handlers and the API emulation are all CPU-bound Python, and in
one process they would queue for one interpreter lock while the machine's other cores idle.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import threading
from collections import deque
from typing import Any

STARTUP_TIMEOUT_SECONDS = 30


_ATTRIBUTE_VALUE = "AttributeValue"
_SCALARS = {"S": str, "N": str, "BOOL": bool, "NULL": bool}


def _wire_ready(value: Any) -> bool:
    """A DynamoDB AttributeValue already in its JSON wire form (no binary): moto's serializer would copy it."""
    if type(value) is not dict or len(value) != 1:
        return False
    ((kind, inner),) = value.items()
    scalar = _SCALARS.get(kind)
    if scalar is not None:
        return type(inner) is scalar
    if kind in ("SS", "NS"):
        return type(inner) is list and all(type(item) is str for item in inner)
    if kind == "M":
        return type(inner) is dict and all(_wire_ready(item) for item in inner.values())
    if kind == "L":
        return type(inner) is list and all(_wire_ready(item) for item in inner)
    return False


def _make_dynamodb_atomic() -> None:
    """One DynamoDB request at a time, as DynamoDB answers them: moto's server runs requests in threads and
    applies an UpdateItem's SET actions one by one to the stored item, so a GetItem in between could see a task
    already `succeeded` whose `result` is not written yet. The answer is serialized inside the lock too."""
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.Lock()
    call_action = DynamoHandler.call_action

    def atomic_call_action(self: Any) -> Any:
        with lock:
            return call_action(self)

    DynamoHandler.call_action = atomic_call_action  # type: ignore[method-assign]


def _speed_up_moto() -> None:
    """Per-request costs of moto's server that do not change what it answers (measured with py-spy)."""
    import functools
    import importlib
    import time

    import moto.core.utils
    import moto.sqs.models
    from moto import backends
    from moto.core.serialize import BaseJSONSerializer
    from moto.dynamodb.comparisons import ConditionExpressionParser

    # Typed as Any: some of moto's modules are not typed for mypy, and these are its internals.
    responses: Any = importlib.import_module("moto.core.responses")
    update_parser: Any = importlib.import_module("moto.dynamodb.parsing.expressions").UpdateExpressionParser

    # moto's server lists its own package directory on every request to recognise service names in the
    # host (moto.backends.list_of_moto_modules): a third of its time per request. The list never changes.
    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules

    # inspect.getmembers of the handler class on every request, to check that the action exists.
    responses.method_names_from_class = functools.cache(responses.method_names_from_class)

    # SQS: a receive checks each message's retention period by computing every queue attribute (counting
    # the queue's messages three times, with a datetime per message): quadratic in the queue's length. The
    # retention period is an attribute of its own; and the clock needs no datetime.
    def unix_time(dt: Any = None) -> float:
        return time.time() if dt is None else moto.core.utils.unix_time(dt)

    def unix_time_millis(dt: Any = None) -> float:
        return time.time() * 1000.0 if dt is None else moto.core.utils.unix_time_millis(dt)

    moto.sqs.models.unix_time = unix_time  # type: ignore[attr-defined]
    moto.sqs.models.unix_time_millis = unix_time_millis  # type: ignore[attr-defined]

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        retention = int(self.get_queue(queue_name).message_retention_period)
        return bool(retention + message.sent_timestamp / 1000 > time.time())

    moto.sqs.models.SQSBackend.is_message_valid_based_on_retention_period = (  # type: ignore[method-assign]
        is_message_valid_based_on_retention_period
    )

    # DynamoDB: items are kept in their wire form ({"S": ...}); the generic serializer rebuilds each attribute
    # value member by member (a third of a GetItem). Copy them as they are when they hold no binary.
    serialize_map = BaseJSONSerializer._serialize_type_map
    serialize_structure = BaseJSONSerializer._serialize_type_structure

    def _serialize_type_map(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if shape.value.name == _ATTRIBUTE_VALUE and type(value) is dict and all(map(_wire_ready, value.values())):
            serialized[self.get_serialized_name(shape, key)] = value
            return
        serialize_map(self, serialized, value, shape, key)

    def _serialize_type_structure(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if key and shape.name == _ATTRIBUTE_VALUE and _wire_ready(value):
            serialized[self.get_serialized_name(shape, key)] = value
            return
        serialize_structure(self, serialized, value, shape, key)

    BaseJSONSerializer._serialize_type_map = _serialize_type_map  # type: ignore[method-assign]
    BaseJSONSerializer._serialize_type_structure = _serialize_type_structure  # type: ignore[method-assign]

    # DynamoDB: an UpdateItem parses its update expression twice and lexes its condition twice, character by
    # character with regular expressions. Both depend on the expression's text alone (values come later), and a
    # service uses a handful of expressions: parse each once. (The validator works on a deep copy of the tree.)
    make_update_tree = update_parser.make
    update_parser.make = functools.lru_cache(maxsize=512)(make_update_tree)

    lex = ConditionExpressionParser._lex_condition_expression
    lexed: dict[str, tuple[Any, ...]] = {}

    def _lex_condition_expression(self: Any) -> Any:
        tokens = lexed.get(self.condition_expression)
        if tokens is None:
            tokens = tuple(lex(self))  # immutable nodes; the parser consumes its own deque of them
            if len(lexed) < 512:
                lexed[self.condition_expression] = tokens
        return deque(tokens)

    ConditionExpressionParser._lex_condition_expression = _lex_condition_expression  # type: ignore[method-assign]


def _preserve_underscored_headers(environ: dict[str, Any], headers: list[tuple[str, str]]) -> None:
    # What moto's own request handler (MotoRequestHandler) adds to werkzeug's environ: headers whose names hold
    # an underscore (S3 metadata), under their original spelling.
    from moto.core.request import (
        PRESERVED_HEADER_NAMES_ENVIRON_KEY,
        environ_key_for_header,
        should_preserve_original_header_name,
    )

    names: dict[str, str] = {}
    values: dict[str, list[str]] = {}
    for name, value in headers:
        if "_" not in name or not should_preserve_original_header_name(name):
            continue
        key = environ_key_for_header(name)
        if key in environ:  # never let an underscored header stand in for a dashed one
            continue
        names.setdefault(key, name)
        values.setdefault(key, []).append(value)
    for key, key_values in values.items():
        environ[key] = ",".join(key_values)
    environ[PRESERVED_HEADER_NAMES_ENVIRON_KEY] = names


def _serve(host: str, ready: multiprocessing.connection.Connection, stop: Any) -> None:
    _speed_up_moto()
    _make_dynamodb_atomic()
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    from devstack.wsgi import WSGIServer

    # moto's server application, as `moto_server` and ThreadedMotoServer run it, on a server that keeps
    # connections open (werkzeug's closes each after one request: a TCP connection and a thread per AWS call).
    server = WSGIServer(
        host,
        0,
        DomainDispatcherApplication(create_backend_app),
        environ_hook=_preserve_underscored_headers,
        name="moto",
    )
    thread = threading.Thread(target=server.serve_forever, name="moto", daemon=True)
    thread.start()
    ready.send((server.host, server.server_port))
    stop.wait()
    server.shutdown()
    server.server_close()


class MotoProcess:
    """`with MotoProcess() as moto: moto.endpoint_url` — stopped, and its port freed, on exit."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._host = host
        # spawn, not fork: the parent runs threads, and a forked child would inherit their locks.
        self._context = multiprocessing.get_context("spawn")
        self._stop = self._context.Event()
        self._process: multiprocessing.process.BaseProcess | None = None
        self.endpoint_url = ""

    def start(self) -> MotoProcess:
        receiver, sender = self._context.Pipe(duplex=False)
        self._process = self._context.Process(
            target=_serve, args=(self._host, sender, self._stop), name="aws-emulator", daemon=True
        )
        self._process.start()
        if not receiver.poll(STARTUP_TIMEOUT_SECONDS):
            self.stop()
            raise RuntimeError("the AWS emulator (moto) did not start")
        host, port = receiver.recv()
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        if self._process is None:
            return
        self._stop.set()
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=5)
        self._process = None

    def __enter__(self) -> MotoProcess:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
