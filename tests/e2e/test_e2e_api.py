"""The HTTP contract, over real HTTP: against the local stack, or a deployed API with E2E_BASE_URL."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests

from core.http.api import MAX_BODY_BYTES

pytestmark = pytest.mark.e2e


def test_multiply_submit_poll_result(
    http: requests.Session, base_url: str, finished: Callable[..., dict[str, Any]]
) -> None:
    # GIVEN / WHEN
    started = time.monotonic()
    response = http.post(f"{base_url}/multiply", json={"x": 6, "y": 7}, timeout=10)

    # THEN
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "queued"
    assert response.headers["Location"].endswith(f"/multiply/{body['task_id']}")
    assert "Retry-After" in response.headers
    result = finished("multiply", body["task_id"])
    assert result["status"] == "succeeded"
    assert result["result"] == 42
    print(f"one task end to end: {time.monotonic() - started:.3f} s")


def test_describe_and_fit_run_with_numpy_in_the_worker(
    http: requests.Session, base_url: str, finished: Callable[..., dict[str, Any]]
) -> None:
    described = http.post(f"{base_url}/describe", json={"values": [1, 2, 3, 4, 10]}, timeout=10).json()
    fitted = http.post(f"{base_url}/fit", json={"X": [[0], [1], [2]], "y": [1, 3, 5], "predict": [[3]]}, timeout=10)

    assert finished("describe", described["task_id"])["result"] == {
        "count": 5,
        "mean": 4.0,
        "std": pytest.approx(3.5355339),
        "min": 1.0,
        "max": 10.0,
        "quantiles": {"0.25": 2.0, "0.5": 3.0, "0.75": 4.0},
    }
    assert finished("fit", fitted.json()["task_id"])["result"] == {
        "coefficients": [pytest.approx(2.0)],
        "intercept": pytest.approx(1.0),
        "r2": 1.0,
        "predictions": [pytest.approx(7.0)],
    }


def test_fit_whose_shapes_disagree_is_422_naming_the_field(http: requests.Session, base_url: str) -> None:
    response = http.post(f"{base_url}/fit", json={"X": [[1, 2], [3]], "y": [1, 2]}, timeout=10)

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "X.1", "message": "Expected 2 numbers, as many as X.0 has, got 1", "type": "invalid"}
    ]


def test_submit_invalid_json_is_400(http: requests.Session, base_url: str) -> None:
    response = http.post(
        f"{base_url}/multiply", data="{not json", headers={"Content-Type": "application/json"}, timeout=10
    )
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("application/problem+json")


def test_a_cross_site_form_body_is_415_and_creates_no_task(http: requests.Session, base_url: str) -> None:
    # GIVEN a task's JSON sent as an HTML form can send it without a CORS preflight (enctype text/plain)
    body = '{"x": 6, "y": 7}'

    # WHEN it reaches the API as text/plain
    response = http.post(f"{base_url}/multiply", data=body, headers={"Content-Type": "text/plain"}, timeout=10)

    # THEN it is refused, as a problem a browser may not sniff into anything else
    assert response.status_code == 415, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_submit_bad_input_is_422_with_fields(http: requests.Session, base_url: str) -> None:
    response = http.post(f"{base_url}/multiply", json={"x": "6", "z": 1}, timeout=10)
    assert response.status_code == 422
    fields = {error["field"] for error in response.json()["errors"]}
    assert {"x", "y", "z"} <= fields


def test_submit_unknown_task_is_404_listing_tasks(http: requests.Session, base_url: str) -> None:
    response = http.post(f"{base_url}/no-such-task", json={}, timeout=10)
    assert response.status_code == 404
    assert "multiply" in response.json()["known_tasks"]


def test_result_unknown_id_is_404(http: requests.Session, base_url: str) -> None:
    response = http.get(f"{base_url}/multiply/{uuid.uuid4()}", timeout=10)
    assert response.status_code == 404


def test_result_malformed_id_is_400(http: requests.Session, base_url: str) -> None:
    response = http.get(f"{base_url}/multiply/not-a-uuid", timeout=10)
    assert response.status_code == 400


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_wrong_method_on_a_task_is_405_with_allow(http: requests.Session, base_url: str, method: str) -> None:
    response = http.request(method, f"{base_url}/multiply/{uuid.uuid4()}", timeout=10)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, DELETE, OPTIONS"


def test_a_method_no_route_takes_is_refused_by_the_gateway_before_any_function(
    http: requests.Session, base_url: str
) -> None:
    response = http.put(f"{base_url}/multiply", json={"x": 1}, timeout=10)
    # API Gateway's own answer for a request no route matches (HTTP API: 404; samcli's emulation: 403)
    assert response.status_code in (403, 404)
    assert "message" in response.json()


def test_body_over_the_inline_limit_is_413(http: requests.Session, base_url: str) -> None:
    # Larger inputs go by upload (POST /uploads); the lrt client does that by itself.
    body = '{"x": 1, "y": 2, "pad": "' + "a" * MAX_BODY_BYTES + '"}'
    response = http.post(f"{base_url}/multiply", data=body, headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 413


def test_idempotent_replay_returns_same_task(http: requests.Session, base_url: str) -> None:
    headers = {"Idempotency-Key": f"e2e-{uuid.uuid4()}"}
    first = http.post(f"{base_url}/multiply", json={"x": 2, "y": 3}, headers=headers, timeout=10)
    again = http.post(f"{base_url}/multiply", json={"x": 2, "y": 3}, headers=headers, timeout=10)
    assert first.status_code in (200, 202)
    assert again.status_code in (200, 202)
    assert again.json()["task_id"] == first.json()["task_id"]


def test_idempotency_key_reuse_with_other_body_is_409(http: requests.Session, base_url: str) -> None:
    headers = {"Idempotency-Key": f"e2e-{uuid.uuid4()}"}
    first = http.post(f"{base_url}/multiply", json={"x": 2, "y": 3}, headers=headers, timeout=10)
    other = http.post(f"{base_url}/multiply", json={"x": 2, "y": 4}, headers=headers, timeout=10)
    assert first.status_code == 202
    assert other.status_code == 409


def test_cancel_finished_task_is_409(
    http: requests.Session, base_url: str, finished: Callable[..., dict[str, Any]]
) -> None:
    task_id = http.post(f"{base_url}/multiply", json={"x": 1, "y": 1}, timeout=10).json()["task_id"]
    finished("multiply", task_id)
    response = http.delete(f"{base_url}/multiply/{task_id}", timeout=10)
    assert response.status_code == 409
