"""The payload bucket as S3 answers a role without s3:ListBucket (the functions' roles): a key that holds nothing is a
403, not a 404. Submit must then say the upload names nothing (422), and the worker that the input is gone; S3's answers
come from botocore's Stubber."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from core.adapters.memory_store import InMemoryTaskStore
from core.adapters.payloads import S3PayloadStore, StoredObject, upload_key
from core.adapters.queue import TaskMessage
from core.domain.records import TaskRecord, TaskStatus
from core.errors import InvalidInput
from core.registry import get_task
from core.services.runner import TaskRunner
from core.services.tasks import TaskService

BUCKET = "payloadbucket"
OWNER = "arn:aws:iam::123456789012:user/alice"
UPLOAD_ID = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"


class RecordingQueue:
    def __init__(self) -> None:
        self.sent: list[TaskMessage] = []

    def send(self, message: TaskMessage, delay_seconds: int = 0) -> None:
        self.sent.append(message)


@pytest.fixture
def s3() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("s3", region_name="eu-west-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


# S3's answers to a role without s3:ListBucket: HeadObject's has no body (its code is the status), GetObject's does.
DENIED = {
    "head_object": {"service_error_code": "403", "service_message": "Forbidden", "http_status_code": 403},
    "get_object": {"service_error_code": "AccessDenied", "service_message": "Access Denied", "http_status_code": 403},
}


def test_submit_naming_an_upload_s3_denies_is_a_422_naming_the_header_and_stores_nothing(
    s3: tuple[Any, Stubber],
) -> None:
    # GIVEN an upload id that names nothing in the bucket, as S3 answers it to the submit function's role
    client, stubber = s3
    key = upload_key(OWNER, UPLOAD_ID)
    stubber.add_client_error("head_object", **DENIED["head_object"], expected_params={"Bucket": BUCKET, "Key": key})
    store, queue = InMemoryTaskStore(), RecordingQueue()
    service = TaskService(store, queue, retention_days=1, payloads=S3PayloadStore(BUCKET, lambda: client))

    # WHEN a task is submitted with it
    with pytest.raises(InvalidInput) as refused:
        service.submit(get_task("describe"), None, owner=OWNER, upload_id=UPLOAD_ID)

    # THEN it is the README's 422, naming Input-Upload, and nothing was recorded or queued
    assert refused.value.status == 422
    assert [error["field"] for error in refused.value.extra["errors"]] == ["Input-Upload"]
    assert "names no upload of yours" in refused.value.detail
    assert queue.sent == []
    assert store.list_owned(OWNER, task=None, after=None, limit=10, now=time.time()).records == ()


@pytest.mark.parametrize("answer", ["denied", "missing"])
def test_a_task_whose_input_s3_no_longer_has_fails_saying_the_input_is_gone(
    s3: tuple[Any, Stubber], answer: str
) -> None:
    # GIVEN a queued task whose input is kept in the bucket, and S3 answering that it is not there
    client, stubber = s3
    key = upload_key(OWNER, UPLOAD_ID)
    error = (
        DENIED["get_object"]
        if answer == "denied"
        else {"service_error_code": "NoSuchKey", "service_message": "no key", "http_status_code": 404}
    )
    stubber.add_client_error("get_object", **error, expected_params={"Bucket": BUCKET, "Key": key})
    now = time.time()
    record = TaskRecord(
        task_id="3f2b8a51-6c1e-4d7a-9b0f-2e5c8d4a1f60",
        task="describe",
        status=TaskStatus.QUEUED,
        input_json=None,
        input_ref=key,
        created_at=now,
        expires_at=int(now) + 3600,
        owner=OWNER,
    )
    store = InMemoryTaskStore()
    store.create(record, now)
    runner = TaskRunner(store, S3PayloadStore(BUCKET, lambda: client), max_receive_count=3, lease_seconds=60)

    # WHEN the worker takes it
    runner.handle(TaskMessage(task_id=record.task_id, task="describe"), receive_count=1)

    # THEN the task failed, for good, saying its input is gone (not a retried AccessDenied ClientError)
    failed = store.get(record.task_id)
    assert failed is not None
    assert failed.status is TaskStatus.FAILED
    assert failed.error is not None
    assert failed.error.type == "InputGone"
    assert failed.error.message.startswith("the task's input is gone")


def test_the_in_memory_bucket_keeps_every_version_as_s3_does() -> None:
    from core.adapters.payloads import InMemoryPayloadStore

    payloads = InMemoryPayloadStore()
    payloads.put("uploads/a", b"[1, 1, 1]")
    first = payloads.head("uploads/a")
    payloads.put("uploads/a", b"[100, 200, 300]")

    assert first is not None
    assert payloads.get("uploads/a") == b"[100, 200, 300]"
    assert payloads.get("uploads/a", first.version) == b"[1, 1, 1]"
    assert payloads.head("uploads/a", first.version) == first
    assert payloads.get("uploads/a", "no-such-version") is None


def test_s3_reads_and_heads_the_version_asked_for(s3: tuple[Any, Stubber]) -> None:
    client, stubber = s3
    key, version = upload_key(OWNER, UPLOAD_ID), "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"
    where = {"Bucket": BUCKET, "Key": key, "VersionId": version}
    stubber.add_response("head_object", {"ContentLength": 9, "VersionId": version}, expected_params=where)
    stubber.add_client_error("get_object", **DENIED["get_object"], expected_params=where)
    payloads = S3PayloadStore(BUCKET, lambda: client)

    assert payloads.head(key, version) == StoredObject(9, version)
    assert payloads.get(key, version) is None  # a version gone (its task expired) reads as absent
