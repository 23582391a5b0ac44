"""The local stack itself: resources from the template, env.json for sam local, services-only mode, and the
aws-sam-cli / moto internals it is built on (these fail loudly when an upgrade changes them)."""

from __future__ import annotations

import contextlib
import inspect
import itertools
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import boto3
import pytest
import requests

from devstack import LocalStack
from devstack.envvars import DOCKER_HOST, env_vars, for_container
from devstack.template import DEFAULT_TEMPLATE, load_template
from tests.e2e.e2e_support import wait_until

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def test_env_vars_file_matches_template_variables(local_stack: LocalStack | None) -> None:
    if local_stack is None:
        pytest.skip("needs the local stack")
    # GIVEN each function's variables as the template declares them
    declared = load_template(DEFAULT_TEMPLATE)
    globals_ = set(declared["Globals"]["Function"]["Environment"]["Variables"])
    expected = {
        name: globals_ | set(resource["Properties"].get("Environment", {}).get("Variables", {}))
        for name, resource in declared["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }

    # WHEN
    generated = env_vars(local_stack.sam_app, local_stack.environment)

    # THEN the same keys, local names, and URLs a container can reach
    assert {name: set(variables) for name, variables in generated.items()} == expected
    assert generated["SubmitFunction"]["TABLE_NAME"] == local_stack.resources.table_name
    assert generated["SubmitFunction"]["QUEUE_URL"].startswith(f"http://{DOCKER_HOST}:")
    assert generated["WorkerFunction"]["MAX_RECEIVE_COUNT"] == "3"
    # The functions in Docker reach the emulated AWS through the template's LocalEndpointUrl parameter.
    assert generated["WorkerFunction"]["AWS_ENDPOINT_URL"].startswith(f"http://{DOCKER_HOST}:")
    # And the stack's own Lambda (the durable runner's Invoke, stop and get of its executions) through
    # LocalLambdaEndpointUrl.
    assert generated["ResultFunction"]["AWS_ENDPOINT_URL_LAMBDA"] == for_container(local_stack.lambda_url)


def start_devstack(
    *args: str, ready: str, env: dict[str, str] | None = None, new_session: bool = False
) -> tuple[subprocess.Popen[str], str]:
    """`python -m devstack ARGS` as `make run` starts it; the process and its output up to the line `ready`.
    new_session: in a process group of its own, as a terminal's job or a service manager's unit runs it."""
    environment = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack", *args],
        cwd=ROOT,
        env=environment | {"PYTHONPATH": "functions:."} | (env or {}),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=new_session,
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if ready in line:
            break
    return process, "".join(lines)


def test_services_only_mode_starts_and_stops(tmp_path: Path) -> None:
    # GIVEN `python -m devstack --no-api`
    env_file = tmp_path / "env.json"
    process, output = start_devstack("--no-api", "--write-env-vars", str(env_file), ready="services ready")
    try:
        endpoint = re.search(r"AWS services at (http://\S+)", output)
        assert endpoint, output
        assert "API ready" not in output

        # THEN the services answer and env.json describes them
        sqs = boto3.client("sqs", endpoint_url=endpoint.group(1), region_name="us-east-1")
        assert any(url.endswith("/TaskQueue") for url in sqs.list_queues()["QueueUrls"])
        assert set(json.loads(env_file.read_text())) == {
            "SubmitFunction",
            "ResultFunction",
            "WorkerFunction",
            "DeadLetterFunction",
            "DurableRunnerFunction",
            "NotifierFunction",
            "WebhookFunction",
        }
    finally:
        # WHEN it gets SIGTERM THEN it stops cleanly
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0


def _children(pid: int) -> set[int]:
    children: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that ended meanwhile
            children |= {int(child) for child in (task / "children").read_text().split()}
    return children


def test_make_run_serves_tasks_with_the_worker_in_its_own_process_and_stops_cleanly() -> None:
    # GIVEN `python -m devstack` (what `make run` starts) on a free port
    process, output = start_devstack("--port", "0", ready="API ready", env={"MULTIPLY_DELAY_SECONDS": "0"})
    try:
        ready = re.search(r"API ready at (http://\S+)", output)
        assert ready, output
        # THEN the emulator and the worker run in processes of their own
        assert len(_children(process.pid)) >= 2

        # WHEN a task is submitted THEN the worker runs it and its result shows
        url = ready.group(1)
        submitted = requests.post(f"{url}/multiply", json={"x": 6, "y": 7}, timeout=10)
        assert submitted.status_code == 202, submitted.text
        location = f"{url}{submitted.headers['Location']}"
        result = wait_until(lambda: (r := requests.get(location, timeout=10)).status_code == 200 and r.json())
        assert result["result"] == 42
        children = _children(process.pid)
    finally:
        # WHEN it gets SIGTERM THEN it stops, and so do its processes
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    # (multiprocessing's resource tracker, a child too, exits on its own once its parent has)
    assert wait_until(lambda: not [pid for pid in children if Path(f"/proc/{pid}").exists()], timeout=10)


@pytest.mark.parametrize(
    "signum",
    [
        # Ctrl-C in a terminal: the children leave it to their parent to stop them, in order.
        pytest.param(signal.SIGINT, id="Ctrl-C"),
        # `kill -- -PGID`, a service manager stopping its unit: the children end at once, the emulator and the idle
        # workers while they wait for their stop signal (the stack used to wait forever on a dead worker's
        # multiprocessing Event).
        pytest.param(signal.SIGTERM, id="SIGTERM"),
    ],
)
def test_make_run_stops_cleanly_when_its_whole_process_group_gets_a_signal(signum: int) -> None:
    # GIVEN `python -m devstack` in a process group of its own, as a terminal's job
    process, output = start_devstack("--port", "0", ready="API ready", new_session=True)
    try:
        assert "API ready" in output, output
        children = _children(process.pid)

        # WHEN every process of the group gets the signal
        os.killpg(process.pid, signum)

        # THEN the stack stops, and so do its processes, with no process's traceback on the way
        assert process.wait(timeout=60) == 0
        assert wait_until(lambda: not [pid for pid in children if Path(f"/proc/{pid}").exists()], timeout=10)
        assert process.stdout is not None
        rest = process.stdout.read()  # to the end: no process holds the pipe any more
        assert "Traceback" not in rest, rest
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize(
    ("printed", "named"),
    [
        pytest.param(r"AWS services at \S+ \(the emulator's pid (\d+)\)", "the AWS emulator", id="AWS"),
        # Every durable execution is in it, and its timers: none would ever resume.
        pytest.param(
            r"the durable execution emulator's pid (\d+)", "the durable execution emulator", id="durable executions"
        ),
    ],
)
def test_make_run_says_so_and_exits_when_an_emulator_dies(printed: str, named: str) -> None:
    # GIVEN `python -m devstack`
    process, output = start_devstack("--port", "0", ready="API ready")
    try:
        emulator = re.search(printed, output)
        assert emulator, output
        children = _children(process.pid)
        assert int(emulator.group(1)) in children

        # WHEN its process dies (the OOM killer, a stray kill): whatever it held is gone
        os.kill(int(emulator.group(1)), signal.SIGKILL)

        # THEN the stack says why and exits with an error, rather than serve 503s until someone looks; its
        # processes end too
        assert process.wait(timeout=60) == 1
        assert wait_until(lambda: not [pid for pid in children if Path(f"/proc/{pid}").exists()], timeout=10)
        assert process.stdout is not None
        rest = process.stdout.read()
        assert named in rest, rest
        assert "start the stack again" in rest, rest
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_worker_runs_each_concurrent_invocation_in_a_process_of_its_own() -> None:
    # GIVEN the local stack with two concurrent worker invocations and tasks that take five seconds
    process, output = start_devstack(
        "--port", "0", "--worker-concurrency", "2", ready="API ready", env={"MULTIPLY_DELAY_SECONDS": "5"}
    )
    try:
        workers = re.search(r"worker: one process per concurrent invocation \(pids ([\d, ]+)\)", output)
        ready = re.search(r"API ready at (http://\S+)", output)
        assert workers, output
        assert ready, output
        pids = {int(pid) for pid in workers.group(1).split(", ")}
        # THEN two processes of their own, children of the stack: no invocation shares a process with another
        assert len(pids) == 2
        assert pids <= _children(process.pid)

        # WHEN a task runs, and a second one is submitted meanwhile THEN both run at once, one in each process
        url = ready.group(1)

        def submit(x: int) -> str:
            response = requests.post(f"{url}/multiply", json={"x": x, "y": 2}, timeout=10)
            return f"{url}{response.headers['Location']}"

        def running(location: str) -> bool:
            return bool(requests.get(location, timeout=10).json()["status"] == "running")

        first = submit(1)
        assert wait_until(lambda: running(first), timeout=20)
        second = submit(2)  # the first's process is busy with it: only the other one can take this
        assert wait_until(lambda: running(first) and running(second), timeout=20)
        results = [
            wait_until(lambda loc=loc: requests.get(loc, timeout=10).json().get("result")) for loc in (first, second)
        ]
        assert results == [2, 4]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def test_concurrent_api_requests_log_each_with_its_own_function_and_task() -> None:
    # GIVEN `python -m devstack`, its output read as it comes
    process, output = start_devstack("--port", "0", ready="API ready", env={"MULTIPLY_DELAY_SECONDS": "0"})
    lines: list[str] = []
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(process.stdout or ()), daemon=True)
    reader.start()
    try:
        environments = re.search(r"API functions: one process per execution environment \(pids ([\d, ]+);", output)
        ready = re.search(r"API ready at (http://\S+)", output)
        assert environments, output
        assert ready, output
        assert {int(pid) for pid in environments.group(1).split(", ")} <= _children(process.pid)
        url = ready.group(1)

        # WHEN clients submit and poll at once, so that submit's and result's invocations overlap
        def submit_and_poll(x: int) -> str:
            submitted = requests.post(f"{url}/multiply", json={"x": x, "y": 1}, timeout=10)
            assert submitted.status_code == 202, submitted.text
            for _ in range(3):
                assert requests.get(f"{url}{submitted.headers['Location']}", timeout=10).status_code in (200, 202)
            return str(submitted.json()["task_id"])

        with ThreadPoolExecutor(8) as clients:
            task_ids = set(clients.map(submit_and_poll, range(40)))
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        reader.join(timeout=10)

    # THEN each "task accepted" line names the submit function and the task it accepted, once per task: no line
    # carries another invocation's Lambda context or correlation id, as it would were they to share a Logger
    records = [json.loads(line) for line in lines if line.startswith("{")]
    accepted = [record for record in records if record.get("message") == "task accepted"]
    assert sorted(record["correlation_id"] for record in accepted) == sorted(task_ids)
    assert {record["function_name"] for record in accepted} == {"SubmitFunction"}
    assert len({record["function_request_id"] for record in accepted}) == len(task_ids)


def test_samcli_internals_devstack_relies_on() -> None:
    """Pinned to aws-sam-cli 1.170: LocalApigwService is not a public API."""
    from samcli.commands._utils.template import get_template_data
    from samcli.lib.intrinsic_resolver.intrinsic_property_resolver import IntrinsicResolver
    from samcli.lib.intrinsic_resolver.intrinsics_symbol_table import IntrinsicsSymbolTable
    from samcli.lib.providers.api_provider import ApiProvider
    from samcli.lib.providers.sam_function_provider import SamFunctionProvider
    from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider
    from samcli.lib.utils.stream_writer import StreamWriter
    from samcli.local.apigw.local_apigw_service import LocalApigwService

    assert {"api", "lambda_runner", "port", "host"} <= set(inspect.signature(LocalApigwService).parameters)
    assert "parameter_overrides" in inspect.signature(SamLocalStackProvider.get_stacks).parameters
    assert "logical_id_translator" in inspect.signature(IntrinsicsSymbolTable).parameters
    assert list(inspect.signature(IntrinsicResolver.intrinsic_property_resolver).parameters)[:3] == [
        "self",
        "intrinsic",
        "ignore_errors",
    ]
    assert "cwd" in inspect.signature(ApiProvider).parameters
    assert callable(SamFunctionProvider.get_all)
    assert callable(get_template_data)
    assert callable(StreamWriter.write_str)
    # devstack.api passes a body that is not UTF-8 on base64-encoded, through these.
    from samcli.local.apigw.event_constructor import construct_v2_event_http

    assert list(inspect.signature(LocalApigwService._generate_lambda_event).parameters) == [
        "self",
        "flask_request",
        "route",
        "method",
        "endpoint",
    ]
    assert {"binary_types", "route_key"} <= set(inspect.signature(construct_v2_event_http).parameters)
    assert callable(LocalApigwService._v2_route_key)

    # The round trip itself: routes from the template, a 2.0 event to the runner, its JSON answer to the client.
    class RecordingRunner:
        events: ClassVar[list[dict[str, Any]]] = []

        def is_debugging(self) -> bool:
            return False

        def invoke(self, name: str, event: str, stdout: StreamWriter, stderr: Any = None, **_: Any) -> None:
            self.events.append({"function": name, **json.loads(event)})
            stdout.write_str(json.dumps({"statusCode": 201, "headers": {"X-Seen": "yes"}, "body": "ok"}))

    stacks, _ = SamLocalStackProvider.get_stacks(str(DEFAULT_TEMPLATE))
    service = LocalApigwService(api=ApiProvider(stacks, cwd=str(ROOT)).api, lambda_runner=RecordingRunner(), port=1)
    service.create()
    client = service._app.test_client()
    response = client.post("/multiply/abc?q=1", data="{}", headers={"Idempotency-Key": "k"})
    assert (response.status_code, response.headers["X-Seen"], response.get_data(as_text=True)) == (201, "yes", "ok")
    (event,) = RecordingRunner.events
    assert event["function"] == "ResultFunction"
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /{task}/{task_id}"
    assert event["rawPath"] == "/multiply/abc"
    assert event["pathParameters"] == {"task": "multiply", "task_id": "abc"}
    assert {k.lower(): v for k, v in event["headers"].items()}["idempotency-key"] == "k"
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["body"] == "{}"


def test_moto_server_internals_devstack_relies_on() -> None:
    from moto.server import ThreadedMotoServer

    assert {"ip_address", "port", "verbose"} <= set(inspect.signature(ThreadedMotoServer).parameters)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        assert host == "127.0.0.1"
        assert port > 0
    finally:
        server.stop()
        server._server.server_close()  # type: ignore[union-attr]


def _aws_answers(endpoint_url: str) -> list[Any]:
    """What the stack's kinds of calls answer: items of every attribute type, an update, a scan, a message."""
    dynamodb = boto3.client("dynamodb", endpoint_url=endpoint_url, region_name="us-east-1")
    dynamodb.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    item: dict[str, Any] = {
        "n": {"N": "1.5"},
        "b": {"BOOL": True},
        "z": {"NULL": True},
        "ss": {"SS": ["x", "y"]},
        "ns": {"NS": ["1", "2"]},
        "m": {"M": {"q": {"L": [{"S": "r"}, {"N": "3"}, {"M": {}}]}}},
    }
    dynamodb.put_item(TableName="t", Item=item | {"k": {"S": "a"}, "bin": {"B": b"\x00\x01"}, "bs": {"BS": [b"\x02"]}})
    dynamodb.put_item(TableName="t", Item=item | {"k": {"S": "b"}})
    answers: list[Any] = [dynamodb.get_item(TableName="t", Key={"k": {"S": k}})["Item"] for k in "ab"]
    for _ in range(2):  # the second time from devstack's cache of parsed expressions
        answers.append(
            dynamodb.update_item(
                TableName="t",
                Key={"k": {"S": "b"}},
                UpdateExpression="SET n = n + :one, #b = :no",
                ConditionExpression="attribute_exists(k) AND n < :ten",
                ExpressionAttributeNames={"#b": "b"},
                ExpressionAttributeValues={":one": {"N": "1"}, ":no": {"BOOL": False}, ":ten": {"N": "10"}},
                ReturnValues="ALL_NEW",
            )["Attributes"]
        )
    answers.append(sorted(dynamodb.scan(TableName="t")["Items"], key=lambda i: str(i["k"])))
    sqs = boto3.client("sqs", endpoint_url=endpoint_url, region_name="us-east-1")
    queue_url = sqs.create_queue(QueueName="q")["QueueUrl"]
    sqs.send_message(
        QueueUrl=queue_url, MessageBody="hi", MessageAttributes={"a": {"DataType": "String", "StringValue": "v"}}
    )
    (message,) = sqs.receive_message(QueueUrl=queue_url, AttributeNames=["All"], MessageAttributeNames=["All"])[
        "Messages"
    ]
    answers.append({key: message[key] for key in ("Body", "MessageAttributes", "MD5OfBody")})
    answers.append(message["Attributes"]["ApproximateReceiveCount"])
    answers.append(sorted(sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]))
    return answers


def test_devstack_moto_answers_as_moto_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """devstack serves moto's server app on its own HTTP server, with some of moto's per-request work cached."""
    from moto.server import ThreadedMotoServer

    from devstack.emulator import MotoProcess

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, os.environ.get(name, "testing"))
    plain = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    plain.start()
    try:
        host, port = plain.get_host_and_port()
        expected = _aws_answers(f"http://{host}:{port}")
    finally:
        plain.stop()
        plain._server.server_close()  # type: ignore[union-attr]
    with MotoProcess() as moto:
        assert _aws_answers(moto.endpoint_url) == expected


def test_make_run_says_why_and_exits_when_a_task_module_cannot_be_imported() -> None:
    # GIVEN a task module that fails at import, in every function's environment
    process, output = start_devstack("--port", "0", "--task-module", "tests.support.broken_tasks", ready="API ready")

    # THEN the stack does not start: it exits with an error that names the cause
    assert "API ready" not in output
    assert "cannot start" in output, output
    assert "RuntimeError: this task module is broken on purpose" in output, output
    assert process.wait(timeout=30) == 1


def _function_processes(stack_pid: int, emulators: set[int]) -> list[int]:
    """The stack's execution environments: its spawned children, but the emulators (AWS's, durable executions')."""
    found = []
    for pid in _children(stack_pid) - emulators:
        with contextlib.suppress(FileNotFoundError):
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
    return found


def test_tasks_all_finish_once_while_environments_are_killed_even_as_they_start() -> None:
    # GIVEN `python -m devstack`, redeliveries after 2 s
    process, output = start_devstack(
        "--port", "0", "--visibility-timeout", "2", ready="API ready", env={"MULTIPLY_DELAY_SECONDS": "0"}
    )
    logs: list[str] = []  # read as they come: a full pipe would stop the stack's writes
    threading.Thread(target=lambda: logs.extend(process.stdout or ()), daemon=True).start()
    try:
        url = re.search(r"API ready at (http://\S+)", output)
        emulator = re.search(r"AWS services at (\S+) \(the emulator's pid (\d+)\)", output)
        dex = re.search(r"the durable execution emulator's pid (\d+)", output)
        assert url, output
        assert emulator, output
        assert dex, output
        killing = threading.Event()
        killed: list[int] = []

        def kill() -> None:
            # A random worker or API environment every 0.3 s; every other time the newest, often still starting.
            while not killing.wait(0.3):
                pids = sorted(_function_processes(process.pid, {int(emulator.group(2)), int(dex.group(1))}))
                if pids:
                    victim = pids[-1] if len(killed) % 2 else random.choice(pids)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(victim, signal.SIGKILL)
                        killed.append(victim)

        def run(n: int) -> tuple[str, Any]:
            # A client that retries with the same Idempotency-Key until its task is accepted, then polls it.
            session = requests.Session()
            while True:
                with contextlib.suppress(requests.ConnectionError):
                    submitted = session.post(
                        f"{url.group(1)}/multiply",
                        json={"x": n, "y": 7},
                        headers={"Idempotency-Key": f"chaos-{n}"},
                        timeout=30,
                    )
                    if submitted.status_code == 202:
                        break
                    # An environment killed during the invocation: Lambda's Runtime.ExitError, a 5xx.
                    assert submitted.status_code >= 500, submitted.text
                time.sleep(0.2)
            location = f"{url.group(1)}{submitted.headers['Location']}"

            def done() -> Any:
                with contextlib.suppress(requests.ConnectionError):
                    response = session.get(location, timeout=30)
                    return response.status_code == 200 and response.json()
                return False

            return submitted.json()["task_id"], wait_until(done, timeout=120, interval=0.2)

        def clients_until(deadline: float) -> list[int]:
            numbers = itertools.count()
            lock = threading.Lock()

            def client() -> list[int]:
                mine = []
                while time.monotonic() < deadline:
                    with lock:
                        n = next(numbers)
                    mine.append(n)
                    run(n)
                return mine

            with ThreadPoolExecutor(6) as pool:
                return sorted(n for share in pool.map(lambda _: client(), range(6)) for n in share)

        killer = threading.Thread(target=kill, daemon=True)
        killer.start()
        # WHEN clients submit tasks for 6 s while the killing goes on
        try:
            numbers = clients_until(time.monotonic() + 6)
        finally:
            killing.set()
            killer.join()
        # AND each key is sent again once all is calm, its task polled to the end
        with ThreadPoolExecutor(6) as clients:
            results = list(clients.map(run, numbers))

        # THEN every task finished with its result, and no key made a second task
        assert len(killed) > 10
        assert [result["result"] for _, result in results] == [n * 7 for n in numbers]
        table = boto3.client("dynamodb", endpoint_url=emulator.group(1), region_name="us-east-1")
        assert table.scan(TableName="TasksTable", Select="COUNT")["Count"] == len(numbers)
        # AND the stack still runs, and stops cleanly
        assert process.poll() is None
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
