"""`python -m bench.input_memory [--memory-mb 512]`: the largest JSON input `describe` and `fit` take within a worker's
memory, found by bisection on the peak RSS of a fresh process that runs the task as the worker does.

Each probe is a process of its own (`--probe`): it imports what the worker's first invocation imports (its handler,
botocore, the task registry, numpy), then runs one task through core.services.runner.TaskRunner, the worker's own
code, on an uploaded input read as botocore reads an object's body (chunks joined into one bytes object); its peak
RSS (the kernel's high-water mark, VmHWM: getrusage's ru_maxrss would carry over the parent's from before exec) is
the figure. Lambda counts the runtime's own process into the memory too, which this
leaves out: core.adapters.payloads keeps a margin above these figures (docs/performance.md).

The inputs are the worst for memory per byte of JSON that the models accept: numbers of few digits (each a Python
object of 24 to 32 bytes, plus a pointer, plus numpy's 8, for 4 or 5 bytes of text), and for `fit` rows of one
column, each a list of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from core.adapters.payloads import MIB, InMemoryPayloadStore

ROOT = Path(__file__).resolve().parents[1]


def _short_numbers(count: int, rng: random.Random) -> Iterator[float]:
    # One decimal, 1 to 3 digits before the point: "37.2", the shortest text for a float that is no small int.
    for _ in range(count):
        yield round(rng.uniform(0, 999), 1)


def describe_input(count: int, rng: random.Random) -> dict[str, Any]:
    return {"values": list(_short_numbers(count, rng))}


def fit_input(count: int, rng: random.Random) -> dict[str, Any]:
    xs = list(_short_numbers(count, rng))
    return {"X": [[x] for x in xs], "y": [round(2 * x + 1 + rng.uniform(-1, 1), 1) for x in xs]}


SHAPES: dict[str, tuple[str, Callable[[int, random.Random], dict[str, Any]]]] = {
    "describe": ("describe", describe_input),
    "fit": ("fit", fit_input),
}


def peak_rss_kb() -> int:
    """This process's peak resident set size so far (its address space's, which exec started afresh)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status: Linux only")


def write_input(path: Path, shape: str, count: int) -> int:
    """The input of `count` numbers (per column) as JSON in `path`; its size in bytes."""
    _, build = SHAPES[shape]
    data = json.dumps(build(count, random.Random(count)), separators=(",", ":")).encode()
    path.write_bytes(data)
    return len(data)


class FilePayloads(InMemoryPayloadStore):
    """The payload bucket as the worker reads it, from a file: botocore's StreamingBody.read() joins the chunks
    http.client read, so the object's bytes are briefly there twice."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._path = path

    def get(self, key: str, version: str | None = None) -> bytes | None:
        chunks = []
        with self._path.open("rb") as stream:
            while chunk := stream.read(MIB):
                chunks.append(chunk)
        return b"".join(chunks)


def probe(shape: str, path: Path) -> dict[str, Any]:
    """Runs the task on the input in `path` as the worker would; the peak RSS and the outcome."""
    import numpy  # noqa: F401 - loaded by the first task that runs, before any input is read: part of the baseline

    import worker.app  # noqa: F401 - the handler's own imports (botocore, the registry, the runner)
    from core.adapters.memory_store import InMemoryTaskStore
    from core.adapters.queue import TaskMessage
    from core.domain.records import TaskRecord, TaskStatus
    from core.services.runner import TaskRunner

    task, _ = SHAPES[shape]
    now = time.time()
    record = TaskRecord(
        task_id="00000000-0000-4000-8000-000000000000",
        task=task,
        status=TaskStatus.QUEUED,
        input_json=None,
        input_ref="uploads/probe",
        created_at=now,
        expires_at=int(now) + 3600,
        owner="bench",
    )
    store = InMemoryTaskStore()
    store.create(record, now)
    runner = TaskRunner(store, FilePayloads(path), max_receive_count=3, lease_seconds=900)
    baseline_kb = peak_rss_kb()
    outcome = runner.handle(TaskMessage(task_id=record.task_id, task=task), receive_count=1)
    peak_kb = peak_rss_kb()
    finished = store.get(record.task_id)
    return {
        "baseline_mb": round(baseline_kb / 1024, 1),
        "peak_mb": round(peak_kb / 1024, 1),
        "outcome": outcome.disposition.value,
        "status": finished.status.value if finished else None,
        "error": finished.error.message if finished and finished.error else None,
    }


def measure(shape: str, count: int, directory: Path) -> dict[str, Any]:
    path = directory / f"{shape}-{count}.json"
    size = write_input(path, shape, count)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bench.input_memory", "--probe", shape, str(path)],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            # The handlers import `core` and `tasks` from functions/, as Lambda does from the package root.
            env={**os.environ, "PYTHONPATH": os.pathsep.join(["functions", "."])},
        )
    finally:
        path.unlink()
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == "succeeded", result
    return {"input_bytes": size, **result}


def largest(shape: str, memory_mb: int, directory: Path, *, precision: float = 0.03) -> dict[str, Any]:
    """The largest input (by numbers, then bytes) whose run peaks within `memory_mb`, by bisection."""
    low, high = 1_000, 1_000
    probes = [measure(shape, low, directory)]
    while probes[-1]["peak_mb"] <= memory_mb:
        low, high = high, high * 4
        probes.append(measure(shape, high, directory))
    fitting = probes[-2]
    while high - low > precision * low:
        middle = (low + high) // 2
        probes.append(measure(shape, middle, directory))
        if probes[-1]["peak_mb"] <= memory_mb:
            low, fitting = middle, probes[-1]
        else:
            high = middle
    # Memory per byte of input above the baseline, from the largest probe that fitted.
    per_byte = (fitting["peak_mb"] - fitting["baseline_mb"]) * MIB / fitting["input_bytes"]
    return {
        "memory_mb": memory_mb,
        "largest_input_bytes": fitting["input_bytes"],
        "baseline_mb": fitting["baseline_mb"],
        "peak_mb": fitting["peak_mb"],
        "peak_bytes_per_input_byte": round(per_byte, 1),
        "probes": [(p["input_bytes"], p["peak_mb"]) for p in probes],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.input_memory", description=__doc__)
    parser.add_argument("--memory-mb", type=int, default=512, help="the worker's memory (WorkerMemorySize)")
    parser.add_argument("--shape", choices=sorted(SHAPES), action="append", help="default: every one")
    parser.add_argument("--probe", nargs=2, metavar=("SHAPE", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe:
        print(json.dumps(probe(args.probe[0], Path(args.probe[1]))))
        return
    with tempfile.TemporaryDirectory(prefix="input-memory-") as directory:
        for shape in args.shape or sorted(SHAPES):
            print(json.dumps({"shape": shape, **largest(shape, args.memory_mb, Path(directory))}), flush=True)


if __name__ == "__main__":
    main()
