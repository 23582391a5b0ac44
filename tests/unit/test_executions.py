"""Durable executions through Lambda's API, as botocore sends it (a Stubber checks every parameter): a task's
execution is started with its id as the name and a payload built from the task alone; Lambda's throttling becomes a
retry, an ended execution needs no stop."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from botocore.stub import Stubber

from core.adapters.executions import ExecutionsUnavailable, LambdaDurableExecutions, execution_payload

ALIAS = "arn:aws:lambda:eu-west-1:123456789012:function:stack-durable-runner:live"
TASK_ID = "0b8f5d0e-2a8c-4d0f-9a51-7e0a3b1c2d3e"
EXECUTION = f"arn:aws:lambda:eu-west-1:123456789012:function:stack-durable-runner:3/durable-execution/{TASK_ID}/e1"


@pytest.fixture
def stubbed() -> Iterator[tuple[LambdaDurableExecutions, Stubber]]:
    client = boto3.client("lambda", region_name="eu-west-1")
    with Stubber(client) as stubber:
        yield LambdaDurableExecutions(ALIAS, lambda: client), stubber
        stubber.assert_no_pending_responses()


def test_start_invokes_the_alias_asynchronously_named_after_the_task(
    stubbed: tuple[LambdaDurableExecutions, Stubber],
) -> None:
    executions, stubber = stubbed
    expected = {
        "FunctionName": ALIAS,
        "InvocationType": "Event",
        "DurableExecutionName": TASK_ID,
        "Payload": execution_payload(TASK_ID, "train"),
    }
    stubber.add_response("invoke", {"StatusCode": 202, "DurableExecutionArn": EXECUTION}, expected)
    stubber.add_response("invoke", {"StatusCode": 202, "DurableExecutionArn": EXECUTION}, expected)

    first = executions.start(TASK_ID, "train")
    again = executions.start(TASK_ID, "train")  # a redelivery: the same request, so Lambda finds the same execution

    assert first == again == EXECUTION
    assert json.loads(execution_payload(TASK_ID, "train")) == {"task_id": TASK_ID, "task": "train"}


def test_a_throttled_start_is_unavailable_so_that_the_message_is_delivered_again(
    stubbed: tuple[LambdaDurableExecutions, Stubber],
) -> None:
    executions, stubber = stubbed
    stubber.add_client_error("invoke", "TooManyRequestsException", http_status_code=429)

    with pytest.raises(ExecutionsUnavailable):
        executions.start(TASK_ID, "train")


def test_stop_leaves_an_ended_or_unknown_execution_alone(stubbed: tuple[LambdaDurableExecutions, Stubber]) -> None:
    executions, stubber = stubbed
    stubber.add_response("stop_durable_execution", {"StopTimestamp": 1.0}, {"DurableExecutionArn": EXECUTION})
    stubber.add_client_error("stop_durable_execution", "ResourceNotFoundException", http_status_code=404)
    stubber.add_client_error("stop_durable_execution", "InvalidParameterValueException", http_status_code=400)

    executions.stop(EXECUTION)
    executions.stop(EXECUTION)
    executions.stop(EXECUTION)


def test_stop_that_lambda_refuses_for_another_reason_is_raised(
    stubbed: tuple[LambdaDurableExecutions, Stubber],
) -> None:
    executions, stubber = stubbed
    stubber.add_client_error("stop_durable_execution", "AccessDeniedException", http_status_code=403)

    with pytest.raises(Exception, match="AccessDenied"):
        executions.stop(EXECUTION)


def test_status_of_an_execution(stubbed: tuple[LambdaDurableExecutions, Stubber]) -> None:
    executions, stubber = stubbed
    stubber.add_response(
        "get_durable_execution",
        {
            "DurableExecutionArn": EXECUTION,
            "DurableExecutionName": TASK_ID,
            "FunctionArn": ALIAS,
            "Status": "TIMED_OUT",
            "StartTimestamp": 1.0,
        },
        {"DurableExecutionArn": EXECUTION},
    )
    stubber.add_client_error("get_durable_execution", "ResourceNotFoundException", http_status_code=404)

    assert executions.status(EXECUTION) == "TIMED_OUT"
    assert executions.status(EXECUTION) is None
