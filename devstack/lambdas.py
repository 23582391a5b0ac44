"""Lambda functions run in this process: each concurrent invocation gets its own copy of the handler module.

Lambda runs one invocation per execution environment at a time, and the handlers rely on that: Powertools'
resolver keeps the current event on a module-level `app`, the batch processor keeps its records on a
module-level `processor`. So, like Lambda, an invocation takes an idle "container" (a private copy of the
handler's module) or starts a new one (a cold start). Modules they import (`core.*`) are shared by all, and
so is Powertools' Logger: one invocation's log lines can carry another's keys. `make run` runs the functions in
processes of their own (devstack.environments, devstack.worker_process); this runner serves the tests and the
bench that reach into the functions in this process.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from samcli.local.lambdafn.exceptions import FunctionNotFound

from devstack.template import REGION, FunctionSpec

logger = logging.getLogger(__name__)
ACCOUNT_ID = "123456789012"

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
        return f"local/[{self.function_version}]{threading.current_thread().name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self._started)) * 1000))


class LambdaFunction:
    """One function of the template with its pool of idle containers."""

    def __init__(self, spec: FunctionSpec) -> None:
        self.spec = spec
        module_name, _, self._attribute = spec.handler.rpartition(".")
        found = importlib.util.find_spec(module_name)
        if found is None or found.loader is None:
            raise FunctionNotFound(f"{spec.name}: no module {module_name} on sys.path (handler {spec.handler})")
        self._module_spec = found
        self._idle: list[ModuleType] = []
        self._lock = threading.Lock()

    def _container(self) -> ModuleType:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        module = importlib.util.module_from_spec(self._module_spec)
        self._module_spec.loader.exec_module(module)  # type: ignore[union-attr]
        logger.debug("cold start of %s", self.spec.name)
        return module

    def initialize(self) -> None:
        """Import the handler's module now (Lambda's init phase), not at the first invocation."""
        container = self._container()
        with self._lock:
            self._idle.append(container)

    def invoke(self, event: dict[str, Any]) -> Any:
        """Run the handler on `event`; exceptions propagate as Lambda would report them."""
        container = self._container()
        try:
            context = LambdaContext(self.spec.name, self.spec.memory, self.spec.timeout)
            handler: Handler = getattr(container, self._attribute)
            return handler(event, context)
        finally:
            with self._lock:
                self._idle.append(container)


def error_payload(error: BaseException) -> dict[str, Any]:
    """The body Lambda returns for an unhandled exception."""
    return {
        "errorMessage": str(error),
        "errorType": type(error).__name__,
        "stackTrace": traceback.format_tb(error.__traceback__),
    }


class LambdaRunner:
    """A lambda_runner for samcli's LocalApigwService, which runs functions in Docker: here they run without it."""

    def is_debugging(self) -> bool:
        # False makes samcli's service multi-threaded, as API Gateway is.
        return False

    def invoke(self, function_identifier: str, event: str, stdout: Any = None, stderr: Any = None, **_: Any) -> None:
        answer = self.answer(function_identifier, event)
        if stdout is not None:
            stdout.write_str(answer)

    def answer(self, function_identifier: str, event: str) -> str:
        """The function's answer to the event (JSON text both), or Lambda's error payload when it fails."""
        raise NotImplementedError


class InProcessLambdaRunner(LambdaRunner):
    """Calls the handlers in this process."""

    def __init__(self, functions: dict[str, LambdaFunction]) -> None:
        self.functions = functions

    def answer(self, function_identifier: str, event: str) -> str:
        function = self.functions.get(function_identifier)
        if function is None:
            raise FunctionNotFound(f"unable to find a function with name {function_identifier!r}")
        try:
            response = function.invoke(json.loads(event))
        except Exception as error:
            logger.exception("%s failed", function_identifier)
            response = error_payload(error)
        return json.dumps(response)
