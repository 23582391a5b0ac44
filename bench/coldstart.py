"""Cold start: import a handler and build its clients in a fresh interpreter that sees only what Lambda would.

`sam build` for arm64 fetches arm64 wheels (pydantic-core) that cannot run on an x86 machine, so the same layout
is built here: functions/ with `pip install --target` of functions/requirements.txt, and boto3 alone as the
runtime's. The interpreter runs with -I -S (no site-packages, no PYTHON* variables). Every file is compiled to
bytecode first, so that the numbers are import time, not compile time.
"""

from __future__ import annotations

import compileall
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = ROOT / "functions"
BUILD = ROOT / "build" / "bench"

# What each function builds at start-up besides importing its handler: the core.adapters.aws factories its first
# invocation calls. "bare" is the reference: a handler that only does `import boto3; boto3.client("sqs")`.
HANDLERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "submit": ("submit.app", ("task_store", "task_queue")),
    "result": ("result.app", ("task_store",)),
    "worker": ("worker.app", ("task_store",)),
}

_CHILD = """
import sys, time
sys.path[:0] = {path!r}
wall, cpu = time.perf_counter(), time.process_time()
{body}
print(time.perf_counter() - wall, time.process_time() - cpu)
"""

# Lambda's view: no site-packages, no PYTHON* variables; the code to run follows.
ISOLATED_PYTHON = [sys.executable, "-I", "-S", "-c"]

ENVIRONMENT = {
    "TABLE_NAME": "tasks",
    "QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/tasks",
    # Every variable core.settings requires (template.yaml sets them): a function that misses one fails at start.
    "PAYLOAD_BUCKET": "payloads",
    "TASK_ID_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:task-ids",
    "TASK_RETENTION_DAYS": "7",
    "MAX_RECEIVE_COUNT": "3",
    "MULTIPLY_DELAY_SECONDS": "0",
    "WEBHOOK_URL_POLICY": "public",
    "WORKER_MEMORY_MB": "512",
    "DURABLE_TASK_TIMEOUT": "86400",
    "DURABLE_RUNNER_ARN": "arn:aws:lambda:us-east-1:123456789012:function:bench-durable-runner:live",
    "IAM_OWNER": "Role",
    "QUEUE_VISIBILITY_TIMEOUT": "360",
    "POWERTOOLS_SERVICE_NAME": "long-running-tasks",
    "POWERTOOLS_METRICS_NAMESPACE": "LongRunningTasks",
    "POWERTOOLS_LOG_LEVEL": "INFO",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_LAMBDA_FUNCTION_NAME": "bench",
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
}


def _pip_target(target: Path, *requirements: str) -> None:
    if (target / ".done").exists():
        return
    shutil.rmtree(target, ignore_errors=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
            str(target),
            *requirements,
        ],
        check=True,
    )
    compileall.compile_dir(target, quiet=2)
    (target / ".done").touch()


def build() -> list[str]:
    """The package layout (task code, its requirements, the runtime's boto3); returns the sys.path to use."""
    requirements = (FUNCTIONS / "requirements.txt").read_bytes()
    tag = hashlib.sha256(requirements + sys.version.encode()).hexdigest()[:12]
    deps = BUILD / f"deps-{tag}"
    runtime = BUILD / f"runtime-boto3-{version('boto3')}"
    _pip_target(deps, "-r", str(FUNCTIONS / "requirements.txt"))
    _pip_target(runtime, f"boto3=={version('boto3')}")
    task = BUILD / "task"
    shutil.rmtree(task, ignore_errors=True)
    shutil.copytree(FUNCTIONS, task, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "requirements.txt"))
    compileall.compile_dir(task, quiet=2)
    # Lambda puts the task root (code and requirements) before the runtime's packages.
    return [str(task), str(deps), str(runtime)]


def _body(name: str) -> str:
    if name == "bare":
        return 'import boto3\nboto3.client("sqs")'
    module, factories = HANDLERS[name]
    lines = [f"import {module}", "import core.adapters.aws"]
    lines += [f"core.adapters.aws.{factory}()" for factory in factories]
    return "\n".join(lines)


def measure_once(name: str, path: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one cold start of `name` in a fresh interpreter."""
    code = _CHILD.format(path=path, body=_body(name))
    completed = subprocess.run([*ISOLATED_PYTHON, code], env=ENVIRONMENT, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"cold start of {name} failed:\n{completed.stderr}")
    wall, cpu = completed.stdout.split()[-2:]
    return float(wall), float(cpu)


def leaked_modules(path: list[str]) -> list[str]:
    """Modules of the dev environment that the isolated interpreter could see (there should be none)."""
    code = "import sys; sys.path[:0] = %r; import importlib.util as u; print(json.dumps([m for m in ('moto', 'pytest', 'samcli') if u.find_spec(m)]))"
    completed = subprocess.run(
        [*ISOLATED_PYTHON, "import json; " + code % path],
        env=ENVIRONMENT,
        capture_output=True,
        text=True,
        check=True,
    )
    found: list[str] = json.loads(completed.stdout)
    return found


def run(runs: int = 15, names: tuple[str, ...] = ("submit", "result", "worker")) -> dict[str, dict[str, float]]:
    """Median cold start of each function and of the bare handler, runs interleaved so that noise hits all alike."""
    path = build()
    if leaked := leaked_modules(path):
        raise RuntimeError(f"the cold-start interpreter sees dev packages: {leaked}")
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in ("bare", *names)}
    for name in samples:  # one unmeasured run each: the page cache, not the import, is what a first run measures
        measure_once(name, path)
    for _ in range(runs):
        for name in samples:
            samples[name].append(measure_once(name, path))
    return summarize(samples)


def summarize(samples: dict[str, list[tuple[float, float]]]) -> dict[str, dict[str, float]]:
    """Medians; ratio_to_bare on CPU time (the import is single-threaded CPU work; wall time adds the machine's
    noise), wall_ratio_to_bare beside it."""
    wall = {name: statistics.median(w for w, _ in runs) for name, runs in samples.items()}
    cpu = {name: statistics.median(c for _, c in runs) for name, runs in samples.items()}
    return {
        name: {
            "median_s": round(wall[name], 4),
            "cpu_median_s": round(cpu[name], 4),
            "ratio_to_bare": round(cpu[name] / cpu["bare"], 3),
            "wall_ratio_to_bare": round(wall[name] / wall["bare"], 3),
            "runs": len(samples[name]),
        }
        for name in samples
    }


def instructions_once(body: str) -> int:
    """Instructions one fresh interpreter executes to run `body`, counted by valgrind's callgrind."""
    completed = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *ISOLATED_PYTHON, body],
        env=ENVIRONMENT,
        capture_output=True,
        text=True,
        check=True,
    )
    match = re.search(r"Collected : (\d+)", completed.stderr)
    if match is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{completed.stderr[-2000:]}")
    return int(match[1])


def instructions(names: tuple[str, ...] = ("submit", "result", "worker")) -> dict[str, dict[str, float]]:
    """Each cold start in instructions (an interpreter's own start-up subtracted), and the ratio to the bare
    handler's: deterministic, where CPU time on a shared machine is not. Needs valgrind. The runs go in
    parallel, which changes no count."""
    path = build()
    bodies = {"start-up": "pass"} | {name: _body(name) for name in ("bare", *names)}
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        futures = {
            name: pool.submit(instructions_once, _CHILD.format(path=path, body=body)) for name, body in bodies.items()
        }
        start_up = futures.pop("start-up").result()
        counts = {name: future.result() - start_up for name, future in futures.items()}
    return {
        name: {"million_instructions": round(count / 1e6, 1), "ratio_to_bare": round(count / counts["bare"], 3)}
        for name, count in counts.items()
    }


if __name__ == "__main__":
    if sys.argv[1:] == ["--instructions"]:
        print(json.dumps(instructions(), indent=2))
    else:
        print(json.dumps(run(runs=int(sys.argv[1]) if len(sys.argv) > 1 else 10), indent=2))
