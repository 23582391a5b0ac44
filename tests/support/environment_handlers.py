"""A Lambda handler for the tests of devstack.environments: it reports where and how often it ran, and can fail or
end its process on request."""

from __future__ import annotations

import itertools
import os
import time
from typing import Any

_invocations = itertools.count(1)  # module state: one count per execution environment


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    action = event.get("action")
    if action == "raise":
        raise ValueError("the handler failed")
    if action == "unanswerable":
        return {"not JSON": object()}
    if action == "exit":
        os._exit(3)  # as a handler killed for its memory, or one that calls sys.exit, ends the runtime
    time.sleep(event.get("seconds", 0))
    return {
        "pid": os.getpid(),
        "invocation": next(_invocations),
        "function_name": context.function_name,
        "request_id": context.aws_request_id,
    }
