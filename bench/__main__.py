"""`python -m bench [--quick] [--no-local]`: measure, write bench/results.json, print the table."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
from pathlib import Path
from typing import Any

from bench import coldstart, first_invocation, report, warm

RESULTS = Path(__file__).resolve().parent / "results.json"


def machine() -> dict[str, Any]:
    model = ""
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        model = platform.processor()
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(), "platform": platform.platform()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer runs and tasks (a smoke test, not a measurement)")
    parser.add_argument("--no-local", action="store_true", help="skip the local stack (requests, cost, throughput)")
    parser.add_argument("--tasks", type=int, help="tasks of the requests-per-task run (default 1000)")
    parser.add_argument("--load-tasks", type=int, help="tasks of each throughput run (default 600)")
    parser.add_argument("--rounds", type=int, help="throughput rounds, each mode once a round (default 3)")
    parser.add_argument("--polled-tasks", type=int, help="10 s multiplies waited on by the lrt client (default 32)")
    parser.add_argument(
        "--worker-batch-size", type=int, help="the template's WorkerBatchSize for the local stack (default: its own)"
    )
    parser.add_argument(
        "--worker-concurrency",
        type=int,
        help="worker invocations at once on the local stack (default: make run's; deployed: WorkerMaxConcurrency, 5)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    quick = args.quick
    print("cold starts...", flush=True)
    # 25 interleaved runs: this shared machine's speed drifts by a third within minutes.
    cold = coldstart.run(runs=3 if quick else 25)
    if shutil.which("valgrind") and not quick:
        print("cold starts in instructions (valgrind)...", flush=True)
        for name, counted in coldstart.instructions().items():
            cold[name] |= {
                "million_instructions": counted["million_instructions"],
                "instructions_ratio_to_bare": counted["ratio_to_bare"],
            }
    print("cold starts with the first invocation...", flush=True)
    first = first_invocation.run(runs=3 if quick else 15)
    if shutil.which("valgrind") and not quick:
        print("cold starts with the first invocation in instructions (valgrind)...", flush=True)
        for name, counted in first_invocation.instructions().items():
            first[name] |= {
                "million_instructions": counted["million_instructions"],
                "instructions_ratio_to_bare": counted["ratio_to_bare"],
            }
    print("warm invocations...", flush=True)
    hot = warm.run(invocations=200 if quick else 2000)
    local = None
    if not args.no_local:
        from bench import local as local_stack

        print("local stack...", flush=True)
        local = local_stack.run(
            tasks=args.tasks or (100 if quick else 1000),
            load_tasks=args.load_tasks or (100 if quick else 600),
            rounds=args.rounds or (1 if quick else 3),
            # Each caller waits 10 s a task: 8 at once make 32 tasks in ≈ 45 s; --quick, one round of 2.
            polled_tasks=args.polled_tasks or (2 if quick else 32),
            polled_clients=2 if quick else 8,
            quick=quick,
            worker_batch_size=args.worker_batch_size,
            worker_concurrency=args.worker_concurrency,
        )
    print("durable tasks...", flush=True)
    from bench import durable as durable_bench

    durable: dict[str, Any] = {
        "hour_of_training": durable_bench.hour_of_training(),
        "step_overhead_in_process": durable_bench.step_overhead_in_process(runs=3 if quick else 9),
    }
    if not args.no_local:
        durable["step_overhead_local"] = durable_bench.step_overhead_local(runs=2 if quick else 7)
    results = report.build(machine(), cold, hot, local, durable, first_invocation=first)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(report.table(results))
    print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()
