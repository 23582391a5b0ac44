"""Warm cost: CPU time per invocation of a handler whose AWS calls botocore's Stubber answers (no network).

Run in a child process per function (`python -m bench.warm <function> <invocations>`) with stdout discarded:
the handlers' logs and metrics are written as Lambda would, and the numbers come back on stderr.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.coldstart import ENVIRONMENT, FUNCTIONS

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
TASK_ID = "3f2b8a51-6c1e-4d7a-9b0f-2e5c8d4a1f60"  # the id in events/result_get.json and worker_multiply.json


def _owner() -> str:
    """Who the events' requests come from (core.domain.identity), as submit records it: the result function shows a task to
    its owner alone."""
    from core.domain.identity import owner_of

    return owner_of(_load("result_get")["requestContext"].get("authorizer"))


def _item(status: str, **extra: Any) -> dict[str, Any]:
    now = time.time()
    item = {
        "owner": {"S": _owner()},
        "task_id": {"S": TASK_ID},
        "task": {"S": "multiply"},
        "status": {"S": status},
        "input": {"S": '{"x":2,"y":3}'},
        "created_at": {"N": repr(now)},
        "expires_at": {"N": str(int(now) + 86_400)},
        "attempts": {"N": "1"},
        "retry_after": {"N": "1"},
    }
    item.update(extra)
    return item


def _load(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return event


def measure(function: str, invocations: int, warmup: int = 50) -> dict[str, float]:
    """Median and mean CPU ms per invocation of `function` over `invocations` stubbed invocations."""
    import importlib

    from botocore.stub import Stubber

    import core.adapters.aws

    handler = importlib.import_module(f"{function}.app").lambda_handler
    dynamodb = Stubber(core.adapters.aws.dynamodb_client())
    sqs = Stubber(core.adapters.aws.sqs_client()) if function == "submit" else None
    now = repr(time.time())
    total = invocations + warmup
    for _ in range(total):
        if function == "submit":
            dynamodb.add_response("put_item", {})
            assert sqs is not None
            sqs.add_response("send_message", {"MessageId": "5fea7756-0ea4-451a-a703-a558b933e274"})
        elif function == "result":
            done = {"finished_at": {"N": now}, "started_at": {"N": now}, "result": {"S": "6"}}
            dynamodb.add_response("get_item", {"Item": _item("succeeded", **done)})
        else:
            # A quick task: one read, then its outcome in one write (no claim: it ends within a second).
            dynamodb.add_response("get_item", {"Item": _item("queued", attempts={"N": "0"})})
            done = {"started_at": {"N": now}, "finished_at": {"N": now}, "result": {"S": "6"}, "progress": {"N": "1"}}
            dynamodb.add_response("update_item", {"Attributes": _item("succeeded", **done)})
    event = _load({"submit": "submit_multiply", "result": "result_get", "worker": "worker_multiply"}[function])
    from devstack.lambdas import LambdaContext

    context = LambdaContext(function_name=function, memory_limit_in_mb=256, timeout_seconds=60)
    samples = []
    with dynamodb:
        if sqs is not None:
            sqs.activate()
        for n in range(total):
            started = time.process_time()
            response = handler(event, context)
            elapsed = time.process_time() - started
            if n == 0:
                _check(function, response)
            if n >= warmup:
                samples.append(elapsed)
    dynamodb.assert_no_pending_responses()
    return {
        "median_ms": round(statistics.median(samples) * 1000, 4),
        "mean_ms": round(statistics.fmean(samples) * 1000, 4),
        "invocations": len(samples),
    }


def _check(function: str, response: Any) -> None:
    expected = {"submit": 202, "result": 200}
    if function in expected and response.get("statusCode") != expected[function]:
        raise RuntimeError(f"{function} answered {response}")
    if function == "worker" and response.get("batchItemFailures"):
        raise RuntimeError(f"worker failed: {response}")


def run(invocations: int = 2000, functions: tuple[str, ...] = ("submit", "result", "worker")) -> dict[str, Any]:
    results: dict[str, Any] = {}
    # An AWS call the stubs do not answer fails at once against a closed local port, rather than leaving the machine.
    env = {
        **os.environ,
        **ENVIRONMENT,
        "PYTHONPATH": f"{FUNCTIONS}{os.pathsep}{ROOT}",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    }
    for function in functions:
        completed = subprocess.run(
            [sys.executable, "-m", "bench.warm", function, str(invocations)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
            cwd=ROOT,
        )
        if completed.returncode != 0:
            raise RuntimeError(f"warm run of {function} failed:\n{completed.stderr}")
        results[function] = json.loads(completed.stderr.strip().splitlines()[-1])
    return results


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], int(sys.argv[2]))), file=sys.stderr)
