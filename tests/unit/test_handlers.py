"""Each handler driven by the sample events in events/ (the same files `sam local invoke -e` takes)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from core.http.api import MAX_BODY_BYTES
from devstack.resources import LocalResources
from result.app import lambda_handler as result_handler
from submit.app import lambda_handler as submit_handler
from tests.support.events import http_event, lambda_context, load_event
from worker.app import lambda_handler as worker_handler

ROOT = Path(__file__).resolve().parents[2]


def call(handler: Any, event: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
    response = handler(event, lambda_context())
    return response["statusCode"], response.get("headers", {}), json.loads(response["body"])


@pytest.mark.parametrize(
    ("event_name", "status", "title"),
    [
        ("submit_multiply", 202, None),
        ("submit_idempotent", 202, None),
        ("submit_invalid_json", 400, "Malformed request"),
        ("submit_invalid_input", 422, "Invalid input"),
        ("submit_unknown_task", 404, "Not found"),
    ],
)
def test_submit_handler_answers_each_sample_event(
    aws: LocalResources, event_name: str, status: int, title: str | None
) -> None:
    code, headers, body = call(submit_handler, load_event(event_name))

    assert code == status
    if title is None:
        assert headers["Content-Type"] == "application/json"
        assert body["status"] == "queued"
    else:
        assert headers["Content-Type"] == "application/problem+json"
        assert body["title"] == title
        assert body["status"] == status


@pytest.mark.parametrize(
    ("event_name", "status"),
    [("result_get", 404), ("result_get_malformed_id", 400), ("result_cancel", 404), ("result_wrong_method", 405)],
)
def test_result_handler_answers_each_sample_event(aws: LocalResources, event_name: str, status: int) -> None:
    code, headers, body = call(result_handler, load_event(event_name))

    assert code == status
    assert headers["Content-Type"] == "application/problem+json"
    assert body["status"] == status


def test_worker_handler_reports_the_unreadable_sample_message_as_failed(aws: LocalResources) -> None:
    event = load_event("worker_poison")

    response = worker_handler(event, lambda_context())

    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}


def test_worker_handler_drops_a_message_whose_task_does_not_exist(aws: LocalResources) -> None:
    assert worker_handler(load_event("worker_multiply"), lambda_context()) == {"batchItemFailures": []}


def test_invalid_input_lists_every_field_error(aws: LocalResources) -> None:
    _, _, body = call(submit_handler, load_event("submit_invalid_input"))

    assert {(error["field"], error["type"]) for error in body["errors"]} == {
        ("x", "invalid"),
        ("y", "invalid"),
        ("z", "unknown_field"),
    }


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ("[1, 2]", 400),
        ('"x"', 400),
        ("", 400),
        ("null", 400),
        # NaN and Infinity are not JSON (RFC 8259), 1e400 is JSON but no float holds it.
        ('{"x": NaN, "y": 1}', 400),
        ('{"x": -Infinity, "y": 1}', 400),
        ('{"x": 1e400, "y": 1}', 422),
        ('{"x": 2, "y": 3', 400),
        ("[" * 100_000, 400),
    ],
)
def test_submit_rejects_bodies_that_are_not_valid_inputs(aws: LocalResources, body: str, status: int) -> None:
    code, _, problem = call(submit_handler, http_event("POST", "/multiply", body))

    assert code == status
    assert problem["status"] == status
    assert aws_table_is_empty()


def test_submit_over_the_size_limit_is_413(aws: LocalResources) -> None:
    padding = "0" * MAX_BODY_BYTES
    code, _, problem = call(submit_handler, http_event("POST", "/multiply", f'{{"x": 1{padding}, "y": 1}}'))

    assert code == 413
    assert str(MAX_BODY_BYTES) in problem["detail"]


def test_submit_accepts_a_base64_encoded_body(aws: LocalResources) -> None:
    event = http_event("POST", "/multiply", None)
    event["body"] = base64.b64encode(b'{"x": 2, "y": 3}').decode()
    event["isBase64Encoded"] = True

    code, _, body = call(submit_handler, event)

    assert code == 202
    assert body["task"] == "multiply"


def _with_content_type(event: dict[str, Any], content_type: str | None) -> dict[str, Any]:
    """The event as API Gateway passes it, header names lowercased, with this Content-Type (None: none at all)."""
    headers = {name: value for name, value in event["headers"].items() if name.lower() != "content-type"}
    event["headers"] = headers if content_type is None else {**headers, "content-type": content_type}
    return event


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "text/plain; charset=utf-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "text/json",
        "application/jsonp",
        "application/json-seq",
        "application/+json",
        "",
    ],
)
def test_submit_refuses_a_body_not_sent_as_json_with_a_415_and_stores_nothing(
    aws: LocalResources, content_type: str | None
) -> None:
    # GIVEN a valid task input, as a cross-site HTML form could send it (no preflight for text/plain)
    event = _with_content_type(http_event("POST", "/multiply", {"x": 2, "y": 3}), content_type)

    code, headers, problem = call(submit_handler, event)

    assert code == 415
    assert headers["Content-Type"] == "application/problem+json"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert problem["title"] == "Unsupported media type"
    assert "application/json" in problem["detail"]
    assert aws_table_is_empty()


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;charset=UTF-8",
        "application/merge-patch+json",
        "application/vnd.api+json",
    ],
)
def test_submit_accepts_json_and_any_json_based_media_type(aws: LocalResources, content_type: str) -> None:
    event = _with_content_type(http_event("POST", "/multiply", {"x": 2, "y": 3}), content_type)

    code, _, body = call(submit_handler, event)

    assert code == 202, body


def test_a_request_without_a_body_needs_no_content_type(aws: LocalResources) -> None:
    code, _, body = call(submit_handler, _with_content_type(http_event("POST", "/uploads"), None))

    assert code == 201, body


def test_every_json_answer_of_the_api_tells_browsers_not_to_sniff(aws: LocalResources) -> None:
    accepted = submit_handler(load_event("submit_multiply"), lambda_context())
    task_id = json.loads(accepted["body"])["task_id"]
    answers = [
        accepted,
        submit_handler(load_event("submit_invalid_input"), lambda_context()),
        submit_handler(http_event("GET", "/openapi.json"), lambda_context()),
        submit_handler(http_event("POST", "/uploads"), lambda_context()),
        result_handler(http_event("GET", f"/multiply/{task_id}"), lambda_context()),
        result_handler(http_event("GET", f"/multiply/{task_id}/input"), lambda_context()),
        result_handler(http_event("GET", "/multiply/not-an-id"), lambda_context()),
        result_handler(http_event("GET", "/tasks"), lambda_context()),
        result_handler(http_event("PUT", f"/multiply/{task_id}"), lambda_context()),
    ]

    for answer in answers:
        assert answer["headers"]["Content-Type"].split(";")[0] in ("application/json", "application/problem+json")
        assert answer["headers"]["X-Content-Type-Options"] == "nosniff", answer


def test_unknown_task_is_404_even_with_an_invalid_body(aws: LocalResources) -> None:
    code, _, body = call(submit_handler, http_event("POST", "/divide", "not json"))

    assert code == 404
    assert "multiply" in body["known_tasks"]


@pytest.mark.parametrize("method", ["PUT", "PATCH", "POST"])
def test_result_wrong_method_is_405_with_allow(aws: LocalResources, method: str) -> None:
    code, headers, _ = call(result_handler, http_event(method, "/multiply/3f2b8a51-6c1e-4d7a-9b0f-2e5c8d4a1f60"))

    assert code == 405
    assert headers["Allow"] == "GET, DELETE, OPTIONS"


def test_result_options_is_204_with_allow_and_reads_nothing(aws: LocalResources) -> None:
    # A browser's CORS preflight reaches the function without the authorizer (template.yaml, ResultPreflight).
    event = http_event("OPTIONS", "/multiply/3f2b8a51-6c1e-4d7a-9b0f-2e5c8d4a1f60", authorizer=None)

    response = result_handler(event, lambda_context())

    assert (response["statusCode"], response["body"]) == (204, "")
    assert response["headers"]["Allow"] == "GET, DELETE, OPTIONS"


def test_get_for_another_task_name_is_404(aws: LocalResources) -> None:
    _, _, accepted = call(submit_handler, load_event("submit_multiply"))

    code, _, _ = call(result_handler, http_event("GET", f"/counting/{accepted['task_id']}"))

    assert code == 404


def test_openapi_document_describes_each_task_input(aws: LocalResources) -> None:
    code, _, document = call(submit_handler, http_event("GET", "/openapi.json"))

    assert code == 200
    assert document["openapi"].startswith("3.1")
    schema = document["components"]["schemas"]["MultiplyInput"]
    assert set(schema["required"]) == {"x", "y"}
    assert schema["additionalProperties"] is False
    assert set(document["paths"]["/multiply"]) == {"post", "get"}
    assert set(document["paths"]["/multiply/{task_id}"]) == {"parameters", "get", "delete"}
    assert set(document["paths"]["/multiply/{task_id}/input"]) == {"parameters", "get"}
    assert set(document["paths"]["/tasks"]) == {"get"}
    assert set(document["paths"]["/uploads"]) == {"post"}


def test_openapi_document_describes_listing_and_its_parameters(aws: LocalResources) -> None:
    _, _, document = call(submit_handler, http_event("GET", "/openapi.json"))

    for operation in (document["paths"]["/tasks"]["get"], document["paths"]["/fit"]["get"]):
        parameters = {parameter["name"]: parameter for parameter in operation["parameters"]}
        assert set(parameters) == {"status", "limit", "cursor"}
        assert parameters["status"]["schema"]["items"]["enum"] == [
            "queued",
            "running",
            "succeeded",
            "failed",
            "cancelled",
        ]
        assert (parameters["limit"]["schema"]["minimum"], parameters["limit"]["schema"]["maximum"]) == (1, 100)
        listed = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert listed == {"$ref": "#/components/schemas/TaskList"}
    assert document["components"]["schemas"]["TaskList"]["required"] == ["items", "next_cursor"]


def test_openapi_document_describes_post_uploads_as_it_answers(aws: LocalResources) -> None:
    import jsonschema

    from core.adapters.payloads import InputLimit

    # GIVEN the document and a real answer of POST /uploads
    _, _, document = call(submit_handler, http_event("GET", "/openapi.json"))
    code, _, answer = call(submit_handler, http_event("POST", "/uploads", {"bytes": 5000}))

    # THEN the answer is what the document says: url and fields at the top level
    operation = document["paths"]["/uploads"]["post"]
    assert code == 201
    assert operation["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Upload"
    }
    jsonschema.validate(answer, document["components"]["schemas"]["Upload"])
    assert {"url", "fields"} <= set(answer)
    assert "form" not in answer
    # AND the declared size is bounded as the worker's memory bounds it, refused above with a 413
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["bytes"]["maximum"] == InputLimit(512).max_bytes
    assert {"413", "415", "422"} <= set(operation["responses"])
    assert "415" in document["paths"]["/multiply"]["post"]["responses"]


def aws_table_is_empty() -> bool:
    import boto3

    return boto3.client("dynamodb").scan(TableName="TasksTable")["Count"] == 0


def test_the_api_functions_validate_every_task_without_importing_its_packages() -> None:
    # GIVEN a fresh interpreter, as a cold start of submit or result is
    script = """if True:
        import json, sys
        from result.app import lambda_handler as result
        from submit.app import lambda_handler as submit
        from tests.support.events import http_event, lambda_context

        requests = [
            (submit, http_event("POST", "/fit", {"X": [[1, 2], [3]], "y": [1, 2]})),
            (submit, http_event("POST", "/describe", {"values": []})),
            (submit, http_event("GET", "/openapi.json")),
            (result, http_event("GET", "/fit/not-a-task-id")),
            (result, http_event("GET", "/fit", query=[("limit", "0")])),
        ]
        statuses = [handler(event, lambda_context())["statusCode"] for handler, event in requests]
        print(json.dumps({"statuses": statuses, "numpy": "numpy" in sys.modules}))
    """

    # WHEN they refuse inputs of the numpy tasks, describe them and answer for them
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(["functions", "."])}
    run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True)

    # THEN numpy, which only the worker's layer packages, was never imported
    outcome = json.loads(run.stdout.splitlines()[-1])
    assert outcome == {"statuses": [422, 422, 200, 400, 400], "numpy": False}


def test_openapi_document_describes_problems_as_they_answer(aws: LocalResources) -> None:
    import jsonschema

    # GIVEN the document and a real 422 for an input with more wrong fields than an answer lists
    _, _, document = call(submit_handler, http_event("GET", "/openapi.json"))
    wrong = {f"unknown_{n}": n for n in range(60)} | {"x": 1, "y": 2}
    code, _, problem = call(submit_handler, http_event("POST", "/multiply", wrong))

    # THEN the answer is what the document's Problem says, errors and errors_omitted included
    assert code == 422
    schema = document["components"]["responses"]["Problem"]["content"]["application/problem+json"]["schema"]
    jsonschema.validate(problem, schema)
    assert {"errors", "errors_omitted"} <= set(schema["properties"])
    assert problem["errors_omitted"] == 60 - len(problem["errors"])
    # AND every operation on a caller's tasks says it may answer 403 (a token that names nobody)
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method != "parameters" and path != "/openapi.json":
                assert "403" in operation["responses"], (path, method)
