"""Durable tasks' executions (Lambda durable functions): the worker starts one per task, the result function stops one
when its task is cancelled and asks how one ended. AWS failures leave as domain errors.

Started with Invoke (InvocationType Event) on the durable runner's alias, the task id as the execution's name and a
payload built from the task alone: Lambda returns the existing execution for a name it knows with the same payload
(docs: Invoke, DurableExecutionName), so every redelivery of the task's message starts it at most once."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from core.adapters.aws_errors import AwsError, error_code, is_aws_unavailable
from core.errors import ServiceUnavailable

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

# How a durable execution ends (GetDurableExecution's Status); RUNNING while it goes on.
ENDED_STATUSES = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED"})


class ExecutionsUnavailable(ServiceUnavailable):
    """Lambda throttled or did not answer a call about a durable execution."""


def execution_payload(task_id: str, task: str) -> bytes:
    """What the runner is started with: the same bytes for the same task on every delivery (a different payload under
    a known name is refused, DurableExecutionAlreadyStartedException)."""
    return json.dumps({"task_id": task_id, "task": task}, separators=(",", ":"), sort_keys=True).encode()


class DurableExecutions(Protocol):
    def start(self, task_id: str, task: str) -> str:
        """Start the task's execution, or find the one already started: its ARN."""

    def stop(self, execution_arn: str) -> None:
        """Stop a running execution (no step starts after it); an ended or unknown one is left as it is."""

    def status(self, execution_arn: str) -> str | None:
        """RUNNING, or how it ended (ENDED_STATUSES); None when Lambda knows no such execution."""


class LambdaDurableExecutions:
    def __init__(self, function_arn: str, client: Callable[[], LambdaClient]) -> None:
        # A qualified ARN (the alias): durable functions are invoked by version or alias.
        self._function_arn = function_arn
        # Built at first use: only invocations that meet a durable task pay for Lambda's client.
        self._client_factory = client

    @property
    def _client(self) -> LambdaClient:
        return self._client_factory()

    def start(self, task_id: str, task: str) -> str:
        try:
            response = self._client.invoke(
                FunctionName=self._function_arn,
                InvocationType="Event",
                DurableExecutionName=task_id,
                Payload=execution_payload(task_id, task),
            )
        except AwsError as error:
            if is_aws_unavailable(error):
                raise ExecutionsUnavailable("Lambda did not start the durable execution; try again") from error
            raise
        return str(response.get("DurableExecutionArn") or "")

    def stop(self, execution_arn: str) -> None:
        try:
            self._client.stop_durable_execution(DurableExecutionArn=execution_arn)
        except AwsError as error:
            if error_code(error) in (
                "ResourceNotFoundException",
                "ConflictException",
                "InvalidParameterValueException",
            ):
                return  # ended already, or never known: nothing runs any more
            if is_aws_unavailable(error):
                raise ExecutionsUnavailable("Lambda did not stop the durable execution; try again") from error
            raise

    def status(self, execution_arn: str) -> str | None:
        try:
            response = self._client.get_durable_execution(DurableExecutionArn=execution_arn)
        except AwsError as error:
            if error_code(error) == "ResourceNotFoundException":
                return None
            if is_aws_unavailable(error):
                raise ExecutionsUnavailable("Lambda did not answer about the durable execution; try again") from error
            raise
        return str(response["Status"])


class InMemoryDurableExecutions:
    """Executions as a dict, for domain tests: started once per name, stopped on request."""

    def __init__(self) -> None:
        self.started: dict[str, str] = {}
        self.statuses: dict[str, str] = {}
        self.starts = 0

    def start(self, task_id: str, task: str) -> str:
        self.starts += 1
        arn = self.started.setdefault(
            task_id, f"arn:aws:lambda:us-east-1:123456789012:function:runner:1/durable-execution/{task_id}/0"
        )
        self.statuses.setdefault(arn, "RUNNING")
        return arn

    def stop(self, execution_arn: str) -> None:
        if self.statuses.get(execution_arn) == "RUNNING":
            self.statuses[execution_arn] = "STOPPED"

    def status(self, execution_arn: str) -> str | None:
        return self.statuses.get(execution_arn)
