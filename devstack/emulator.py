"""The AWS emulator: moto's server in a process of its own, on 127.0.0.1 and a free port.

A process of its own, not a thread: moto, the handlers and the API emulation are all CPU-bound Python, and in
one process they would queue for one interpreter lock while the machine's other cores idle.
"""

from __future__ import annotations

import importlib
import io
import multiprocessing
import multiprocessing.connection
import threading
from collections import deque
from typing import Any

from devstack.child import ChildHandle, ChildProcess, StopSignal

STARTUP_TIMEOUT_SECONDS = 30


_ATTRIBUTE_VALUE = "AttributeValue"
# DynamoDB's and SQS's content type: application/x-amz-json-1.0 (1.1 for other services of the protocol).
_JSON_PROTOCOL = "application/x-amz-json-"
# What werkzeug builds a request's URL from.
_URL_ENVIRON = (
    "wsgi.url_scheme",
    "HTTP_HOST",
    "SERVER_NAME",
    "SERVER_PORT",
    "SCRIPT_NAME",
    "PATH_INFO",
    "RAW_URI",
    "QUERY_STRING",
)
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
    import copy
    import functools
    import json
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

    # A conditional PutItem or UpdateItem parses its condition twice: once to check the names it uses, once to
    # evaluate it (a fifth of a PutItem). The tree depends on the expression, names and values alone, and nothing
    # changes it once built (its nodes only read the item): the second parse takes the first's. The values it holds
    # are a private copy, so that no request's objects are kept. Values that are not JSON (binary) are not cached.
    # (Its only effects besides the tree are the two lists of what it found: checked with its source.)
    parse = ConditionExpressionParser.parse
    _moto_source_is(parse, "5c9b63c5f49ed5d5d644eb0ac7422fb3c2ac4bbd310374f4161686bc4e10c453")
    parsed: dict[tuple[Any, str, str], tuple[Any, list[str], list[str]]] = {}

    def parse_condition(self: Any) -> Any:
        try:
            names = json.dumps(self.expression_attribute_names, sort_keys=True)
            values = json.dumps(self.expression_attribute_values, sort_keys=True)
        except (TypeError, ValueError):
            return parse(self)
        key = (self.condition_expression, names, values)
        found = parsed.get(key)
        if found is None:
            private = copy.copy(self)
            private.expression_attribute_values = json.loads(values)
            private.expr_attr_names_found, private.expr_attr_values_found = [], []
            found = (parse(private), private.expr_attr_names_found, private.expr_attr_values_found)
            if len(parsed) >= 512:
                parsed.clear()
            parsed[key] = found
        tree, names_found, values_found = found
        self.expr_attr_names_found.extend(names_found)
        self.expr_attr_values_found.extend(values_found)
        return tree

    ConditionExpressionParser.parse = parse_condition  # type: ignore[method-assign]

    _speed_up_update_expressions()
    _speed_up_sqs_messages()
    _speed_up_random_strings()


def _moto_source_is(function: Any, sha256: str) -> None:
    """Fail at startup when a moto function that devstack rewrites (an equivalent, faster copy) has changed."""
    import hashlib
    import inspect

    digest = hashlib.sha256(inspect.getsource(function).encode()).hexdigest()
    if digest != sha256:
        raise RuntimeError(f"moto's {function.__qualname__} changed (sha256 {digest}): review devstack's copy of it")


def _speed_up_update_expressions() -> None:
    """DynamoDB UpdateItem: moto validates the update expression's tree with ten depth-first passes over a deep copy
    of it, each node checked with isinstance against abstract classes (ABCMeta's slow path): most of an UpdateItem."""
    import abc
    import copy
    import copyreg

    ast_nodes: Any = importlib.import_module("moto.dynamodb.parsing.ast_nodes")
    validators: Any = importlib.import_module("moto.dynamodb.parsing.validators")
    node_class = ast_nodes.Node
    traverser = ast_nodes.DepthFirstTraverser

    # isinstance against these classes depends on the instance's class alone, until a class is registered as a
    # virtual subclass of an ABC (abc's cache token changes then, and so these answers are forgotten).
    isinstance_cache: dict[tuple[Any, type], bool] = {}
    token = [abc.get_cache_token()]

    get_cache_token = abc.get_cache_token

    def is_instance(kind: type, classes: Any, instance: Any) -> bool:
        if get_cache_token() != token[0]:
            isinstance_cache.clear()
            token[0] = get_cache_token()
        key = (classes, kind)
        found = isinstance_cache.get(key)
        if found is None:
            found = isinstance_cache[key] = isinstance(instance, classes)
        return found

    # -- the deep copy the validator works on: the tree's nodes are plain objects (their state a __dict__ of
    # children lists, strings, numbers and other nodes), copied as copy.deepcopy copies them (a new object of
    # the class, its __dict__ deep-copied, shared objects shared in the copy through the memo); anything else is
    # left to copy.deepcopy itself, with the same memo.
    def copied_plainly(kind: Any) -> bool:  # what copy.deepcopy does with an object of this class
        default: Any = object
        return (
            kind not in copy._deepcopy_dispatch  # type: ignore[attr-defined]
            and kind not in copyreg.dispatch_table
            and kind.__new__ is object.__new__
            and getattr(kind, "__deepcopy__", None) is None
            and kind.__reduce_ex__ is default.__reduce_ex__
            and kind.__reduce__ is default.__reduce__
            and kind.__getstate__ is default.__getstate__
            and not hasattr(kind, "__setstate__")
            and "__slots__" not in vars(kind)
        )

    plain_nodes: set[type] = set()
    pending = [node_class]
    while pending:
        kind = pending.pop()
        pending.extend(kind.__subclasses__())
        if copied_plainly(kind):
            plain_nodes.add(kind)
    if node_class not in plain_nodes or ast_nodes.UpdateExpressionSetAction not in plain_nodes:
        raise RuntimeError("moto's DynamoDB expression nodes are no longer plain objects: review devstack's copy")
    atoms = {str, int, float, bool, type(None), bytes}

    def copy_tree(value: Any, memo: dict[int, Any]) -> Any:
        kind = type(value)
        if kind in atoms:
            return value
        copied = memo.get(id(value), memo)
        if copied is not memo:
            return copied
        if kind is list:
            copied = memo[id(value)] = []
            copied.extend([copy_tree(item, memo) for item in value])
            return copied
        if kind in plain_nodes:
            copied = memo[id(value)] = object.__new__(kind)
            state = value.__dict__
            if state:
                copied.__dict__.update({name: copy_tree(item, memo) for name, item in state.items()})
            return copied
        return copy.deepcopy(value, memo)

    def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
        return copy_tree(value, {} if memo is None else memo)

    if validators.deepcopy is not copy.deepcopy:
        raise RuntimeError("moto.dynamodb.parsing.validators no longer uses copy.deepcopy")
    validators.deepcopy = deepcopy

    # -- the passes: the same visits in the same order (children first, left to right, each node replaced in its
    # parent by what its processor returns), without asking each node's class again at every node. A traverser's
    # _processing_map is a literal dict of classes in moto: read once per pass instead of once per node.
    original_recursion = traverser.traverse_node_recursively
    _moto_source_is(original_recursion, "d7f01d9b45cf9f64ac84751ec4c8cab3114e7c179350eb1b81ffe5f0a114aa78")
    _moto_source_is(traverser.traverse, "c78f8583f1961be7000602ba3b9fcb6c8f4a03eb61c09de2fc0defa40157c72d")
    no_pre_processing = traverser.pre_processing_of_child
    original_process = traverser.process
    _moto_source_is(original_process, "58328ec7c2f9b1f96244bf498dd0ca6d91e2fd83ea57a82f6190997b8d1f9d51")
    _moto_source_is(traverser.nodes_to_be_processed, "1c2c84c8097e35172d289d2cc30029d2d1c518f7680232a3f3c9f09e56a5e9b0")

    def traverse(self: Any, root: Any) -> Any:
        if type(self).traverse_node_recursively is not original_recursion:
            return self.traverse_node_recursively(root)
        classes = self.nodes_to_be_processed()
        pre = None if type(self).pre_processing_of_child is no_pre_processing else self.pre_processing_of_child
        process = self.process
        if type(self).process is original_process:
            # DepthFirstTraverser.process: the processor of the first class of the map the node is an instance of.
            processors = list(self._processing_map().items())

            def process(node: Any) -> Any:
                kind = type(node)
                for class_key, processor in processors:
                    if is_instance(kind, class_key, node):
                        return processor(node)
                return None

        def visit(node: Any, child_id: int) -> Any:
            kind = type(node)
            if not is_instance(kind, node_class, node):
                return node
            parent_node = node.parent
            if node.children is not None:
                for i, child_node in enumerate(node.children):
                    if pre is not None:
                        pre(node, i)
                    visit(child_node, i)
            if is_instance(kind, classes, node):
                node = process(node)
                node.parent = parent_node
                if parent_node:
                    parent_node.children[child_id] = node
            return node

        return visit(root, -1)

    traverser.traverse = traverse

    descend_into = (ast_nodes.Expression, ast_nodes.UpdateExpressionFunction)

    def find_clauses(self: Any, clause_types: Any) -> list[Any]:
        clauses = []
        for child in self.children or []:
            kind = type(child)
            if kind in clause_types:
                clauses.append(child)
            elif is_instance(kind, descend_into, child):
                clauses.extend(child.find_clauses(clause_types))
        return clauses

    _moto_source_is(node_class.find_clauses, "b77be7ac447d7617ea68e818e2bceb652a8a14257001715c64b36b3244a04c55")
    node_class.find_clauses = find_clauses

    # -- the first three passes of an UpdateExpressionValidator check the expression against itself (one SET, one
    # REMOVE...; no overlapping paths), its attribute names and the table's key: not the item, not the values. They
    # raise or return the tree as it was. Once they have passed for an expression (the parsed tree, which devstack
    # keeps per expression text), its names and the table's key, the same request passes them again: skip them.
    update_validator = validators.UpdateExpressionValidator
    validator_init = validators.Validator.__init__
    _moto_source_is(validator_init, "9489b532dd0fb359e273711c1a67971f1b73af47ddbaa91868e9cc42a26ddbb3")
    _moto_source_is(validators.Validator.validate, "5a99f0d36c7b7b8ebfa3e745203515f57a9b99109cfca55a039153a8f6b081c6")
    _moto_source_is(
        update_validator.get_ast_processors, "918400bbecd67e8321619b3141e6a276e91a5112c8e8b602fbbc748d83329af6"
    )
    value_free = (validators.ActionCountValidator, validators.OverlappingPathsValidator)
    key_check = validators.UpdateHashRangeKeyValidator
    passed: dict[int, tuple[Any, set[Any]]] = {}  # id(tree) -> (tree, keys it passed with)

    def shape(root: Any) -> list[Any]:
        nodes, pending = [], [root]
        while pending:
            node = pending.pop()
            if isinstance(node, node_class):
                children = node.children or []
                nodes.append((node, node.parent, node.children, tuple(map(id, children))))
                pending.extend(children)
        return nodes

    def init(
        self: Any,
        expression: Any,
        expression_attribute_names: Any,
        expression_attribute_values: Any,
        item: Any,
        table: Any,
    ) -> None:
        validator_init(self, expression, expression_attribute_names, expression_attribute_values, item, table)
        self.devstack_expression = expression

    def validate(self: Any) -> Any:
        n = self.node_to_validate
        processors = self.processors
        expression = self.devstack_expression
        try:
            key: Any = (frozenset(self.expression_attribute_names.items()), tuple(self.table.table_key_attrs))
        except (AttributeError, TypeError):
            key = None
        if key is None or [type(p) for p in processors[:3]] != [*value_free, key_check]:
            for processor in processors:
                n = processor.traverse(n)
            return n
        entry = passed.get(id(expression))
        if entry is None or entry[0] is not expression or key not in entry[1]:
            before = shape(n)
            for processor in processors[:3]:
                n = processor.traverse(n)
            if n is self.node_to_validate and shape(n) == before:
                if len(passed) >= 512:
                    passed.clear()
                passed.setdefault(id(expression), (expression, set()))[1].add(key)
        for processor in processors[3:]:
            n = processor.traverse(n)
        return n

    update_validator.__init__ = init
    update_validator.validate = validate


def _speed_up_sqs_messages() -> None:
    """SQS SendMessage computes every attribute of the queue (counting its messages three times, a clock reading per
    message and count) to read one that only FIFO queues have: its cost grows with the queue's length."""
    import string

    sqs_models: Any = importlib.import_module("moto.sqs.models")
    backend = sqs_models.SQSBackend
    send_message = backend.send_message
    _moto_source_is(send_message, "bf161af09a9e6b860e3dd5d8f58ccc802623caa86883fab9b2ffb333f8f70330")
    random = sqs_models.random
    message_class = sqs_models.Message
    invalid_parameter_value = sqs_models.InvalidParameterValue
    maximum_message_delay = sqs_models.MAXIMUM_MESSAGE_DELAY

    # moto's SQSBackend.send_message (5.2.5), for standard queues, where `queue.attributes` has no
    # ContentBasedDeduplication (Queue.attributes lists FIFO_ATTRIBUTES for FIFO queues only): the test of it is
    # False. FIFO queues keep moto's own.
    def send_standard_message(
        self: Any,
        queue_name: str,
        message_body: str,
        message_attributes: dict[str, Any] | None = None,
        delay_seconds: int | None = None,
        deduplication_id: str | None = None,
        group_id: str | None = None,
        system_attributes: dict[str, Any] | None = None,
        validate_group_id: bool = True,
    ) -> Any:
        queue = self.get_queue(queue_name)
        if queue.fifo_queue:
            return send_message(
                self,
                queue_name,
                message_body,
                message_attributes=message_attributes,
                delay_seconds=delay_seconds,
                deduplication_id=deduplication_id,
                group_id=group_id,
                system_attributes=system_attributes,
                validate_group_id=validate_group_id,
            )

        self._validate_message(
            queue,
            message_body=message_body,
            delay_seconds=int(delay_seconds or 0),
            deduplication_id=deduplication_id,
            group_id=group_id,
            validate_group_id=validate_group_id,
        )

        delay_seconds = int(delay_seconds) if delay_seconds is not None else queue.delay_seconds

        message_id = str(random.uuid4())
        message = message_class(message_id, message_body, system_attributes)

        # (no content-based deduplication on a standard queue)

        # Attributes, but not *message* attributes
        if deduplication_id is not None:
            message.deduplication_id = deduplication_id
            message.sequence_number = "".join(random.choice(string.digits) for _ in range(20))

        if group_id is not None:
            message.group_id = group_id

        if message_attributes:
            message.message_attributes = message_attributes

        if delay_seconds > maximum_message_delay:
            msg = (
                f"Value {delay_seconds} for parameter DelaySeconds is invalid. "
                "Reason: DelaySeconds must be >= 0 and <= 900."
            )
            raise invalid_parameter_value(msg)

        message.mark_sent(delay_seconds=delay_seconds)

        queue.add_message(message)

        return message

    backend.send_message = send_standard_message


def _speed_up_random_strings() -> None:
    """moto draws its random strings (an SQS receipt handle: 185 letters per message received; a request id: 52
    characters per request) a character at a time through Random.choice. The same draws, inlined: the same
    getrandbits calls in the same order, so the same strings, also from a seeded generator."""
    import random
    import string

    moto_random: Any = importlib.import_module("moto.moto_api._internal.moto_random")
    sqs_utils: Any = importlib.import_module("moto.sqs.utils")
    sqs_models: Any = importlib.import_module("moto.sqs.models")
    generator_class = moto_random.MotoRandom
    base: Any = random.Random
    if (
        generator_class.choice is not base.choice
        or generator_class._randbelow is not base._randbelow_with_getrandbits
        or generator_class.getrandbits is not base.getrandbits
    ):
        raise RuntimeError("moto's MotoRandom no longer draws as random.Random does: review devstack's copy")
    _moto_source_is(
        generator_class.get_random_string, "942eb93ebea1f80a04ff8fc3f87f2f6fc1b035fd2e4c9e2edfa27d3bdf8e4872"
    )
    _moto_source_is(
        sqs_utils.generate_receipt_handle, "10853f98152c8dab0bee2f888f4153d41f62e377a4af7d8559904af4a8ac90ad"
    )

    def draw(generator: Any, pool: str, length: int) -> str:
        # Random.choice(pool) is pool[Random._randbelow_with_getrandbits(len(pool))], for a non-empty pool.
        size = len(pool)
        bits = size.bit_length()
        getrandbits = generator.getrandbits
        chars = []
        for _ in range(length):
            r = getrandbits(bits)
            while r >= size:
                r = getrandbits(bits)
            chars.append(pool[r])
        return "".join(chars)

    def get_random_string(self: Any, length: int = 20, include_digits: bool = True, lower_case: bool = False) -> str:
        pool = string.ascii_letters
        if include_digits:
            pool += string.digits
        random_str = draw(self, pool, length)
        return random_str.lower() if lower_case else random_str

    def generate_receipt_handle() -> str:
        return draw(sqs_utils.random, string.ascii_lowercase, 185)

    if sqs_models.generate_receipt_handle is not sqs_utils.generate_receipt_handle:
        raise RuntimeError("moto.sqs.models no longer uses moto.sqs.utils.generate_receipt_handle")
    generator_class.get_random_string = get_random_string
    sqs_utils.generate_receipt_handle = generate_receipt_handle
    sqs_models.generate_receipt_handle = generate_receipt_handle


def _json_protocol_fast_path(app: Any) -> Any:
    """moto's server app, with the DynamoDB and SQS JSON requests (POST / with an X-Amz-Target, every call the
    stack makes) handed straight to the handler that moto's Flask app routes them to, the way its view does
    it (moto.core.utils.convert_to_flask_response); every other request goes through the app. Flask's request
    and response machinery around that call (context, URL map, after-request hooks) was half of the CPU of a
    GetItem (py-spy)."""
    from botocore.exceptions import ClientError
    from flask import Response
    from moto.dynamodb.responses import DynamoHandler
    from moto.moto_api import recorder
    from moto.moto_server.werkzeug_app import BackendRequest
    from moto.sqs.responses import SQSResponse
    from werkzeug.datastructures import ImmutableMultiDict

    handlers = {"DynamoDB_20120810": DynamoHandler.dispatch, "AmazonSQS": SQSResponse.dispatch}
    view: Any = importlib.import_module("moto.core.utils").convert_to_flask_response.__call__
    _moto_source_is(view, "2c82766d05909ebb416d91eb9db685b57c639346d5eaea28e3a3a89c6607153e")
    no_form: Any = ImmutableMultiDict()
    urls: dict[tuple[Any, ...], str] = {}

    def raw_url(request: Any, environ: dict[str, Any]) -> str:
        # werkzeug builds it anew for every request (host, scheme and path checks): the same environ keys give the
        # same URL, and a client uses one endpoint.
        key = tuple(environ.get(name) for name in _URL_ENVIRON)
        url = urls.get(key)
        if url is None:
            url = request.raw_url
            if len(urls) < 64:
                urls[key] = url
        return url

    def fast_app(environ: dict[str, Any], start_response: Any) -> Any:
        handler = handlers.get(environ.get("HTTP_X_AMZ_TARGET", "").partition(".")[0])
        if handler is None or environ["REQUEST_METHOD"] != "POST" or environ.get("PATH_INFO") != "/":
            return app(environ, start_response)
        request = BackendRequest(environ)
        body = environ["wsgi.input"]
        if (
            type(body) is io.BytesIO
            and environ.get("CONTENT_TYPE", "").startswith(_JSON_PROTOCOL)
            and "HTTP_CONTENT_ENCODING" not in environ
        ):
            # What werkzeug's form parsing would give moto (a tenth of a request): a JSON body is not a form, so
            # no form fields and no files, and the data as sent, which devstack.wsgi has read whole.
            request._cached_data = body.getvalue()
            request.__dict__["form"] = request.__dict__["files"] = no_form
        try:
            recorder._record_request(request)
            result = handler(request, raw_url(request, environ), dict(request.headers))
        except ClientError as exc:
            result = 400, {}, exc.response["Error"]["Message"]
        status, headers, content = result if len(result) == 3 else (200, {}, result)
        response = Response(response=content, status=status, headers=headers)
        # What flask_cors, which moto's app installs, adds to every response.
        response.headers["Access-Control-Allow-Origin"] = "*"
        return response(environ, start_response)

    return fast_app


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


def _serve(host: str, ready: multiprocessing.connection.Connection, stop: StopSignal) -> None:
    _speed_up_moto()
    _make_dynamodb_atomic()
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    from devstack.wsgi import WSGIServer

    # moto's server application, as `moto_server` and ThreadedMotoServer run it, on a server that keeps
    # connections open (werkzeug's closes each after one request: a TCP connection and a thread per AWS call).
    server = WSGIServer(
        host,
        0,
        _json_protocol_fast_path(DomainDispatcherApplication(create_backend_app)),
        environ_hook=_preserve_underscored_headers,
        name="moto",
    )
    thread = threading.Thread(target=server.serve_forever, name="moto", daemon=True)
    thread.start()
    ready.send((server.host, server.server_port))
    stop.wait()
    server.shutdown()
    server.server_close()


class MotoProcess(ChildHandle):
    """`with MotoProcess() as moto: moto.endpoint_url` — stopped, and its port freed, on exit."""

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

    def __enter__(self) -> MotoProcess:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
