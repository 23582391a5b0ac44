"""Drives the three handlers the way API Gateway and the SQS event source do, against moto."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3
from dead_letter.app import lambda_handler as dead_letter_handler

from devstack.event_source import sqs_record
from devstack.lambdas import LambdaContext
from devstack.resources import LocalResources
from result.app import lambda_handler as result_handler
from submit.app import lambda_handler as submit_handler
from tests.support.events import http_event, lambda_context
from worker.app import lambda_handler as worker_handler

# requestContext.authorizer as API Gateway passes it; None: no authorizer (AuthType NONE).
Authorizer = dict[str, Any] | None


def iam_caller(principal_arn: str) -> dict[str, Any]:
    """An IAM authorizer's context for a SigV4-signed request of `principal_arn`."""
    return {"iam": {"accountId": "123456789012", "userArn": principal_arn, "userId": "AIDAEXAMPLE"}}


def jwt_caller(subject: str, issuer: str = "https://issuer.example.com") -> dict[str, Any]:
    """A JWT authorizer's context for a token of `subject`."""
    return {"jwt": {"claims": {"iss": issuer, "sub": subject, "aud": "tasks"}, "scopes": None}}


@dataclass
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]


def _call(handler: Any, event: dict[str, Any]) -> HttpResponse:
    response = handler(event, lambda_context())
    return HttpResponse(response["statusCode"], response.get("headers", {}), json.loads(response["body"]))


class Driver:
    def __init__(self, resources: LocalResources) -> None:
        self.resources = resources
        self.sqs = boto3.client("sqs")
        self.dynamodb = boto3.client("dynamodb")
        self.s3 = boto3.client("s3")

    def submit(
        self, task: str, body: Any, headers: dict[str, str] | None = None, *, caller: Authorizer = None
    ) -> HttpResponse:
        return _call(submit_handler, http_event("POST", f"/{task}", body, headers, authorizer=caller))

    def create_upload(self, *, caller: Authorizer = None, body: Any = None) -> HttpResponse:
        """POST /uploads, without a body as old clients send it, or with `body` ({"bytes": N})."""
        return _call(submit_handler, http_event("POST", "/uploads", body, authorizer=caller))

    def upload(self, form: dict[str, Any], data: bytes) -> None:
        """Store `data` where an upload form says, as the caller's POST to S3 would (tests/e2e send it for real)."""
        self.s3.put_object(Bucket=self.resources.payload_bucket, Key=form["fields"]["key"], Body=data)

    def result(self, task: str, task_id: str, *, caller: Authorizer = None) -> dict[str, Any]:
        """GET /<task>/<task_id>/result, as the handler answers it (a 303 has no body)."""
        response: dict[str, Any] = result_handler(
            http_event("GET", f"/{task}/{task_id}/result", authorizer=caller), lambda_context()
        )
        return response

    def get(self, task: str, task_id: str, *, caller: Authorizer = None) -> HttpResponse:
        return _call(result_handler, http_event("GET", f"/{task}/{task_id}", authorizer=caller))

    def cancel(self, task: str, task_id: str, *, caller: Authorizer = None) -> HttpResponse:
        return _call(result_handler, http_event("DELETE", f"/{task}/{task_id}", authorizer=caller))

    def input(self, task: str, task_id: str, *, caller: Authorizer = None) -> HttpResponse:
        return _call(result_handler, http_event("GET", f"/{task}/{task_id}/input", authorizer=caller))

    def list(self, task: str | None = None, *query: tuple[str, str], caller: Authorizer = None) -> HttpResponse:
        """GET /<task>, or GET /tasks without a task, with the query parameters in order."""
        path = "/tasks" if task is None else f"/{task}"
        return _call(result_handler, http_event("GET", path, authorizer=caller, query=list(query)))

    def list_all_pages(self, task: str | None = None, *query: tuple[str, str], caller: Authorizer = None) -> list[Any]:
        """Every item of a listing, following next_cursor to its end."""
        items: list[Any] = []
        cursor: list[tuple[str, str]] = []
        while True:
            page = self.list(task, *query, *cursor, caller=caller)
            assert page.status == 200, page.body
            items += page.body["items"]
            if page.body["next_cursor"] is None:
                return items
            cursor = [("cursor", page.body["next_cursor"])]

    def receive(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.sqs.receive_message(
            QueueUrl=self.resources.queue_url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        return messages

    def run_worker(self, messages: list[dict[str, Any]], context: LambdaContext | None = None) -> list[str]:
        """Invoke the worker (with a minute to run, unless `context` says otherwise); delete what it handled, return
        the failed message ids to the queue at once (as if their visibility timeout had passed)."""
        event = {"Records": [sqs_record(message, self.resources.queue_arn) for message in messages]}
        response = worker_handler(event, context or lambda_context())
        failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
        for message in messages:
            if message["MessageId"] in failed:
                self.sqs.change_message_visibility(
                    QueueUrl=self.resources.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
            else:
                self.sqs.delete_message(QueueUrl=self.resources.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return sorted(failed)

    def receive_dead_letters(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.sqs.receive_message(
            QueueUrl=self.resources.dlq_url, MaxNumberOfMessages=10, AttributeNames=["All"]
        ).get("Messages", [])
        return messages

    def run_dead_letter_consumer(self, messages: list[dict[str, Any]]) -> list[str]:
        """Invoke the dead-letter consumer as the DLQ's event source would; delete what it handled; the ids of the
        messages it left in the queue."""
        dlq_arn = self.sqs.get_queue_attributes(QueueUrl=self.resources.dlq_url, AttributeNames=["QueueArn"])
        event = {"Records": [sqs_record(message, dlq_arn["Attributes"]["QueueArn"]) for message in messages]}
        response = dead_letter_handler(event, lambda_context())
        failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
        for message in messages:
            if message["MessageId"] not in failed:
                self.sqs.delete_message(QueueUrl=self.resources.dlq_url, ReceiptHandle=message["ReceiptHandle"])
        return sorted(failed)

    def deliver(self) -> list[str]:
        """One poll of the queue and one worker invocation; the ids of the messages that failed."""
        messages = self.receive()
        assert messages, "the queue is empty"
        return self.run_worker(messages)

    def queue_depth(self, url: str) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def item(self, task_id: str) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self.dynamodb.get_item(
            TableName=self.resources.table_name, Key={"task_id": {"S": task_id}}
        ).get("Item")
        return item
