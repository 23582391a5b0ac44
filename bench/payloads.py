"""What a task costs as its payloads grow: tasks whose input and result are both 1 KB, 100 KB, 1 MB and 10 MB, run on
the local stack by the `lrt` client (which picks the inline or upload path itself and follows a large result's link),
counted as they ran: API requests and their sizes (API Gateway bills a request per 512 KB), the AWS requests the
emulator saw (S3 included), the functions' billed durations from their REPORT lines, and the task record's size
(DynamoDB bills a write per KB and a strongly consistent read per 4 KB of the item)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import requests

from bench.cost import FunctionUse, api_requests, billed_ms, usd_per_million_tasks
from bench.local import durations_in, short_name

SIZES = {"1KB": 1_000, "100KB": 100_000, "1MB": 1_000_000, "10MB": 10_000_000}
# Enough of each to average; fewer of the large ones, which take seconds each on the emulator.
TASKS = {"1KB": 20, "100KB": 10, "1MB": 5, "10MB": 3}
# --quick: one of each size above 1 KB (a smoke test of the path, not a measurement).
QUICK_TASKS = {"1KB": 3, "100KB": 1, "1MB": 1, "10MB": 1}
ECHO_MODULE = "bench.echo"


def item_bytes(item: dict[str, Any]) -> int:
    """A DynamoDB item's size as DynamoDB bills it: each attribute's name and value (a number ≈ half its digits)."""
    size = 0
    for name, value in item.items():
        (kind, data), *_ = value.items()
        size += len(name.encode())
        if kind == "S":
            size += len(str(data).encode())
        elif kind == "N":
            size += len(str(data).replace("-", "").replace(".", "")) // 2 + 1
        else:
            size += 1
    return size


class ApiRequests:
    """Counts the client's requests to the API (not to S3) and the 512 KB units each is billed as."""

    def __init__(self) -> None:
        self.requests = 0
        self.billed = 0

    def __call__(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        body = response.request.body
        self.requests += 1
        self.billed += api_requests(len(body) if isinstance(body, bytes | str) else 0)


def run(log: Path, *, quick: bool = False) -> dict[str, Any]:
    """Per payload size: the AWS requests, durations and cost per task, and "usd_per_million_tasks_by_payload"."""
    counts_of = QUICK_TASKS if quick else TASKS
    from devstack import LocalStack
    from devstack.emulator import request_counts
    from lrt import TaskClient

    measured: dict[str, Any] = {}
    with LocalStack(port=0, env={"MULTIPLY_DELAY_SECONDS": "0"}, task_modules=[ECHO_MODULE]) as stack:
        assert stack.endpoint_url is not None
        memory = {short_name(name): spec.memory for name, spec in stack.sam_app.functions.items()}
        session = requests.Session()
        counter = ApiRequests()
        session.hooks["response"].append(counter)
        client = TaskClient(stack.api_url, session=session, timeout=120)
        client.run("echo", data="warm")  # the environments' cold starts are not what this measures
        for label, size in SIZES.items():
            time.sleep(1.0)  # the previous task's REPORT lines
            before, log_start, sent_before = request_counts(stack.endpoint_url), log.stat().st_size, counter.billed
            data = "x" * (size - len('{"data":""}'))
            items = []
            for _ in range(counts_of[label]):
                submitted = client.submit("echo", data=data)
                # As run() waits: from the submission's hint, not with a GET at once.
                finished = client.wait("echo", submitted.task_id, timeout=300, seen=submitted)
                assert finished.result == data, f"the {label} echo came back wrong"
                item = stack.dynamodb.get_item(
                    TableName=stack.resources.table_name, Key={"task_id": {"S": submitted.task_id}}
                )["Item"]
                items.append(item_bytes(item))
            time.sleep(1.0)
            counts = request_counts(stack.endpoint_url) - before
            counts["dynamodb.GetItem"] -= len(items)  # the bench's own reads, of each record's size
            with log.open() as file:
                file.seek(log_start)
                durations = durations_in(file.read())
            tasks = counts_of[label]
            uses = {
                name: FunctionUse(len(spent) / tasks, billed_ms(spent), int(memory[name]))
                for name, spent in durations.items()
            }
            requests_per_task = {key: value / tasks for key, value in sorted((+counts).items())}
            # The receives that delivered a message, as many as the deletes: an idle poller's empty long polls (every
            # second here, every 20 s deployed) are a fixed cost of the queue, not of a task.
            requests_per_task["sqs.ReceiveMessage"] = min(
                requests_per_task.get("sqs.ReceiveMessage", 0.0), requests_per_task.get("sqs.DeleteMessageBatch", 0.0)
            )
            api_per_task = (counter.billed - sent_before) / tasks
            costs = usd_per_million_tasks(
                requests_per_task, uses, api_requests_per_task=api_per_task, item_bytes=max(items)
            )
            measured[label] = {
                "tasks": tasks,
                "usd_per_million_tasks": round(costs["total"], 3),
                "cost_breakdown": {key: round(value, 3) for key, value in costs.items()},
                "requests_per_task": {key: round(value, 3) for key, value in requests_per_task.items()},
                "api_requests_per_task": round(api_per_task, 3),
                "item_bytes": max(items),
                "billed_ms": {name: round(use.billed_ms_per_invocation, 1) for name, use in uses.items()},
            }
    return {
        "usd_per_million_tasks_by_payload": {
            label: values["usd_per_million_tasks"] for label, values in measured.items()
        },
        "payload_detail": measured,
    }
