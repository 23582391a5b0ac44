"""The local stack's Lambda for durable functions (devstack.lambda_service): Invoke starts an execution once per name,
each invocation of the handler runs in an execution environment process of its own, and the execution's checkpoints
outlive that process: killed or timed out mid-step, it resumes from its last completed step.

A durable function of the tests' own (tests/support/durable_template.yaml, durable_handlers.py), whatever the real
runner does. Not among the e2e tests: the stack here runs in this process, which must not run beside the e2e
package's stack (both set the functions' environment in os.environ)."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from devstack import LocalStack
from tests.e2e.e2e_support import wait_until
from tests.support.durable_handlers import MARKS_DIR, runs

TEMPLATE = Path(__file__).resolve().parents[1] / "support" / "durable_template.yaml"
FUNCTION = "ProbeFunction"
ALIAS_ARN = "arn:aws:lambda:us-east-1:123456789012:function:local-durable-probe:live"
HANDLER_TIMEOUT = 4
# The emulator invokes a handler again 5 s after a failed invocation; the steps here take well under a second.
RESUMED_WITHIN = 20


@pytest.fixture(scope="module")
def marks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("marks")


@pytest.fixture(scope="module")
def stack(marks: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(
        template=TEMPLATE,
        api=False,
        env={MARKS_DIR: str(marks)},
        parameter_overrides={"HandlerTimeout": HANDLER_TIMEOUT},
        state_dir=tmp_path_factory.mktemp("state"),
    ) as stack:
        yield stack


@pytest.fixture
def lambda_(stack: LocalStack) -> Any:
    return boto3.client("lambda", endpoint_url=stack.lambda_url, region_name="us-east-1")


def start(lambda_: Any, name: str, **event: Any) -> str:
    response = lambda_.invoke(
        FunctionName=ALIAS_ARN,
        InvocationType="Event",
        DurableExecutionName=name,
        Payload=json.dumps({"name": name, "steps": 3} | event),
    )
    assert response["StatusCode"] == 202
    arn: str = response["DurableExecutionArn"]
    return arn


def ended(lambda_: Any, arn: str, timeout: float = RESUMED_WITHIN) -> dict[str, Any]:
    def closed() -> dict[str, Any] | None:
        execution: dict[str, Any] = lambda_.get_durable_execution(DurableExecutionArn=arn)
        return execution if execution["Status"] != "RUNNING" else None

    result: dict[str, Any] = wait_until(closed, timeout=timeout, interval=0.2)
    return result


def announced(stack: LocalStack, name: str) -> list[dict[str, Any]]:
    """The "Durable Execution Status Change" events of execution `name` that the template's rule queued."""
    queue = stack.resources["EndsQueue"].ref
    found = []
    while messages := stack.sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
        "Messages", []
    ):
        for message in messages:
            event = json.loads(message["Body"])
            if event["detail"]["durableExecutionName"] == name:
                found.append(event)
                stack.sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    return found


def test_invoke_starts_one_execution_per_name_and_refuses_the_name_with_another_payload(
    stack: LocalStack, lambda_: Any, marks: Path
) -> None:
    # GIVEN an execution started by name, on the alias
    arn = start(lambda_, "by-name")

    # WHEN the same name is invoked again with the same payload, by the function's name and version this time
    again = lambda_.invoke(
        FunctionName="local-durable-probe",
        Qualifier="1",
        InvocationType="Event",
        DurableExecutionName="by-name",
        Payload=json.dumps({"name": "by-name", "steps": 3}),
    )

    # THEN it is the same execution; another payload under that name is refused
    assert again["DurableExecutionArn"] == arn
    with pytest.raises(lambda_.exceptions.DurableExecutionAlreadyStartedException):
        start(lambda_, "by-name", steps=4)
    execution = ended(lambda_, arn)
    assert execution["Status"] == "SUCCEEDED", execution
    assert execution["FunctionArn"] == ALIAS_ARN.replace(":live", ":1")
    assert [len(runs(marks / "by-name", f"step-{n}")) for n in range(3)] == [1, 1, 1]
    # AND started again once it has ended, it is still that execution
    assert start(lambda_, "by-name") == arn
    assert [len(runs(marks / "by-name", f"step-{n}")) for n in range(3)] == [1, 1, 1]
    # AND a success is not among the ends the template's rule routes
    assert announced(stack, "by-name") == []


def test_invoke_refuses_what_the_local_lambda_does_not_run(stack: LocalStack, lambda_: Any) -> None:
    def refusal(**request: Any) -> tuple[int, str]:
        with pytest.raises(ClientError) as refused:
            lambda_.invoke(**({"FunctionName": ALIAS_ARN, "InvocationType": "Event", "Payload": b"{}"} | request))
        error = refused.value.response
        return error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"]

    assert refusal(InvocationType="RequestResponse") == (501, "NotImplemented")
    assert refusal(FunctionName="local-durable-probe:2") == (404, "ResourceNotFoundException")
    assert refusal(FunctionName="arn:aws:lambda:us-west-2:123456789012:function:local-durable-probe:live") == (
        404,
        "ResourceNotFoundException",
    )
    assert refusal(FunctionName="local-durable-probe:live", Qualifier="1") == (400, "InvalidParameterValueException")
    assert refusal(DurableExecutionName="not a name") == (400, "InvalidParameterValueException")
    assert refusal(Payload=b"not json") == (400, "InvalidRequestContentException")


def test_a_handler_killed_mid_step_resumes_in_a_new_process_from_its_last_completed_step(
    stack: LocalStack, lambda_: Any, marks: Path
) -> None:
    # GIVEN an execution whose second step runs (long, the first time)
    arn = start(lambda_, "killed", first_run_seconds={"step-1": 60})
    (pid,) = wait_until(lambda: runs(marks / "killed", "step-1"))
    assert pid in stack.durable_pids[FUNCTION]

    # WHEN the process running it is killed
    os.kill(pid, signal.SIGKILL)

    # THEN the execution resumes in another process: the completed step is not run again, the interrupted one is
    execution = ended(lambda_, arn)
    assert execution["Status"] == "SUCCEEDED", execution
    assert runs(marks / "killed", "step-0") == [pid]
    first, second = runs(marks / "killed", "step-1")
    assert first == pid
    assert second != pid
    assert runs(marks / "killed", "step-2") == [second]
    assert json.loads(execution["Result"]) == {"step-0": pid, "step-1": second, "step-2": second}


def test_a_handler_past_its_timeout_is_stopped_and_the_execution_resumes(
    stack: LocalStack, lambda_: Any, marks: Path
) -> None:
    # GIVEN an execution whose second step outlasts the function's Timeout (the first time)
    arn = start(lambda_, "slow", first_run_seconds={"step-1": HANDLER_TIMEOUT + 30})
    (pid,) = wait_until(lambda: runs(marks / "slow", "step-1"))

    # WHEN the Timeout passes THEN its process is stopped
    wait_until(lambda: pid not in stack.durable_pids[FUNCTION], timeout=HANDLER_TIMEOUT + 2)

    # AND the execution resumes from the step that timed out
    execution = ended(lambda_, arn)
    assert execution["Status"] == "SUCCEEDED", execution
    assert [len(runs(marks / "slow", f"step-{n}")) for n in range(3)] == [1, 2, 1]


@pytest.mark.parametrize(
    ("event", "status"),
    [
        pytest.param({"first_run_seconds": {"step-0": HANDLER_TIMEOUT - 1}}, "STOPPED", id="stopped"),
        pytest.param({"fail": ["step-1"]}, "FAILED", id="failed"),
    ],
)
def test_an_execution_that_ends_unfinished_is_announced_to_the_templates_rule(
    stack: LocalStack, lambda_: Any, event: dict[str, Any], status: str
) -> None:
    # GIVEN a running execution
    name = f"ends-{status.lower()}"
    arn = start(lambda_, name, **event)

    # WHEN it is stopped, or a step fails
    if status == "STOPPED":
        lambda_.stop_durable_execution(DurableExecutionArn=arn)
    assert ended(lambda_, arn)["Status"] == status

    # THEN Lambda's event of its end reaches the queue the template's rule targets
    (announcement,) = wait_until(lambda: announced(stack, name), timeout=5)
    assert announcement["source"] == "aws.lambda"
    assert announcement["detail-type"] == "Durable Execution Status Change"
    detail = announcement["detail"]
    assert detail["durableExecutionArn"] == arn
    assert detail["status"] == status
    assert detail["functionArn"] == ALIAS_ARN.replace(":live", ":1")
    assert detail["startTimestamp"] <= detail["endTimestamp"]
