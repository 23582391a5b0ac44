"""The largest input a task can take follows the worker's memory (WorkerMemorySize): a larger one would end every
delivery out of memory and the task GaveUp, so it is refused before it is accepted (core.adapters.payloads.InputLimit)."""

from __future__ import annotations

import json

import pytest

from core.adapters.memory_store import InMemoryTaskStore
from core.adapters.payloads import MAX_UPLOAD_BYTES, InMemoryPayloadStore, InputLimit, upload_key
from core.adapters.queue import TaskMessage
from core.errors import PayloadTooLarge
from core.registry import get_task
from core.services.tasks import TaskService

OWNER = "arn:aws:iam::123456789012:user/alice"


class RecordingQueue:
    def __init__(self) -> None:
        self.sent: list[TaskMessage] = []

    def send(self, message: TaskMessage, delay_seconds: int = 0) -> None:
        self.sent.append(message)


def _service(worker_memory_mb: int) -> tuple[TaskService, InMemoryPayloadStore, RecordingQueue]:
    payloads, queue = InMemoryPayloadStore(), RecordingQueue()
    service = TaskService(
        InMemoryTaskStore(), queue, retention_days=1, payloads=payloads, input_limit=InputLimit(worker_memory_mb)
    )
    return service, payloads, queue


@pytest.mark.parametrize(
    ("memory_mb", "most"),
    [(128, 889_700), (512, 13_091_312), (1769, 53_032_525), (10_240, 322_198_807)],
)
def test_the_largest_input_grows_with_the_workers_memory_as_measured(memory_mb: int, most: int) -> None:
    # (memory - 100 MB of the worker's own) / 33 bytes of memory per byte of input (docs/performance.md)
    assert InputLimit(memory_mb).max_bytes == most
    assert most < MAX_UPLOAD_BYTES


def test_an_inline_input_larger_than_a_small_worker_takes_is_a_413_and_nothing_is_queued() -> None:
    # GIVEN a worker of 128 MB, which takes inputs of ≈ 870 KB
    service, _, queue = _service(128)
    values = list(range(200_000))  # ≈ 1.3 MB of JSON: under the 4 MiB a request carries
    assert len(json.dumps({"values": values})) > InputLimit(128).max_bytes

    # WHEN it is submitted inline
    with pytest.raises(PayloadTooLarge) as refused:
        service.submit(get_task("describe"), {"values": values}, owner=OWNER)

    # THEN the refusal says why and what would do
    assert f"up to {InputLimit(128).max_bytes} bytes" in refused.value.detail
    assert "WorkerMemorySize" in refused.value.detail
    assert queue.sent == []


def test_an_upload_larger_than_the_worker_now_takes_is_a_413_naming_the_header() -> None:
    # GIVEN an upload made while the worker had more memory than it has now
    service, payloads, queue = _service(128)
    upload_id = service.create_upload(OWNER).upload_id
    payloads.put(upload_key(OWNER, upload_id), b" " * (InputLimit(128).max_bytes + 1))

    with pytest.raises(PayloadTooLarge) as refused:
        service.submit(get_task("describe"), None, owner=OWNER, upload_id=upload_id)

    assert refused.value.extra["errors"][0]["field"] == "Input-Upload"
    assert queue.sent == []


def test_an_upload_form_without_a_size_allows_what_the_worker_takes() -> None:
    service, _, _ = _service(256)

    upload = service.create_upload(OWNER)

    assert upload.max_bytes == InputLimit(256).max_bytes
    assert upload.form.fields["max_bytes"] == str(InputLimit(256).max_bytes)
