"""template.yaml's durable tasks: the runner is a durable function on a published alias, the worker may only start
its executions (on the alias), the result function may only stop and read them, the runner may only checkpoint its
own, and every execution that ends without its task finished reaches the dead-letter consumer."""

from __future__ import annotations

from typing import Any

from tests.template.test_template import DURABLE_EXECUTIONS, FUNCTIONS, _allowed, as_list, of_type

RUNNER = "DurableRunnerFunction"
ALIAS = {"Ref": "DurableRunnerFunctionAliaslive"}


def _granted(resources: dict[str, Any], function: str, action: str) -> list[Any]:
    """The resources one action (exactly) is allowed on, for one function."""
    return _allowed(resources, function, action).get(action, [])


def test_template_durable_runner_is_a_durable_function_on_a_published_alias(
    sam_template: dict[str, Any], resources: dict[str, Any]
) -> None:
    properties = resources[RUNNER]["Properties"]
    assert properties["DurableConfig"]["ExecutionTimeout"] == {"Ref": "DurableTaskTimeout"}
    assert 1 <= properties["DurableConfig"]["RetentionPeriodInDays"] <= 90
    timeout = sam_template["Parameters"]["DurableTaskTimeout"]
    # A day by default; at most a year (the service allows 31,622,400 s).
    assert timeout["Default"] == 86_400
    assert timeout["MaxValue"] <= 31_622_400
    # One invocation lasts at most WorkerTimeout, as a plain task's run.
    assert properties["Timeout"] == {"Ref": "WorkerTimeout"}
    assert properties["Environment"]["Variables"]["WORKER_TIMEOUT"] == {"Ref": "WorkerTimeout"}
    assert properties["Runtime"] == "python3.13"
    alias = resources["DurableRunnerFunctionAliaslive"]
    assert alias["Type"] == "AWS::Lambda::Alias"
    assert alias["Properties"]["Name"] == "live"
    # The name the policies name its executions by.
    assert properties["FunctionName"] == {"Fn::Sub": "${AWS::StackName}-durable-runner"}


def test_template_only_the_worker_starts_durable_executions_and_only_on_the_alias(resources: dict[str, Any]) -> None:
    starters = {name: _granted(resources, name, "lambda:InvokeFunction") for name in FUNCTIONS}
    assert {name for name, allowed in starters.items() if allowed} == {"WorkerFunction"}
    assert starters["WorkerFunction"] == [ALIAS]
    variables = resources["WorkerFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["DURABLE_RUNNER_ARN"] == ALIAS


def test_template_only_the_result_function_stops_and_reads_durable_executions(resources: dict[str, Any]) -> None:
    for action in ("lambda:StopDurableExecution", "lambda:GetDurableExecution"):
        holders = {name: _granted(resources, name, action) for name in FUNCTIONS}
        assert {name for name, allowed in holders.items() if allowed} == {"ResultFunction"}, action
        assert holders["ResultFunction"] == [DURABLE_EXECUTIONS]


def test_template_only_the_runner_checkpoints_and_only_its_own_executions(resources: dict[str, Any]) -> None:
    for action in ("lambda:CheckpointDurableExecution", "lambda:GetDurableExecutionState"):
        holders = {name: _granted(resources, name, action) for name in FUNCTIONS}
        assert {name for name, allowed in holders.items() if allowed} == {RUNNER}, action
        assert holders[RUNNER] == [DURABLE_EXECUTIONS]
    # SAM's managed policy for durable functions grants the same on every resource: the boundary narrows it.
    boundary = resources["FunctionPermissionsBoundary"]["Properties"]["PolicyDocument"]
    (durable,) = [
        statement
        for statement in as_list(boundary["Statement"])
        if any(action.startswith("lambda:") for action in as_list(statement["Action"]))
    ]
    assert durable["Resource"] == DURABLE_EXECUTIONS
    assert set(durable["Action"]) == {
        "lambda:InvokeFunction",
        "lambda:CheckpointDurableExecution",
        "lambda:GetDurableExecutionState",
        "lambda:StopDurableExecution",
        "lambda:GetDurableExecution",
    }


def test_template_ended_durable_executions_reach_the_dead_letter_consumer(resources: dict[str, Any]) -> None:
    rule = resources["DurableExecutionEndsRule"]["Properties"]
    assert "EventBusName" not in rule  # Lambda puts these on the account's default bus
    pattern = rule["EventPattern"]
    assert pattern["source"] == ["aws.lambda"]
    assert pattern["detail-type"] == ["Durable Execution Status Change"]
    # Not SUCCEEDED: the runner records a task's end itself; nor RUNNING.
    assert set(pattern["detail"]["status"]) == {"FAILED", "TIMED_OUT", "STOPPED"}
    (prefix,) = pattern["detail"]["functionArn"]
    assert prefix["prefix"]["Fn::Sub"].endswith(":function:${AWS::StackName}-durable-runner")
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["DurableExecutionEndsQueue", "Arn"]}
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["TaskDeadLetterQueue", "Arn"]}
    policies = of_type(resources, "AWS::SQS::QueuePolicy")
    senders = {
        queue["Ref"]: statement
        for policy in policies.values()
        for queue in policy["Properties"]["Queues"]
        for statement in as_list(policy["Properties"]["PolicyDocument"]["Statement"])
    }
    for queue in ("DurableExecutionEndsQueue", "TaskDeadLetterQueue"):
        statement = senders[queue]
        assert statement["Principal"] == {"Service": "events.amazonaws.com"}
        assert statement["Action"] == "sqs:SendMessage"
        assert statement["Condition"] == {
            "ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["DurableExecutionEndsRule", "Arn"]}}
        }
