"""A Lambda handler for the tests of devstack.environments: it reports where and how often it ran, and can fail or
end its process on request."""

from __future__ import annotations

import itertools
import json
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


def echo_authorizer(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """What API Gateway's authorizer passed this function (requestContext.authorizer), for the local JWT tests."""
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps({"authorizer": event["requestContext"].get("authorizer")}),
    }
