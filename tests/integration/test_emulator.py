"""devstack.emulator: moto's server application as the local stack serves it, with its two layers: DynamoDB requests
atomic, as DynamoDB's are (a correction of moto), and every request counted by operation."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests

from devstack.emulator import moto_app, request_counts
from devstack.serving import ThreadedServer

ATTRIBUTES = [f"a{n}" for n in range(40)]


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadedServer(moto_app(), "127.0.0.1", 0).start()
    try:
        yield server.url
    finally:
        server.stop()


def _dynamodb(endpoint: str) -> Any:
    return boto3.client(
        "dynamodb", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s"
    )


def test_a_read_never_sees_half_of_an_update(endpoint: str) -> None:
    # GIVEN an item whose forty attributes an UpdateItem sets together, over and over (moto applies SET actions one
    # by one: without the lock, a GetItem between two of them sees some attributes old and some new)
    dynamodb = _dynamodb(endpoint)
    dynamodb.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    key = {"k": {"S": "item"}}
    names = {f"#{name}": name for name in ATTRIBUTES}
    expression = "SET " + ", ".join(f"#{name} = :v" for name in ATTRIBUTES)
    writing = threading.Event()
    writing.set()

    def write() -> None:
        writer = _dynamodb(endpoint)
        n = 0
        while writing.is_set():
            n += 1
            writer.update_item(
                TableName="t",
                Key=key,
                UpdateExpression=expression,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={":v": {"N": str(n)}},
            )

    writers = [threading.Thread(target=write) for _ in range(2)]
    for thread in writers:
        thread.start()
    try:
        # WHEN it is read while the updates go on
        seen = []
        for _ in range(100):
            item = dynamodb.get_item(TableName="t", Key=key).get("Item", {})
            seen.append({item[name]["N"] for name in ATTRIBUTES if name in item})
    finally:
        writing.clear()
        for thread in writers:
            thread.join()

    # THEN every read saw one update whole
    assert all(len(values) <= 1 for values in seen), [values for values in seen if len(values) > 1][:3]
    assert any(seen)


def test_requests_are_counted_by_service_and_operation(endpoint: str) -> None:
    # GIVEN the emulator's counts so far
    before = request_counts(endpoint)
    sqs = boto3.client(
        "sqs", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s"
    )

    # WHEN a queue is made, sent two messages and received from
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    for body in ("a", "b"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)

    # THEN each request is counted under its operation
    assert request_counts(endpoint) - before == {"sqs.CreateQueue": 1, "sqs.SendMessage": 2, "sqs.ReceiveMessage": 1}


def test_s3_requests_are_counted_as_s3_prices_them(endpoint: str) -> None:
    s3 = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s"
    )
    s3.create_bucket(Bucket="counted")
    before = request_counts(endpoint)

    s3.put_object(Bucket="counted", Key="a/b", Body=b"x")
    s3.head_object(Bucket="counted", Key="a/b")
    s3.get_object(Bucket="counted", Key="a/b")["Body"].read()
    form = s3.generate_presigned_post("counted", "c")
    assert requests.post(form["url"], data=form["fields"], files={"file": b"y"}, timeout=10).ok

    assert request_counts(endpoint) - before == {
        "s3.PutObject": 1,
        "s3.HeadObject": 1,
        "s3.GetObject": 1,
        "s3.PostObject": 1,
    }
