"""The local stack under load, as `make run` starts it (every function in execution environments of its own): AWS
requests per task (counted by the emulator), the functions' billed durations (from the REPORT line each invocation
prints, as Lambda's runtime does), and end-to-end throughput and latency. The load comes from a child process
(bench.load)."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parents[1]
STACK_LOG = ROOT / "bench" / "local-stack.log"
REPORT = re.compile(r"^\[(\w+)\] REPORT RequestId: \S+\t(?:Init Duration: [\d.]+ ms\t)?Duration: ([\d.]+) ms\t", re.M)


def durations_in(log: str) -> dict[str, list[float]]:
    """Each function's invocation durations (seconds) from the REPORT lines of `log`."""
    found: dict[str, list[float]] = {}
    for function, milliseconds in REPORT.findall(log):
        found.setdefault(short_name(function), []).append(float(milliseconds) / 1000)
    return found


def short_name(logical_id: str) -> str:
    return logical_id.removesuffix("Function").lower()


def _load(url: str, mode: str, clients: int, arg: str, stdin: str | None = None) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-m", "bench.load", url, mode, str(clients), arg],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{completed.stderr}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def _wait_for_empty_queue(sqs: Any, queue_url: str, timeout: float = 300) -> int:
    """Once the queue holds no message; how many requests watching it took."""
    deadline = time.monotonic() + timeout
    calls = 0
    while time.monotonic() < deadline:
        calls += 1
        attributes = sqs.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        if (
            int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])
            == 0
        ):
            return calls
        time.sleep(0.1)
    raise TimeoutError("the task queue did not drain")


def _cpu_seconds(pids: list[Any]) -> float:
    """User + system CPU of processes so far (Linux /proc)."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _counted_phase(tasks: int, log: Path, parameters: dict[str, Any], workers: int | None) -> dict[str, Any]:
    """`tasks` submitted, run, then polled once each: the emulator counts every AWS request of the functions and of
    the worker's poller, and the functions' REPORT lines in `log` give each invocation's duration."""
    from devstack import LocalStack
    from devstack.emulator import request_counts

    with LocalStack(
        port=0, env={"MULTIPLY_DELAY_SECONDS": "0"}, parameter_overrides=parameters, worker_concurrency=workers
    ) as stack:
        assert stack.endpoint_url is not None
        endpoint = stack.endpoint_url
        memory = {short_name(name): spec.memory for name, spec in stack.sam_app.functions.items()}
        queue_url = stack.resources.queue_url
        watcher = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
        url = stack.api_url
        # A few tasks to start the environments (cold starts are not what this measures).
        _load(url, "poll", 2, "4")
        _wait_for_empty_queue(watcher, queue_url)
        time.sleep(1.5)  # the worker's last invocation's REPORT line
        before, log_start = request_counts(endpoint), log.stat().st_size

        started = time.perf_counter()
        submitted = _load(url, "submit", 8, str(tasks))
        watched = _wait_for_empty_queue(watcher, queue_url)
        polled = _load(url, "get", 8, "-", stdin=json.dumps(submitted["ids"]))
        phase_seconds = time.perf_counter() - started
        time.sleep(0.5)
        counts = request_counts(endpoint) - before
        counts["sqs.GetQueueAttributes"] -= watched  # the bench's own, watching the queue drain
        with log.open() as file:
            file.seek(log_start)
            durations = durations_in(file.read())
    done = len(submitted["ids"])
    counts = +counts  # without the zero counts
    return {
        "tasks": done,
        "submit_errors": submitted["error_count"],
        "poll_statuses": polled["statuses"],
        "phase_seconds": round(phase_seconds, 2),
        "requests": dict(sorted(counts.items())),
        "requests_per_task": {key: round(value / done, 4) for key, value in sorted(counts.items())},
        "durations": durations,
        "memory_mb": memory,
        "worker_invocations_total": len(durations.get("worker", [])),
    }


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median throughput, with every run's headline numbers beside it (the machine is noisy)."""
    ordered = sorted(runs, key=lambda run: run["tasks_per_s"])
    median = dict(ordered[len(ordered) // 2])
    median["runs"] = [
        {
            key: run[key]
            for key in ("tasks_per_s", "submit_p50_ms", "submit_p99_ms", "result_visible_p50_ms", "polls_per_task")
        }
        for run in runs
    ]
    return median


def _load_phases(
    load_tasks: int, clients: int, rounds: int, parameters: dict[str, Any], workers: int | None
) -> dict[str, Any]:
    """The local stack as `make run` starts it (functions and emulator in processes of their own): `load_tasks` by
    `clients` clients that submit and poll until done, sleeping what the API asks between polls; the same with
    clients that poll every 2 ms whatever it asks; then one client alone (a developer trying a task). The three
    alternate `rounds` times, in one sitting, and the median round of each is reported."""
    from devstack import LocalStack

    loaded: list[dict[str, Any]] = []
    fixed: list[dict[str, Any]] = []
    alone: list[dict[str, Any]] = []
    with LocalStack(
        port=0, env={"MULTIPLY_DELAY_SECONDS": "0"}, parameter_overrides=parameters, worker_concurrency=workers
    ) as stack:
        url = stack.api_url
        # Warm: as many execution environments as the load will keep busy (cold starts are not what this measures).
        _load(url, "poll", clients, str(clients * 4))
        processes: dict[str, list[Any]] = {
            "api": [os.getpid()],  # the API Gateway emulation
            "functions": stack.api_pids,  # the API functions' execution environments
            "worker": stack.worker_pids,
            "emulator": [stack.emulator_pid],
        }

        def measured(mode: str) -> dict[str, Any]:
            before = {name: _cpu_seconds(pids) for name, pids in processes.items() if all(pids)}
            throughput = _load(url, mode, clients, str(load_tasks))
            after = {name: _cpu_seconds(pids) for name, pids in processes.items() if all(pids)}
            cpu = {name: round((after[name] - before[name]) / max(1, throughput["tasks"]) * 1000, 1) for name in after}
            throughput["cpu_ms_per_task"] = cpu | {"load": throughput.pop("client_cpu_ms_per_task", None)}
            return throughput

        for _ in range(rounds):
            loaded.append(measured("poll"))
            fixed.append(measured("poll-2ms"))
            alone.append(_load(url, "poll", 1, str(max(50, load_tasks // 8))))
    return {
        "throughput": _median_run(loaded),
        "throughput_polling_every_2ms": _median_run(fixed),
        "one_client": _median_run(alone),
    }


@contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """This process's and its children's stdout and stderr (file descriptors 1 and 2) into `path`: the functions
    print a JSON line per invocation, and the stack's processes inherit the descriptors."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    with path.open("w") as log:
        for fd in saved:
            os.dup2(log.fileno(), fd)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, original in saved.items():
            os.dup2(original, fd)
            os.close(original)


def run(
    *,
    tasks: int = 1000,
    load_tasks: int = 800,
    clients: int = 16,
    rounds: int = 3,
    polled_tasks: int = 32,
    polled_clients: int = 8,
    quick: bool = False,
    worker_batch_size: int | None = None,
    worker_concurrency: int | None = None,
    log: Path = STACK_LOG,
) -> dict[str, Any]:
    """Requests and durations per task (`tasks`, polled once each), then throughput and latency, then 10 s multiplies
    waited on by the lrt client (bench.polled), then the cost by payload size (bench.payloads). The stack's own output
    (thousands of log lines) goes to `log`. `worker_batch_size`: the template's WorkerBatchSize (default: its own);
    `worker_concurrency`: worker invocations at once in the throughput phases (default: the local stack's, as `make
    run` starts it)."""
    from bench import payloads, polled

    parameters: dict[str, Any] = {} if worker_batch_size is None else {"WorkerBatchSize": worker_batch_size}
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    print(f"  (the stack's logs: {log.relative_to(ROOT) if log.is_relative_to(ROOT) else log})", flush=True)
    with _output_to(log):
        measured = _counted_phase(tasks, log, parameters, worker_concurrency)
        measured |= _load_phases(load_tasks, clients, rounds, parameters, worker_concurrency)
        measured |= polled.run(log, tasks=polled_tasks, clients=polled_clients, warm=not quick, parameters=parameters)
        measured |= payloads.run(log, quick=quick)
    from devstack.stack import DEFAULT_WORKER_CONCURRENCY

    return measured | {
        "worker_batch_size": worker_batch_size,
        "worker_concurrency": worker_concurrency or DEFAULT_WORKER_CONCURRENCY,
    }


if __name__ == "__main__":
    result = run(tasks=int(sys.argv[1]) if len(sys.argv) > 1 else 200, load_tasks=200)
    result["durations"] = {k: len(v) for k, v in result["durations"].items()}
    print(json.dumps(result, indent=2))
