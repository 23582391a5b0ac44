"""Cold start with the first invocation: a fresh interpreter imports a function's handler and invokes it once with its
`events/` sample, against a moto server on loopback that holds the template's resources; the reference is a bare
handler (`import boto3; boto3.client("sqs")` at import) invoked once too.

The import-only figure (bench.coldstart) misses what the first request loads lazily: botocore's service models and
endpoint rules, the JSON encoder, the modules a code path imports on first use. A user pays for those on their
first request, so they are counted here. CPU time of the child (the emulator's work is another process's), median
of interleaved runs, in the same venv for every function.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.coldstart import ISOLATED_PYTHON, build

# The Lambda-like package layout (bench.coldstart.build): the task root, its requirements, the runtime's boto3.
_PATH: list[list[str]] = []

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
TASK_ID = "3f2b8a51-6c1e-4d7a-9b0f-2e5c8d4a1f60"  # the id in events/result_get.json and worker_multiply.json

# The function (its logical id in template.yaml) and the sample event its first invocation gets.
SAMPLES: dict[str, tuple[str, str]] = {
    "submit": ("SubmitFunction", "submit_multiply"),
    "result": ("ResultFunction", "result_get"),
    "worker": ("WorkerFunction", "worker_multiply"),
    "notifier": ("NotifierFunction", "notifier_task_end"),
}

_CHILD = """
import json, sys, time
sys.path[:0] = {path!r}
cpu = time.process_time()
{body}
elapsed = time.process_time() - cpu
sys.__stderr__.write(json.dumps({{"cpu_s": elapsed, "modules": sorted(sys.modules)}}) + "\\n")
"""

_BARE = """
import boto3
client = boto3.client("sqs")
def handler(event, context):
    return {"statusCode": 200}
handler({}, None)
"""


def _handler_body(function: str, event: str) -> str:
    return f"""
import importlib
class _Context:  # what Powertools reads of Lambda's context object; nothing imported for it
    function_name = {function!r}
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:{function}"
    memory_limit_in_mb = 512
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    log_group_name = "/aws/lambda/{function}"
    log_stream_name = "2026/12/06/[$LATEST]bench"
    def get_remaining_time_in_millis(self):
        return 60_000
_event = json.loads(open({str(EVENTS / f"{event}.json")!r}).read())
_context = _Context()
cpu = time.process_time()
_response = importlib.import_module({f"{function}.app"!r}).lambda_handler(_event, _context)
"""


def _seed(endpoint_url: str, table: str, credentials: dict[str, str]) -> None:
    """The task the result and worker samples name: queued, owned by the sample request's caller."""
    import boto3

    from bench.warm import _item

    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
    )
    dynamodb.put_item(TableName=table, Item=_item("queued", attempts={"N": "0"}))


def measure_once(body: str, env: dict[str, str]) -> dict[str, Any]:
    """CPU seconds of one fresh interpreter running `body`, and the modules it loaded."""
    completed = _child(body, env)
    result: dict[str, Any] = json.loads(completed.stderr.strip().splitlines()[-1])
    return result


def instructions_once(body: str, env: dict[str, str]) -> int:
    """Instructions one fresh interpreter executes for `body` (valgrind's callgrind): repeatable on a busy machine."""
    completed = _child(body, env, prefix=("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"))
    match = re.search(r"Collected : (\d+)", completed.stderr)
    if match is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{completed.stderr[-2000:]}")
    return int(match[1])


def _child(body: str, env: dict[str, str], prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(
        [*prefix, *ISOLATED_PYTHON, _CHILD.format(path=_PATH[0], body=body)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"first invocation failed:\n{completed.stderr[-3000:]}")
    return completed


@contextmanager
def _invocations(names: tuple[str, ...]) -> Iterator[tuple[dict[str, tuple[str, dict[str, str]]], Callable[[], None]]]:
    """Each function's child program and environment ("bare" first), against a moto server holding the template's
    resources; and the call that puts back the task the samples name before a run."""
    from devstack.emulator import MotoProcess
    from devstack.resources import create_resources
    from devstack.template import load_sam_app

    _PATH[:] = [build()]
    credentials = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    for key, value in credentials.items():  # what create_resources' clients sign with
        os.environ.setdefault(key, value)
    with MotoProcess() as moto:
        resources = create_resources(moto.endpoint_url)
        app = load_sam_app(ROOT / "template.yaml", resources.translator())
        base = credentials | {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "AWS_ENDPOINT_URL": moto.endpoint_url,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
        }
        programs = {"bare": (_BARE, base)}
        for name in names:
            logical_id, event = SAMPLES[name]
            # The template's empty AWS_ENDPOINT_URL* (set for the local stack) must not replace the emulator's.
            template_env = {key: value for key, value in app.functions[logical_id].environment.items() if value}
            env = template_env | base | {"AWS_LAMBDA_FUNCTION_NAME": name, "MULTIPLY_DELAY_SECONDS": "0"}
            programs[name] = (_handler_body(name, event), env)
        yield programs, lambda: _seed(moto.endpoint_url, resources.table_name, credentials)


def run(runs: int = 10, names: tuple[str, ...] = tuple(SAMPLES)) -> dict[str, dict[str, Any]]:
    """Median CPU time of each function's import and first invocation, and its ratio to the bare handler's; runs
    interleaved so that the machine's noise hits all alike, the first round (the page cache's) not counted."""
    samples: dict[str, list[float]] = {}
    modules: dict[str, list[str]] = {}
    with _invocations(names) as (programs, seed):
        for _ in range(runs + 1):
            for name, (body, env) in programs.items():
                seed()
                measured = measure_once(body, env)
                modules[name] = measured["modules"]
                samples.setdefault(name, []).append(measured["cpu_s"])
    bare = statistics.median(samples["bare"][1:])
    return {
        name: {
            "cpu_median_s": round(statistics.median(series[1:]), 4),
            "ratio_to_bare": round(statistics.median(series[1:]) / bare, 3),
            "runs": len(series) - 1,
            "modules_beyond_bare": len(set(modules[name]) - set(modules["bare"])),
        }
        for name, series in samples.items()
    }


def instructions(names: tuple[str, ...] = tuple(SAMPLES)) -> dict[str, dict[str, float]]:
    """Each function's import and first invocation in instructions, and the ratio to the bare handler's. Needs
    valgrind."""
    counts: dict[str, int] = {}
    with _invocations(names) as (programs, seed):
        for name, (body, env) in programs.items():
            seed()
            counts[name] = instructions_once(body, env)
    return {
        name: {"million_instructions": round(count / 1e6, 1), "ratio_to_bare": round(count / counts["bare"], 3)}
        for name, count in counts.items()
    }


if __name__ == "__main__":
    if sys.argv[1:] == ["--instructions"]:
        print(json.dumps(instructions(), indent=2))
    else:
        print(json.dumps(run(runs=int(sys.argv[1]) if len(sys.argv) > 1 else 10), indent=2))
