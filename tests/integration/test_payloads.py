"""Inputs and results of any size: what does not fit the task's record goes to the payload bucket (claim check), and
inputs too large for a request are uploaded there by the caller, never passing through Lambda."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from core.adapters.payloads import INLINE_INPUT_MAX_BYTES, INLINE_RESULT_MAX_BYTES, RESULT_URL_SECONDS, InputLimit
from result.app import lambda_handler as result_handler
from tests.support.driver import Driver, HttpResponse, iam_caller
from tests.support.events import http_event, lambda_context

ALICE = iam_caller("arn:aws:iam::123456789012:user/alice")
BOB = iam_caller("arn:aws:iam::123456789012:user/bob")


def _object_key(url: str, bucket: str) -> str:
    """The key a presigned download link names: virtual-hosted (AWS) or path-style (the local emulator)."""
    parts = urlsplit(url)
    if parts.hostname and parts.hostname.startswith(f"{bucket}."):
        return parts.path.removeprefix("/")
    assert parts.path.startswith(f"/{bucket}/"), url
    return parts.path.removeprefix(f"/{bucket}/")


def _uploaded(driver: Driver, data: bytes, caller: dict[str, Any] | None = None) -> str:
    created = driver.create_upload(caller=caller)
    assert created.status == 201, created.body
    driver.upload(created.body, data)
    return str(created.body["upload_id"])


def test_a_small_result_stays_inline_as_the_original_client_expects(driver: Driver) -> None:
    task_id = driver.submit("multiply", {"x": 6, "y": 7}).body["task_id"]
    driver.deliver()

    done = driver.get("multiply", task_id).body
    assert done["result"] == 42
    assert "result_url" not in done
    assert json.loads(driver.result("multiply", task_id)["body"]) == 42
    assert driver.s3.list_objects_v2(Bucket=driver.resources.payload_bucket).get("KeyCount") == 0


def test_a_result_too_large_for_the_record_is_kept_in_the_bucket_and_linked(driver: Driver) -> None:
    # GIVEN a task whose result is well over what the record keeps
    size = 400_000
    task_id = driver.submit("huge-result", {"size": size}).body["task_id"]

    # WHEN it runs
    driver.deliver()

    # THEN GET shows where to download it, not the result itself, and the record holds a key, not the result
    done = driver.get("huge-result", task_id).body
    assert done["status"] == "succeeded"
    assert "result" not in done
    assert done["result_bytes"] == size + 2
    item = driver.item(task_id)
    assert item is not None
    assert "result" not in item
    key = _object_key(done["result_url"], driver.resources.payload_bucket)
    assert item["result_ref"]["S"] == key
    stored = driver.s3.get_object(Bucket=driver.resources.payload_bucket, Key=key)["Body"].read()
    assert json.loads(stored) == "x" * size
    assert f"X-Amz-Expires={RESULT_URL_SECONDS}" in done["result_url"]
    # AND /result answers 303 See Other to such a link
    see_other = driver.result("huge-result", task_id)
    assert see_other["statusCode"] == 303
    assert _object_key(see_other["headers"]["Location"], driver.resources.payload_bucket) == key


def test_results_just_over_and_under_the_inline_limit(driver: Driver) -> None:
    under = driver.submit("huge-result", {"size": INLINE_RESULT_MAX_BYTES - 2}).body["task_id"]
    over = driver.submit("huge-result", {"size": INLINE_RESULT_MAX_BYTES - 1}).body["task_id"]
    driver.deliver()

    assert "result" in driver.get("huge-result", under).body
    assert "result_url" in driver.get("huge-result", over).body


def test_an_inline_input_too_large_for_the_record_is_kept_in_the_bucket(driver: Driver) -> None:
    # GIVEN an inline body over what the record keeps
    values = list(range(2_000))
    task_id = driver.submit("describe", {"values": values}).body["task_id"]

    # THEN the record holds the key of the stored input, and the worker runs the task on it
    item = driver.item(task_id)
    assert item is not None
    assert "input" not in item
    stored = driver.s3.get_object(Bucket=driver.resources.payload_bucket, Key=item["input_ref"]["S"])
    assert json.loads(stored["Body"].read()) == {"values": values}
    assert len(json.dumps({"values": values})) > INLINE_INPUT_MAX_BYTES
    driver.deliver()
    assert driver.get("describe", task_id).body["result"]["count"] == 2_000


def test_an_uploaded_input_runs_the_task(driver: Driver) -> None:
    upload_id = _uploaded(driver, json.dumps({"values": [1, 2, 3, 4]}).encode(), ALICE)

    accepted = driver.submit("describe", None, {"Input-Upload": upload_id}, caller=ALICE)

    assert accepted.status == 202, accepted.body
    driver.deliver()
    done = driver.get("describe", accepted.body["task_id"], caller=ALICE).body
    assert done["result"]["mean"] == 2.5


def test_an_upload_form_is_for_its_caller_alone(driver: Driver) -> None:
    # GIVEN alice's upload
    upload_id = _uploaded(driver, json.dumps({"values": [1]}).encode(), ALICE)

    # WHEN bob names it
    refused = driver.submit("describe", None, {"Input-Upload": upload_id}, caller=BOB)

    # THEN it is no upload of his: a 422 naming the header, exactly as an id nobody uploaded
    never = driver.submit("describe", None, {"Input-Upload": "1b4e28ba-2fa1-11d2-883f-0016d3cca427"}, caller=BOB)
    for answer in (refused, never):
        assert answer.status == 422
        assert [error["field"] for error in answer.body["errors"]] == ["Input-Upload"]
    assert refused.body["errors"] == never.body["errors"]


def _policy_range(form: dict[str, Any]) -> list[Any]:
    policy = json.loads(base64.b64decode(form["fields"]["policy"]))
    (limits,) = [c for c in policy["conditions"] if isinstance(c, list) and c[0] == "content-length-range"]
    return list(limits)


def test_an_upload_form_without_a_size_allows_what_the_workers_memory_can_take(driver: Driver) -> None:
    # GIVEN the template's WorkerMemorySize (512 MB), as the tests' environment gives it
    most = InputLimit(512).max_bytes
    assert 12 * 1024**2 < most < 13 * 1024**2

    # WHEN an old client asks for a form without declaring a size
    created = driver.create_upload(caller=ALICE).body

    # THEN S3 will refuse a file larger than a task can take
    assert _policy_range(created) == ["content-length-range", 1, most]
    assert created["max_bytes"] == most
    assert created["fields"]["key"].endswith(created["upload_id"])
    assert created["header"] == "Input-Upload"


def test_an_upload_form_allows_the_size_declared(driver: Driver) -> None:
    created = driver.create_upload(caller=ALICE, body={"bytes": 5000})

    assert created.status == 201, created.body
    assert _policy_range(created.body) == ["content-length-range", 1, 5000]
    assert created.body["max_bytes"] == 5000


def test_a_declared_size_larger_than_a_task_can_take_is_a_413_that_says_why(driver: Driver) -> None:
    most = InputLimit(512).max_bytes

    refused = driver.create_upload(caller=ALICE, body={"bytes": most + 1})

    assert refused.status == 413
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert f"up to {most} bytes" in refused.body["detail"]
    assert "WorkerMemorySize" in refused.body["detail"]
    assert refused.body["max_bytes"] == most
    assert driver.create_upload(caller=ALICE, body={"bytes": most}).status == 201


@pytest.mark.parametrize(
    ("body", "status", "fields"),
    [
        pytest.param({"bytes": 0}, 422, ["bytes"], id="zero"),
        pytest.param({"bytes": -5}, 422, ["bytes"], id="negative"),
        pytest.param({"bytes": "100"}, 422, ["bytes"], id="a string"),
        pytest.param({"bytes": True}, 422, ["bytes"], id="a boolean"),
        pytest.param({"bytes": 10.5}, 422, ["bytes"], id="a fraction"),
        pytest.param({"size": 100}, 422, ["bytes", "size"], id="another name"),
        pytest.param({"bytes": 100, "name": "x"}, 422, ["name"], id="an unknown field"),
        pytest.param([100], 400, None, id="not an object"),
        pytest.param("null", 400, None, id="null"),
        pytest.param("\n", 400, None, id="blank"),
    ],
)
def test_a_bad_upload_request_is_refused(driver: Driver, body: Any, status: int, fields: list[str] | None) -> None:
    refused = driver.create_upload(caller=ALICE, body=body)

    assert refused.status == status, refused.body
    if fields is not None:
        assert [error["field"] for error in refused.body["errors"]] == fields


def test_a_declared_size_may_be_written_as_a_whole_float(driver: Driver) -> None:
    assert driver.create_upload(caller=ALICE, body={"bytes": 5000.0}).body["max_bytes"] == 5000


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        pytest.param({"Input-Upload": "not-an-id"}, None, 422, id="not an upload id"),
        pytest.param({"Input-Upload": "1b4e28ba-2fa1-11d2-883f-0016d3cca427"}, {"values": [1]}, 400, id="and a body"),
    ],
)
def test_a_bad_upload_reference_is_refused_and_stores_nothing(
    driver: Driver, headers: dict[str, str], body: Any, status: int
) -> None:
    refused = driver.submit("describe", body, headers)

    assert refused.status == status
    assert driver.queue_depth(driver.resources.queue_url) == 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"{not json", "not valid JSON", id="not JSON"),
        pytest.param(b"[1, 2]", "a JSON object", id="not an object"),
        pytest.param(b'{"values": NaN}', "not valid JSON", id="NaN is not JSON"),
    ],
)
def test_an_unreadable_upload_fails_the_task_with_a_per_field_error(driver: Driver, data: bytes, message: str) -> None:
    task_id = driver.submit("describe", None, {"Input-Upload": _uploaded(driver, data)}).body["task_id"]

    driver.deliver()

    failed = driver.get("describe", task_id).body
    assert failed["status"] == "failed"
    assert failed["error"]["type"] == "InvalidInput"
    assert failed["error"]["errors"][0]["field"] == "(body)"
    assert message in failed["error"]["errors"][0]["message"]


def test_an_upload_that_does_not_fit_the_model_fails_with_the_same_errors_as_a_422(driver: Driver) -> None:
    # GIVEN an input with every kind of wrong field, uploaded
    body = {"values": [1, "two", True], "extra": 1}
    inline: HttpResponse = driver.submit("describe", body)
    assert inline.status == 422
    task_id = driver.submit("describe", None, {"Input-Upload": _uploaded(driver, json.dumps(body).encode())})
    task_id = task_id.body["task_id"]

    # WHEN the worker takes it
    driver.deliver()

    # THEN the task fails with the errors the 422 lists
    failed = driver.get("describe", task_id).body
    assert failed["status"] == "failed"
    assert failed["error"]["errors"] == inline.body["errors"]


def test_a_task_whose_input_left_the_bucket_fails_clearly(driver: Driver) -> None:
    task_id = driver.submit("describe", {"values": list(range(2_000))}).body["task_id"]
    item = driver.item(task_id)
    assert item is not None
    driver.s3.delete_object(Bucket=driver.resources.payload_bucket, Key=item["input_ref"]["S"])

    driver.deliver()

    failed = driver.get("describe", task_id).body
    assert failed["error"]["type"] == "InputGone"


def test_an_idempotent_replay_with_another_large_body_leaves_the_first_input_alone(driver: Driver) -> None:
    key = {"Idempotency-Key": "big-1"}
    first = driver.submit("describe", {"values": list(range(2_000))}, key).body["task_id"]

    conflict = driver.submit("describe", {"values": list(range(3_000))}, key)

    assert conflict.status == 409
    driver.deliver()
    assert driver.get("describe", first).body["result"]["count"] == 2_000


def test_the_result_route_of_a_pending_failed_or_foreign_task(driver: Driver) -> None:
    pending = driver.submit("always-fails", {}, caller=ALICE).body["task_id"]
    assert driver.result("always-fails", pending, caller=ALICE)["statusCode"] == 202
    driver.deliver()

    failed = driver.result("always-fails", pending, caller=ALICE)
    assert failed["statusCode"] == 409
    assert json.loads(failed["body"])["task_status"] == "failed"
    assert driver.result("always-fails", pending, caller=BOB)["statusCode"] == 404


def test_an_upload_posted_again_after_submit_does_not_change_what_the_task_runs_on(driver: Driver) -> None:
    # GIVEN a task accepted on an upload of [1, 1, 1]
    created = driver.create_upload(caller=ALICE).body
    driver.upload(created, json.dumps({"values": [1, 1, 1]}).encode())
    accepted = driver.submit("describe", None, {"Input-Upload": created["upload_id"]}, caller=ALICE)
    assert accepted.status == 202, accepted.body
    task_id = accepted.body["task_id"]

    # WHEN the form, still valid for its hour, is posted again with other numbers before the worker runs
    driver.upload(created, json.dumps({"values": [100, 200, 300]}).encode())
    driver.deliver()

    # THEN the task ran on the bytes it was accepted with, and its input's link shows those bytes
    assert driver.get("describe", task_id, caller=ALICE).body["result"]["mean"] == 1.0
    link = result_handler(http_event("GET", f"/describe/{task_id}/input", authorizer=ALICE), lambda_context())
    assert link["statusCode"] == 303
    location = urlsplit(link["headers"]["Location"])
    version = dict(parse_qsl(location.query))["versionId"]
    shown = driver.s3.get_object(
        Bucket=driver.resources.payload_bucket, Key=created["fields"]["key"], VersionId=version
    )
    assert json.loads(shown["Body"].read()) == {"values": [1, 1, 1]}


def test_an_upload_serves_one_task(driver: Driver) -> None:
    # GIVEN alice's upload, the input of a task
    upload_id = _uploaded(driver, json.dumps({"values": [1, 2]}).encode(), ALICE)
    first = driver.submit("describe", None, {"Input-Upload": upload_id}, caller=ALICE)
    assert first.status == 202, first.body

    # WHEN she names it again, for the same kind of task or another, with or without an Idempotency-Key
    again = [
        driver.submit("describe", None, {"Input-Upload": upload_id}, caller=ALICE),
        driver.submit("describe", None, {"Input-Upload": upload_id, "Idempotency-Key": "k-2"}, caller=ALICE),
        driver.submit("fit", None, {"Input-Upload": upload_id}, caller=ALICE),
    ]

    # THEN each is a 409 naming the header and the task the upload serves; nothing more is recorded or queued
    for refused in again:
        assert refused.status == 409, refused.body
        assert refused.body["errors"][0]["field"] == "Input-Upload"
        assert first.body["task_id"] in refused.body["detail"]
    assert driver.queue_depth(driver.resources.queue_url) == 1
    assert [item["task_id"] for item in driver.list(None, caller=ALICE).body["items"]] == [first.body["task_id"]]


def test_an_idempotent_replay_naming_its_upload_is_the_same_task(driver: Driver) -> None:
    upload_id = _uploaded(driver, json.dumps({"values": [1, 2]}).encode(), ALICE)
    headers = {"Input-Upload": upload_id, "Idempotency-Key": "nightly-1"}

    first = driver.submit("describe", None, headers, caller=ALICE)
    replayed = driver.submit("describe", None, headers, caller=ALICE)

    assert (first.status, replayed.status) == (202, 202), replayed.body
    assert replayed.body["task_id"] == first.body["task_id"]


def test_an_idempotency_key_used_with_another_upload_is_a_409_and_leaves_that_upload_free(driver: Driver) -> None:
    # GIVEN a task submitted with a key on one upload
    first_upload = _uploaded(driver, json.dumps({"values": [1]}).encode(), ALICE)
    second_upload = _uploaded(driver, json.dumps({"values": [2]}).encode(), ALICE)
    key = {"Idempotency-Key": "nightly-2"}
    assert driver.submit("describe", None, {"Input-Upload": first_upload, **key}, caller=ALICE).status == 202

    # WHEN the key names another upload
    conflict = driver.submit("describe", None, {"Input-Upload": second_upload, **key}, caller=ALICE)

    # THEN it is the key's conflict, and the other upload is still free for a task of its own
    assert conflict.status == 409
    assert "Idempotency-Key" in conflict.body["detail"]
    assert driver.submit("describe", None, {"Input-Upload": second_upload}, caller=ALICE).status == 202
