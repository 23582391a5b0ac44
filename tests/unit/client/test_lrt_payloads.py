"""The client chooses the path of an input itself (inline, or uploaded straight to the payload bucket) and follows a
large result's download link, never with its own credentials."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lrt import TaskClient
from lrt.auth import BearerAuth
from lrt.cli import main
from lrt.errors import ApiError
from tests.unit.client.fakeapi import TASK_ID, FakeApi, FakeTime, Reply, task_reply

UPLOAD_ID = "5f0c6a3e-1d2b-4c3d-9e8f-0a1b2c3d4e5f"


def _script_upload(api: FakeApi) -> None:
    form = {
        "upload_id": UPLOAD_ID,
        "url": f"{api.base_url}/bucket",
        "fields": {"key": f"uploads/owner/{UPLOAD_ID}", "policy": "cG9saWN5", "x-amz-signature": "sig"},
        "expires_at": "2026-12-02T19:00:00.000Z",
        "max_bytes": 1024**3,
        "header": "Input-Upload",
    }
    api.script("POST", "/uploads", Reply(201, form))
    api.script("POST", "/bucket", Reply(204))
    api.script("POST", "/describe", task_reply("queued", task="describe"))


def _client(api: FakeApi, fake_time: FakeTime, **options: object) -> TaskClient:
    return TaskClient(
        api.base_url,
        sleep=fake_time.sleep,
        clock=fake_time.clock,
        rand=lambda: 0.0,
        **options,  # type: ignore[arg-type]
    )


def test_a_small_input_goes_in_the_request(api: FakeApi, fake_time: FakeTime) -> None:
    api.script("POST", "/describe", task_reply("queued", task="describe"))

    _client(api, fake_time).submit("describe", values=[1, 2, 3])

    (seen,) = api.requests
    assert seen.json() == {"values": [1, 2, 3]}
    assert "input-upload" not in seen.headers


def test_a_large_input_is_uploaded_then_submitted_by_reference(api: FakeApi, fake_time: FakeTime) -> None:
    # GIVEN inputs larger than the client sends inline
    _script_upload(api)
    values = list(range(50_000))

    # WHEN it submits them, with a bearer token for the API
    task = _client(api, fake_time, upload_above=100_000, auth=BearerAuth("secret-token")).submit(
        "describe", values=values
    )

    # THEN it asks for a form, posts the JSON to the bucket with the form's fields and no credentials of its own, and
    # submits the task naming the upload, with an empty body
    assert task.task_id == TASK_ID
    form_request, upload, submit = api.requests
    assert (form_request.method, form_request.path) == ("POST", "/uploads")
    assert form_request.headers["authorization"] == "Bearer secret-token"
    # the form is asked for the file's size, declared as JSON
    assert form_request.headers["content-type"] == "application/json"
    assert form_request.json() == {"bytes": len(json.dumps({"values": values}, separators=(",", ":")))}
    assert (upload.method, upload.path) == ("POST", "/bucket")
    assert "authorization" not in upload.headers
    assert upload.headers["content-type"].startswith("multipart/form-data")
    assert f"uploads/owner/{UPLOAD_ID}".encode() in upload.body
    assert json.dumps({"values": values}, separators=(",", ":")).encode() in upload.body
    assert (submit.method, submit.path, submit.body) == ("POST", "/describe", b"")
    assert submit.headers["input-upload"] == UPLOAD_ID


def test_an_input_file_over_the_limit_is_uploaded_from_the_file(
    api: FakeApi, fake_time: FakeTime, tmp_path: Path
) -> None:
    _script_upload(api)
    data = tmp_path / "data.json"
    data.write_text(json.dumps({"values": list(range(5_000))}))

    _client(api, fake_time, upload_above=1_000).submit("describe", input_file=data)

    assert [(seen.method, seen.path) for seen in api.requests] == [
        ("POST", "/uploads"),
        ("POST", "/bucket"),
        ("POST", "/describe"),
    ]
    assert api.requests[0].json() == {"bytes": data.stat().st_size}
    assert data.read_bytes() in api.requests[1].body


def test_an_input_larger_than_the_api_takes_is_refused_before_it_is_sent(api: FakeApi, fake_time: FakeTime) -> None:
    # GIVEN an API whose tasks take inputs of 1000 bytes at most
    refusal = {
        "type": "about:blank",
        "title": "Payload too large",
        "status": 413,
        "detail": "an input of 5000 bytes is more than a task can take",
        "max_bytes": 1000,
    }
    api.script("POST", "/uploads", Reply(413, refusal, {"Content-Type": "application/problem+json"}))

    # WHEN the client uploads more
    with pytest.raises(ApiError) as refused:
        _client(api, fake_time).upload(b"x" * 5000)

    # THEN the API's reason reaches the caller, and nothing went to the bucket
    assert refused.value.status == 413
    assert "more than a task can take" in str(refused.value)
    assert [(seen.method, seen.path) for seen in api.requests] == [("POST", "/uploads")]


def test_wait_downloads_a_large_result_from_its_link_without_credentials(api: FakeApi, fake_time: FakeTime) -> None:
    # GIVEN a finished task whose result is kept apart
    link = f"{api.base_url}/results/{TASK_ID}?X-Amz-Signature=abc"
    api.script("GET", f"/describe/{TASK_ID}", task_reply("succeeded", task="describe", result_url=link, result_bytes=9))
    api.script("GET", f"/results/{TASK_ID}?X-Amz-Signature=abc", Reply(200, {"count": 2}))

    # WHEN a client with a token waits for it
    done = _client(api, fake_time, auth=BearerAuth("secret-token")).wait("describe", TASK_ID)

    # THEN the result is there, fetched from the link alone
    assert done.result == {"count": 2}
    assert done.result_url == link
    assert "authorization" not in api.requests[-1].headers


def test_result_follows_the_303_without_credentials(api: FakeApi, fake_time: FakeTime) -> None:
    link = f"{api.base_url}/results/{TASK_ID}?X-Amz-Signature=abc"
    api.script("GET", f"/describe/{TASK_ID}/result", Reply(303, None, {"Location": link}))
    api.script("GET", f"/results/{TASK_ID}?X-Amz-Signature=abc", Reply(200, [1, 2, 3]))

    assert _client(api, fake_time, auth=BearerAuth("secret-token")).result("describe", TASK_ID) == [1, 2, 3]
    assert "authorization" not in api.requests[-1].headers


def test_lrt_run_takes_its_inputs_from_a_file(api: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    api.script("POST", "/describe", task_reply("queued", task="describe"))
    api.script("GET", f"/describe/{TASK_ID}", task_reply("succeeded", task="describe", result={"count": 3}))
    data = tmp_path / "data.json"
    data.write_text('{"values": [1, 2, 3]}')

    code = main(["--url", api.base_url, "run", "describe", "--input-file", str(data)], sleep=lambda seconds: None)

    assert code == 0
    assert json.loads(capsys.readouterr().out) == {"count": 3}
    assert api.requests[0].json() == {"values": [1, 2, 3]}


def test_lrt_refuses_inputs_both_in_a_file_and_as_arguments(api: FakeApi, tmp_path: Path) -> None:
    data = tmp_path / "data.json"
    data.write_text("{}")

    assert main(["--url", api.base_url, "submit", "describe", "x=1", "--input-file", str(data)]) == 64
    assert main(["--url", api.base_url, "submit", "describe", "--input-file", str(tmp_path / "none.json")]) == 64
    assert api.requests == []
