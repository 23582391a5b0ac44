"""The local stack under load: AWS requests per task (counted from botocore's events), the functions' billed
durations, and end-to-end throughput and latency. The load comes from a child process (bench.load)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parents[1]
STACK_LOG = ROOT / "bench" / "local-stack.log"


class RequestCounter:
    """Counts every AWS API call made through the default boto3 session, by service and operation."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, event_name: str, **kwargs: Any) -> None:
        # event_name: "before-call.<service>.<Operation>"
        _hook, service, operation = event_name.split(".", 2)
        with self._lock:
            self.counts[f"{service}.{operation}"] += 1

    def reset(self) -> Counter[str]:
        with self._lock:
            counts, self.counts = self.counts, Counter()
        return counts


class InvocationTimer:
    """Wraps a devstack LambdaFunction's invoke to record each invocation's wall time."""

    def __init__(self, function: Any) -> None:
        self.durations: list[float] = []
        self._invoke: Callable[[dict[str, Any]], Any] = function.invoke
        self._lock = threading.Lock()
        function.invoke = self

    def __call__(self, event: dict[str, Any]) -> Any:
        started = time.perf_counter()
        try:
            return self._invoke(event)
        finally:
            elapsed = time.perf_counter() - started
            with self._lock:
                self.durations.append(elapsed)

    def reset(self) -> list[float]:
        with self._lock:
            durations, self.durations = self.durations, []
        return durations


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


def _wait_for_empty_queue(sqs: Any, queue_url: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        attributes = sqs.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        if (
            int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])
            == 0
        ):
            return
        time.sleep(0.1)
    raise TimeoutError("the task queue did not drain")


def _cpu_seconds(pids: list[Any]) -> float:
    """User + system CPU of processes so far (Linux /proc)."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _counted_phase(tasks: int) -> dict[str, Any]:
    """`tasks` submitted, run, then polled once each, with every function in this process: botocore's events count
    every AWS request of the three functions, and each invocation's duration is timed."""
    from core.aws import session as functions_session

    boto3.setup_default_session()
    counter = RequestCounter()
    assert boto3.DEFAULT_SESSION is not None
    # The functions' clients come from their own session; the event source's (Lambda's poller) from the default.
    sessions = (functions_session(), boto3.DEFAULT_SESSION)
    # Registered before the stack builds its clients: a client copies the session's handlers when it is made.
    for session in sessions:
        session.events.register("before-call", counter)

    from devstack import LocalStack

    with LocalStack(port=0, worker_process=False, api_process=False, env={"MULTIPLY_DELAY_SECONDS": "0"}) as stack:
        timers = {short_name(name): InvocationTimer(function) for name, function in stack.functions.items()}
        memory = {short_name(name): function.spec.memory for name, function in stack.functions.items()}
        queue_url = stack.resources.queue_url
        # Watching the queue must not count: a client of its own session.
        watcher = boto3.session.Session().client("sqs", endpoint_url=stack.endpoint_url, region_name="us-east-1")
        url = stack.api_url
        # A few tasks to start the "containers" (cold starts are not what this measures).
        _load(url, "poll", 2, "4")
        _wait_for_empty_queue(watcher, queue_url)
        counter.reset()
        for timer in timers.values():
            timer.reset()

        started = time.perf_counter()
        submitted = _load(url, "submit", 8, str(tasks))
        _wait_for_empty_queue(watcher, queue_url)
        polled = _load(url, "get", 8, "-", stdin=json.dumps(submitted["ids"]))
        phase_seconds = time.perf_counter() - started
        counts = counter.reset()
        durations = {name: timer.reset() for name, timer in timers.items()}
        worker_invocations = sum(source.invocations for source in stack.event_sources)
    for session in sessions:
        session.events.unregister("before-call", counter)
    done = len(submitted["ids"])
    return {
        "tasks": done,
        "submit_errors": submitted["error_count"],
        "poll_statuses": polled["statuses"],
        "phase_seconds": round(phase_seconds, 2),
        "requests": dict(sorted(counts.items())),
        "requests_per_task": {key: round(value / done, 4) for key, value in sorted(counts.items())},
        "durations": durations,
        "memory_mb": memory,
        "worker_invocations_total": worker_invocations,
    }


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median throughput, with every run's headline numbers beside it (the machine is noisy)."""
    ordered = sorted(runs, key=lambda run: run["tasks_per_s"])
    median = dict(ordered[len(ordered) // 2])
    median["runs"] = [
        {key: run[key] for key in ("tasks_per_s", "submit_p50_ms", "submit_p99_ms", "result_visible_p50_ms")}
        for run in runs
    ]
    return median


def _load_phases(load_tasks: int, clients: int, rounds: int) -> dict[str, Any]:
    """The local stack as `make run` starts it (functions and emulator in processes of their own): `load_tasks` by
    `clients` clients that submit and poll until done, then one client alone (a developer trying a task); the
    two alternate `rounds` times and the median round of each is reported."""
    from devstack import LocalStack

    loaded: list[dict[str, Any]] = []
    alone: list[dict[str, Any]] = []
    with LocalStack(port=0, env={"MULTIPLY_DELAY_SECONDS": "0"}) as stack:
        url = stack.api_url
        # Warm: as many execution environments as the load will keep busy (cold starts are not what this measures).
        _load(url, "poll", clients, str(clients * 4))
        processes: dict[str, list[Any]] = {
            "api": [os.getpid()],  # the API Gateway emulation
            "functions": stack.api_pids,  # the API functions' execution environments
            "worker": stack.worker_pids,
            "emulator": [stack.emulator_pid],
        }
        for _ in range(rounds):
            before = {name: _cpu_seconds(pids) for name, pids in processes.items() if all(pids)}
            throughput = _load(url, "poll", clients, str(load_tasks))
            after = {name: _cpu_seconds(pids) for name, pids in processes.items() if all(pids)}
            cpu = {name: round((after[name] - before[name]) / max(1, throughput["tasks"]) * 1000, 1) for name in after}
            throughput["cpu_ms_per_task"] = cpu | {"load": throughput.pop("client_cpu_ms_per_task", None)}
            loaded.append(throughput)
            alone.append(_load(url, "poll", 1, str(max(50, load_tasks // 8))))
    return {"throughput": _median_run(loaded), "one_client": _median_run(alone)}


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
    *, tasks: int = 1000, load_tasks: int = 800, clients: int = 16, rounds: int = 3, log: Path = STACK_LOG
) -> dict[str, Any]:
    """Requests and durations per task (`tasks`, polled once each), then throughput and latency. The stack's own
    output (thousands of log lines) goes to `log`."""
    # The handlers are imported as Lambda imports them: from the functions directory.
    if str(ROOT / "functions") not in sys.path:
        sys.path.insert(0, str(ROOT / "functions"))
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    print(f"  (the stack's logs: {log.relative_to(ROOT) if log.is_relative_to(ROOT) else log})", flush=True)
    with _output_to(log):
        return _counted_phase(tasks) | _load_phases(load_tasks, clients, rounds)


if __name__ == "__main__":
    result = run(tasks=int(sys.argv[1]) if len(sys.argv) > 1 else 200, load_tasks=200)
    result["durations"] = {k: len(v) for k, v in result["durations"].items()}
    print(json.dumps(result, indent=2))
