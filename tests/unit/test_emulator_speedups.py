"""devstack's emulator speeds up some of moto's hot paths (devstack.emulator._speed_up_moto): moto must answer the
stack's calls exactly as it does without them, errors included. Both run in processes of their own, so that this
test process's moto (the other tests' mock_aws) is never patched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from devstack.emulator import MotoProcess, _moto_source_is
from devstack.resources import create_resources

ROOT = Path(__file__).resolve().parents[2]
NOW = 1_700_000_000.0
_PLAIN_MOTO = textwrap.dedent(
    """
    import sys
    from moto.server import ThreadedMotoServer
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(server.get_host_and_port()[1], flush=True)
    sys.stdin.read()
    server.stop()
    """
)


@pytest.fixture(scope="module")
def endpoints() -> Iterator[tuple[str, str]]:
    """(moto's own server, devstack's emulator): each a fresh account in a process of its own."""
    plain = subprocess.Popen(
        [sys.executable, "-c", _PLAIN_MOTO], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert plain.stdout is not None
        port = int(plain.stdout.readline())
        with MotoProcess() as moto:
            yield f"http://127.0.0.1:{port}", moto.endpoint_url
    finally:
        if plain.stdin is not None:
            plain.stdin.close()
        try:
            plain.wait(timeout=10)
        except subprocess.TimeoutExpired:
            plain.kill()
            plain.wait()


def _answer(call: Callable[..., Any], **request: Any) -> Any:
    try:
        response = call(**request)
    except ClientError as error:
        answer = dict(error.response)
        answer.pop("ResponseMetadata", None)
        return ("error", answer)
    response.pop("ResponseMetadata", None)
    return ("ok", response)


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: float) -> dict[str, str]:
    return {"N": repr(value) if isinstance(value, float) else str(value)}


def _dynamodb_answers(endpoint_url: str) -> list[Any]:
    table = create_resources(endpoint_url).table_name
    client = boto3.client(
        "dynamodb", endpoint_url=endpoint_url, region_name="us-east-1", config=Config(retries={"max_attempts": 1})
    )
    names = {"#status": "status"}
    answers: list[Any] = []

    def put(
        task_id: str, now: float, condition: str = "attribute_not_exists(task_id) OR expires_at <= :now", **extra: Any
    ) -> None:
        item = {
            "task_id": _s(task_id),
            "task": _s("multiply"),
            "status": _s("queued"),
            "input": _s('{"a": 1}'),
            "created_at": _n(NOW),
            "expires_at": _n(int(NOW) + 3600),
            "attempts": _n(0),
            "retry_after": _n(1),
            "tags": {"L": [_s("x")]},
            "meta": {"M": {"depth": _n(1), "labels": {"SS": ["a", "b"]}}},
        }
        answers.append(
            _answer(
                client.put_item,
                TableName=table,
                Item=item,
                ConditionExpression=condition,
                ExpressionAttributeValues={":now": _n(now)},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **extra,
            )
        )

    def update(task_id: str, expression: str, condition: str | None, values: dict[str, Any], **extra: Any) -> None:
        request: dict[str, Any] = {
            "TableName": table,
            "Key": {"task_id": _s(task_id)},
            "UpdateExpression": expression,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ReturnValues": "ALL_NEW",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if condition is not None:
            request["ConditionExpression"] = condition
        request.update(extra)
        answers.append(_answer(client.update_item, **request))

    claim = (
        "SET #status = :running, started_at = if_not_exists(started_at, :now), lease_until = :lease, "
        "attempts = if_not_exists(attempts, :zero) + :one, last_attempt = :last"
    )
    claim_condition = (
        "attribute_exists(task_id) AND expires_at > :now AND "
        "(#status = :queued OR (#status = :running AND lease_until < :now))"
    )
    claim_values = {
        ":running": _s("running"),
        ":queued": _s("queued"),
        ":now": _n(NOW),
        ":lease": _n(NOW + 60),
        ":zero": _n(0),
        ":one": _n(1),
        ":last": {"BOOL": False},
    }
    unchanged = "#status = :expected_status AND attempts = :expected_attempts"
    finish = (
        "SET #status = :outcome, finished_at = :now, started_at = if_not_exists(started_at, :started), "
        "progress = :done, #result = :result REMOVE lease_until"
    )
    finish_values = {
        ":expected_status": _s("running"),
        ":expected_attempts": _n(1),
        ":outcome": _s("succeeded"),
        ":now": _n(NOW + 5),
        ":started": _n(NOW),
        ":done": _n(1),
        ":result": _s('{"product": 2}'),
    }
    for task_id in ("t1", "t2"):  # the second time from the caches of parsed and validated expressions
        put(task_id, NOW)
        put(task_id, NOW)  # ConditionalCheckFailedException, with the item
        put(task_id, NOW + 7200)  # the same condition with another value: the item has expired
        # A condition that leaves a given name unused (moto answers a 500, not a ValidationException, to one that does
        # not parse or names what is not given); a condition on a map and a list.
        put(task_id, NOW, condition="attribute_exists(task_id)", ExpressionAttributeNames={"#unused": "status"})
        put(task_id, NOW, "attribute_exists(meta.labels) AND size(tags) < :now")
        key = {"task_id": _s(task_id)}
        answers.append(_answer(client.get_item, TableName=table, Key=key))
        update(task_id, claim, claim_condition, claim_values)
        update(task_id, claim, claim_condition, claim_values)  # refused: leased
        update(
            task_id,
            "SET progress = :progress",
            unchanged,
            {":expected_status": _s("running"), ":expected_attempts": _n(1), ":progress": _n(0.5)},
        )
        update(task_id, finish, unchanged, finish_values, ExpressionAttributeNames={**names, "#result": "result"})
        update(task_id, finish, unchanged, finish_values, ExpressionAttributeNames={**names, "#result": "result"})
        update(
            task_id,
            "SET #status = :cancelled, finished_at = :now REMOVE lease_until",
            "attribute_exists(task_id) AND expires_at > :now AND #status IN (:queued, :running)",
            {":cancelled": _s("cancelled"), ":queued": _s("queued"), ":running": _s("running"), ":now": _n(NOW)},
        )
        # No such item: refused without an item; or created by the update.
        update(f"{task_id}-absent", "SET #status = :s", "attribute_exists(task_id)", {":s": _s("queued")})
        update(f"{task_id}-new", "SET #status = :s, n = :one", None, {":s": _s("queued"), ":one": _n(1)})
        # Paths, functions, arithmetic, lists and maps.
        update(
            task_id,
            "SET tags = list_append(tags, :more), meta.depth = meta.depth + :one, attempts = attempts - :one "
            "REMOVE tags[0], meta.labels",
            None,
            {":more": {"L": [_s("y")]}, ":one": _n(1)},
        )
        update(task_id, "ADD counter :one DELETE labels :gone", None, {":one": _n(1), ":gone": {"SS": ["z"]}})
        # Validation errors, from every pass of the validator.
        update(task_id, "SET a = :one SET b = :one", None, {":one": _n(1)})  # two SET clauses
        update(task_id, "SET a = :one, a = :one", None, {":one": _n(1)})  # overlapping paths
        update(
            task_id,
            "SET #status = :one, #s = :one",
            None,
            {":one": _n(1)},
            ExpressionAttributeNames={
                "#status": "status",
                "#s": "status",
            },
        )
        update(task_id, "SET task_id = :one", None, {":one": _s("other")})  # the table's key
        update(task_id, "SET #k = :one", None, {":one": _s("v")}, ExpressionAttributeNames={"#k": "plain"})
        # The same expression, now naming the key: refused, whatever passed before with other names.
        update(task_id, "SET #k = :one", None, {":one": _s("v")}, ExpressionAttributeNames={"#k": "task_id"})
        update(task_id, "SET a = :missing", None, {":one": _n(1)})  # undefined and unused values
        update(task_id, "SET a = #missing", None, {":one": _n(1)})
        update(task_id, "SET a = nothing_here + :one", None, {":one": _n(1)})  # no such attribute
        update(task_id, "SET a = list_append(#status, :one)", None, {":one": _n(1)})
        update(task_id, "SET a = :one + :text", None, {":one": _n(1), ":text": _s("x")})
        update(task_id, "SET meta.nowhere.deeper = :one", None, {":one": _n(1)})
        update(task_id, "SET size = :one", None, {":one": _n(1)})  # a reserved word
        update(task_id, "SET a = :one, ", None, {":one": _n(1)})  # does not parse
        answers.append(
            _answer(
                client.delete_item,
                TableName=table,
                Key=key,
                ConditionExpression="#status = :queued",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={":queued": _s("queued")},
            )
        )
    answers.append(sorted(client.scan(TableName=table)["Items"], key=lambda item: item["task_id"]["S"]))
    return answers


def test_dynamodb_answers_as_moto_does(endpoints: tuple[str, str]) -> None:
    plain, devstack = endpoints
    expected = _dynamodb_answers(plain)
    assert [kind for kind, _ in expected[:-1]].count("error") >= 20  # the errors are exercised too
    assert _dynamodb_answers(devstack) == expected


_GENERATED = ("MessageId", "ReceiptHandle", "SequenceNumber")
_TIMES = ("SentTimestamp", "ApproximateFirstReceiveTimestamp", "CreatedTimestamp", "LastModifiedTimestamp")


def _stable(value: Any) -> Any:
    """Ids and handles are random, timestamps the clock's: their shapes, not their values."""
    if isinstance(value, dict):
        stable: dict[str, Any] = {}
        for key, item in value.items():
            if key in _GENERATED and isinstance(item, str):
                stable[key] = (len(item), item.isalnum() or "-" in item)
            elif key in _TIMES:
                stable[key] = isinstance(item, str) and item.isdigit()
            else:
                stable[key] = _stable(item)
        return stable
    if isinstance(value, list | tuple):
        return [_stable(item) for item in value]
    return value


def _sqs_answers(endpoint_url: str) -> list[Any]:
    resources = create_resources(endpoint_url)
    client = boto3.client("sqs", endpoint_url=endpoint_url, region_name="us-east-1")
    queue_url = resources.queue_url
    answers: list[Any] = []
    for task_id in ("t0", "t1", "t2"):
        body = json.dumps({"task_id": task_id, "task": "multiply"}, separators=(",", ":"))
        attributes: Any = {"task_id": {"DataType": "String", "StringValue": task_id}}
        answers.append(_answer(client.send_message, QueueUrl=queue_url, MessageBody=body, MessageAttributes=attributes))
    answers.append(_answer(client.send_message, QueueUrl=queue_url, MessageBody="later", DelaySeconds=600))
    answers.append(_answer(client.send_message, QueueUrl=queue_url, MessageBody="x", DelaySeconds=901))
    answers.append(_answer(client.send_message, QueueUrl=queue_url, MessageBody="x" * 262_145))
    answers.append(
        _answer(
            client.send_message_batch,
            QueueUrl=queue_url,
            Entries=[{"Id": "a", "MessageBody": "batch a"}, {"Id": "b", "MessageBody": "batch b"}],
        )
    )
    received = client.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=10,
        WaitTimeSeconds=0,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    )
    messages = sorted(received.get("Messages", []), key=lambda message: message["Body"])
    answers.append(_stable(messages))
    assert all(len(message["ReceiptHandle"]) == 185 for message in messages)
    answers.append(
        _answer(
            client.get_queue_attributes,
            QueueUrl=queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )
    )
    entries: Any = [{"Id": str(n), "ReceiptHandle": message["ReceiptHandle"]} for n, message in enumerate(messages)]
    entries.append({"Id": "bogus", "ReceiptHandle": "not-a-handle"})
    deleted: Any = client.delete_message_batch(QueueUrl=queue_url, Entries=entries)
    deleted.pop("ResponseMetadata")
    answers.append(deleted)
    fifo = client.create_queue(
        QueueName="speedups.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    )["QueueUrl"]
    for _ in range(2):  # the second one deduplicated
        answers.append(_stable(_answer(client.send_message, QueueUrl=fifo, MessageBody="f", MessageGroupId="g")))
    answers.append(_answer(client.send_message, QueueUrl=fifo, MessageBody="f"))  # no group
    answers.append(_stable(client.receive_message(QueueUrl=fifo, MaxNumberOfMessages=10).get("Messages")))
    return answers


def test_sqs_answers_as_moto_does(endpoints: tuple[str, str]) -> None:
    plain, devstack = endpoints
    assert _stable(_sqs_answers(devstack)) == _stable(_sqs_answers(plain))


_SEEDED = textwrap.dedent(
    """
    import json
    from moto.moto_api._internal import mock_random
    from moto.sqs import models, utils

    def draws():
        mock_random.seed(20240601)
        strings = [utils.generate_receipt_handle() for _ in range(20)]
        strings += [models.generate_receipt_handle() for _ in range(5)]
        strings += [mock_random.get_random_string(length=n) for n in (0, 1, 20, 52)]
        strings += [mock_random.get_random_string(length=30, include_digits=False, lower_case=True)]
        strings.append(repr(mock_random.random()))  # the generator is left where moto's draws leave it
        return strings

    before = draws()
    from devstack.emulator import _speed_up_moto
    _speed_up_moto()
    print(json.dumps([before, draws()]))
    """
)


def test_random_strings_are_moto_draws() -> None:
    """The same strings as moto's from the same seed (moto's state can be seeded through its API)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "functions"), str(ROOT)])}
    output = subprocess.run(
        [sys.executable, "-c", _SEEDED], capture_output=True, text=True, check=True, cwd=ROOT, env=env
    ).stdout
    moto_draws, devstack_draws = json.loads(output)
    assert len(moto_draws[0]) == 185
    assert devstack_draws == moto_draws


def test_a_changed_moto_function_stops_the_emulator() -> None:
    with pytest.raises(RuntimeError, match="changed"):
        _moto_source_is(_answer, "0" * 64)


def test_json_requests_skip_flask_with_the_same_headers(endpoints: tuple[str, str]) -> None:
    """DynamoDB and SQS calls reach their handler without Flask in devstack's emulator: the same response headers
    (values that change per request aside) as through moto's Flask app."""

    def headers(endpoint_url: str) -> list[dict[str, str]]:
        create_resources(endpoint_url)
        dynamodb = boto3.client("dynamodb", endpoint_url=endpoint_url, region_name="us-east-1")
        sqs = boto3.client("sqs", endpoint_url=endpoint_url, region_name="us-east-1")
        answers = [
            dynamodb.get_item(TableName="TasksTable", Key={"task_id": _s("none")}),
            sqs.list_queues(),
        ]
        try:
            dynamodb.get_item(TableName="NoSuchTable", Key={"task_id": _s("none")})
        except ClientError as error:
            answers.append(error.response)
        # Per request: the id and date. Per HTTP server (werkzeug's development server against devstack.wsgi):
        # the connection's fate, and werkzeug's name before the app's "amazon.com" in Server.
        varying = ("x-amzn-requestid", "date", "connection")
        return [
            {
                name: value.rpartition(", ")[2] if name == "server" else value
                for name, value in answer["ResponseMetadata"]["HTTPHeaders"].items()
                if name not in varying
            }
            for answer in answers
        ]

    plain, devstack = endpoints
    assert headers(devstack) == headers(plain)
