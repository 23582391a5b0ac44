"""What a task costs when its caller polls for it 10 s multiplies, as deployed by default, each run by
the `lrt` client (submit, then wait from the submission's hint), several callers at once, on the local stack. Counted
as they ran: the GETs (the result function's invocations), every AWS request the emulator saw, the functions' billed
durations from their REPORT lines; the client's own view (GETs it sent, how late it saw each result) beside them.

Priced per task on top of that: one EventBridge custom event per task's end (the notifier, fed by the table's
stream, is measured as it ran; its assumed share below only stands in when it did not run); and separately, a webhook
delivery for a task that asks for one.
"""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path
from typing import Any

import requests

from bench.cost import (
    LAMBDA_ARM64_PER_GB_SECOND,
    LAMBDA_PER_REQUEST,
    PER_MILLION,
    SQS_STANDARD_PER_REQUEST,
    FunctionUse,
    billed_ms,
    usd_per_million_tasks,
)
from bench.local import durations_in, short_name

DELAY_SECONDS = 10
EVENTBRIDGE_PER_EVENT = 1.00 / 1e6  # custom events put on a bus, each 64 KB chunk one event
SECRETS_MANAGER_PER_CALL = 0.05 / 10_000
# The notifier (the table's stream, BatchSize 100, MaximumBatchingWindowInSeconds 1, filtered to task
# ends before invocation, free): assumed 10 task ends an invocation (≈ 10 a second across the stack; one a second or
# fewer: 1-2 an invocation; 100 a second or more: 100). Its run is a PutEvents call for the batch, and a send of each
# webhook asked for: assumed 100 ms at 256 MB (the template's Globals) an invocation.
NOTIFIER_TASKS_PER_INVOCATION = 10
NOTIFIER_MS_PER_INVOCATION = 100.0
NOTIFIER_MEMORY_MB = 256
# A webhook delivery: the notifier's SendMessage, the webhook function's ReceiveMessage and DeleteMessageBatch (one
# each: a delivery alone in its batch, the worst case), one invocation of ≈ 100 ms at 256 MB (an HTTPS POST to a
# receiver that answers at once), and the signing secret read when an execution environment starts (cached for its
# life: assumed one read per 100 deliveries).
WEBHOOK_SQS_REQUESTS = 3
WEBHOOK_MS = 100.0
WEBHOOK_MEMORY_MB = 256
WEBHOOK_SECRET_READS = 1 / 100


def events_per_task() -> dict[str, float]:
    """USD per million tasks of the event that every task's end puts on the bus, and of its notifier."""
    invocations = 1 / NOTIFIER_TASKS_PER_INVOCATION
    gb_seconds = invocations * NOTIFIER_MS_PER_INVOCATION / 1000 * NOTIFIER_MEMORY_MB / 1024
    return {
        "eventbridge": EVENTBRIDGE_PER_EVENT * PER_MILLION,
        "lambda.notifier": (invocations * LAMBDA_PER_REQUEST + gb_seconds * LAMBDA_ARM64_PER_GB_SECOND) * PER_MILLION,
    }


def webhook_per_task() -> dict[str, float]:
    """USD per million tasks of one webhook delivery each."""
    gb_seconds = WEBHOOK_MS / 1000 * WEBHOOK_MEMORY_MB / 1024
    return {
        "webhook.sqs": WEBHOOK_SQS_REQUESTS * SQS_STANDARD_PER_REQUEST * PER_MILLION,
        "webhook.lambda": (LAMBDA_PER_REQUEST + gb_seconds * LAMBDA_ARM64_PER_GB_SECOND) * PER_MILLION,
        "webhook.secret": WEBHOOK_SECRET_READS * SECRETS_MANAGER_PER_CALL * PER_MILLION,
    }


def _together(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


class Gets:
    """Counts the GETs of one client's session."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if response.request.method == "GET":
            self.count += 1


def run(
    log: Path, *, tasks: int, clients: int, warm: bool = True, parameters: dict[str, Any] | None = None
) -> dict[str, Any]:
    """`tasks` 10 s multiplies by `clients` callers at once (as many workers): requests, cost, GETs, notice latency.
    `warm`: first one task per caller, uncounted, so that the cold starts (first clients, first queue attributes)
    are not priced as every task's."""
    from devstack import LocalStack
    from devstack.emulator import request_counts
    from lrt import TaskClient

    seen: list[dict[str, float]] = []
    errors: list[str] = []
    lock = threading.Lock()

    def caller(url: str, count: int, counted: bool = True) -> None:
        session = requests.Session()
        gets = Gets()
        session.hooks["response"].append(gets)
        client = TaskClient(url, session=session, timeout=30)
        for n in range(count):
            before = gets.count
            submitted = client.submit("multiply", x=n, y=7)
            finished = client.wait("multiply", submitted.task_id, timeout=120, seen=submitted)
            noticed = time.time()
            if finished.status != "succeeded" or finished.finished_at is None or finished.started_at is None:
                with lock:
                    errors.append(f"{finished.status} {finished.raw}")
                continue
            run_seconds = (finished.finished_at - finished.started_at).total_seconds()
            if not counted:
                continue
            with lock:
                seen.append(
                    {
                        "gets": gets.count - before,
                        "notice_s": noticed - finished.finished_at.timestamp(),
                        "run_s": run_seconds,
                    }
                )

    with LocalStack(
        port=0,
        env={"MULTIPLY_DELAY_SECONDS": str(DELAY_SECONDS)},
        worker_concurrency=clients,
        parameter_overrides=parameters or {},
    ) as stack:
        assert stack.endpoint_url is not None
        memory = {short_name(name): spec.memory for name, spec in stack.sam_app.functions.items()}
        if warm:
            _together([threading.Thread(target=caller, args=(stack.api_url, 1, False)) for _ in range(clients)])
            time.sleep(1.5)  # the warm-up's last REPORT lines
        before, log_start = request_counts(stack.endpoint_url), log.stat().st_size
        started = time.perf_counter()
        shares = [tasks // clients + (1 if n < tasks % clients else 0) for n in range(clients)]
        _together([threading.Thread(target=caller, args=(stack.api_url, share)) for share in shares if share])
        elapsed = time.perf_counter() - started
        time.sleep(1.5)  # the last invocations' REPORT lines
        counts = +(request_counts(stack.endpoint_url) - before)
        with log.open() as file:
            file.seek(log_start)
            durations = durations_in(file.read())
    done = len(seen)
    if not done:
        raise RuntimeError(f"no 10 s multiply finished: {errors[:3]}")
    requests_per_task = {key: value / done for key, value in sorted(counts.items())}
    # The receives that delivered a message, as many as the deletes: idle pollers' empty long polls (every second
    # here, every 20 s deployed) are a fixed cost of the queue, not of a task.
    requests_per_task["sqs.ReceiveMessage"] = min(
        requests_per_task.get("sqs.ReceiveMessage", 0.0), requests_per_task.get("sqs.DeleteMessageBatch", 0.0)
    )
    run_ms = statistics.fmean(item["run_s"] for item in seen) * 1000
    uses = {}
    for name, spent in durations.items():
        per_invocation = billed_ms(spent)
        if name == "worker":
            # The task's own 10 s are what the caller asked for, not the platform's overhead (as bench.cost prices).
            per_invocation = max(0.0, per_invocation - run_ms * done / len(spent))
        uses[name] = FunctionUse(len(spent) / done, per_invocation, int(memory[name]))
    gets_per_task = len(durations.get("result", [])) / done
    api_per_task = (len(durations.get("submit", [])) + len(durations.get("result", []))) / done
    costs = usd_per_million_tasks(requests_per_task, uses, api_requests_per_task=api_per_task)
    costs.pop("total")
    events = events_per_task()
    if "notifier" in uses:
        # The local stack ran the notifier from the table's stream, batched as the template says: its measured
        # invocations are priced above with the other functions', in place of the assumed share.
        events.pop("lambda.notifier")
    costs |= events
    polled = sum(costs.values())
    # TaskEvents=Disabled: no event on the bus; the notifier still reads every task's end (for webhooks).
    without_events = polled - events["eventbridge"]
    webhook = webhook_per_task()
    notices = sorted(item["notice_s"] for item in seen)
    return {
        "usd_per_million_tasks_polled": round(polled, 3),
        "usd_per_million_tasks_polled_without_events": round(without_events, 3),
        "usd_per_million_tasks_with_webhook": round(polled + sum(webhook.values()), 3),
        "polled_detail": {
            "tasks": done,
            "clients": clients,
            "delay_seconds": DELAY_SECONDS,
            "errors": errors[:5],
            "seconds": round(elapsed, 1),
            # From the stack: the result function's invocations; from the client: the GETs it sent.
            "gets_per_task": round(gets_per_task, 3),
            "client_gets_per_task": round(statistics.fmean(item["gets"] for item in seen), 3),
            "client_gets_max": max(int(item["gets"]) for item in seen),
            "notice_latency_p50_s": round(statistics.median(notices), 3),
            "notice_latency_max_s": round(notices[-1], 3),
            "run_seconds_mean": round(run_ms / 1000, 3),
            "requests_per_task": {key: round(value, 3) for key, value in requests_per_task.items()},
            "api_requests_per_task": round(api_per_task, 3),
            "billed_ms": {name: round(use.billed_ms_per_invocation, 1) for name, use in uses.items()},
            "invocations_per_task": {name: round(use.invocations_per_task, 3) for name, use in uses.items()},
            "cost_breakdown": {key: round(value, 3) for key, value in costs.items()},
            "webhook_breakdown": {key: round(value, 3) for key, value in webhook.items()},
            "notifier_measured": "notifier" in uses,
            "assumed": {
                "notifier_tasks_per_invocation": NOTIFIER_TASKS_PER_INVOCATION,
                "notifier_ms_per_invocation": NOTIFIER_MS_PER_INVOCATION,
                "webhook_ms": WEBHOOK_MS,
                "webhook_secret_reads_per_delivery": WEBHOOK_SECRET_READS,
            },
        },
    }
