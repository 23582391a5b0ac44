"""Data-science payloads over real HTTP against the local stack: inputs uploaded straight to the payload bucket
(moto's S3, through presigned forms), results too large for the record fetched through their link and the 303."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import requests

from core.adapters.payloads import InputLimit
from core.http.api import MAX_BODY_BYTES
from devstack import LocalStack
from lrt import TaskClient
from lrt.auth import resolve_auth
from lrt.errors import ApiError
from tests.e2e.e2e_support import e2e_auth

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(base_url: str) -> TaskClient:
    return TaskClient(base_url, auth=resolve_auth(e2e_auth()), timeout=60)


# The largest input a task takes with the template's WorkerMemorySize (512 MB), as the local stack runs it.
MOST = InputLimit(512).max_bytes


def test_describe_of_600_000_numbers_goes_through_an_upload_and_matches_numpy(client: TaskClient) -> None:
    # GIVEN 600,000 numbers: ≈ 11 MB of JSON, far over what a request carries, within what a task takes
    rng = random.Random(15)
    values = [rng.gauss(3.0, 2.0) for _ in range(600_000)]
    assert MAX_BODY_BYTES < len(json.dumps({"values": values})) < MOST

    # WHEN the client runs describe on them
    result = client.run("describe", values=values, timeout=180)

    # THEN the figures are numpy's own
    array = np.asarray(values)
    assert result["count"] == 600_000
    assert result["mean"] == pytest.approx(float(array.mean()), rel=1e-12)
    assert result["std"] == pytest.approx(float(array.std(ddof=1)), rel=1e-12)
    assert (result["min"], result["max"]) == (float(array.min()), float(array.max()))
    quartiles = np.quantile(array, [0.25, 0.5, 0.75])
    assert [result["quantiles"][q] for q in ("0.25", "0.5", "0.75")] == pytest.approx(list(quartiles), rel=1e-12)


def test_fit_recovers_known_coefficients_from_50_000_rows(client: TaskClient) -> None:
    # GIVEN 50,000 rows of 10 features and y from known coefficients, with a little noise
    rng = np.random.default_rng(17)
    coefficients = rng.uniform(-5, 5, size=10)
    features = rng.normal(size=(50_000, 10))
    y = features @ coefficients + 4.25 + rng.normal(scale=0.01, size=50_000)

    # WHEN the client fits them (through an upload: ≈ 11 MB of JSON)
    result = client.run("fit", X=features.tolist(), y=y.tolist(), predict=[[0.0] * 10], timeout=180)

    # THEN it recovers them
    assert result["coefficients"] == pytest.approx(list(coefficients), abs=1e-3)
    assert result["intercept"] == pytest.approx(4.25, abs=1e-3)
    assert result["r2"] > 0.999
    assert result["predictions"] == pytest.approx([4.25], abs=1e-3)


def test_a_result_over_a_megabyte_comes_through_its_link_and_the_303(
    client: TaskClient, http: requests.Session, base_url: str, stack: LocalStack
) -> None:
    size = 1_500_000
    submitted = client.submit("huge-result", size=size)
    done = client.wait("huge-result", submitted.task_id, timeout=60)

    # The client fetched it from the link GET gave
    assert done.result == "x" * size
    shown = http.get(f"{base_url}/huge-result/{submitted.task_id}", timeout=10).json()
    assert "result" not in shown
    assert shown["result_bytes"] == size + 2
    # The link works by itself, over HTTP, with no credentials
    assert requests.get(shown["result_url"], timeout=30).json() == "x" * size
    # And /result answers 303 See Other to such a link
    redirect = http.get(f"{base_url}/huge-result/{submitted.task_id}/result", allow_redirects=False, timeout=10)
    assert redirect.status_code == 303
    assert requests.get(redirect.headers["Location"], timeout=30).json() == "x" * size
    assert client.result("huge-result", submitted.task_id) == "x" * size


def test_a_malformed_upload_ends_failed_with_per_field_errors(client: TaskClient, base_url: str) -> None:
    # GIVEN an uploaded input whose fields are wrong, as a 422 would list them
    body = {"X": [[1, 2], [3]], "y": [1, 2], "extra": True}
    inline = requests.post(f"{base_url}/fit", json=body, auth=resolve_auth(e2e_auth()), timeout=10)
    assert inline.status_code == 422
    upload_id = client.upload(json.dumps(body).encode())

    # WHEN the task is submitted by reference and the worker takes it
    submitted = requests.post(
        f"{base_url}/fit", headers={"Input-Upload": upload_id}, auth=resolve_auth(e2e_auth()), timeout=10
    )
    assert submitted.status_code == 202, submitted.text
    done = client.wait("fit", submitted.json()["task_id"], timeout=60)

    # THEN it failed, with those same errors
    assert done.status == "failed"
    assert done.raw["error"]["type"] == "InvalidInput"
    assert done.raw["error"]["errors"] == inline.json()["errors"]


def test_an_input_larger_than_a_task_takes_is_refused_before_it_is_uploaded(client: TaskClient) -> None:
    # GIVEN an input just over what a task takes with the worker's memory
    data = json.dumps({"values": [1.5] * (MOST // 4 + 10)}).encode()
    assert len(data) > MOST

    # WHEN the client uploads it
    with pytest.raises(ApiError) as refused:
        client.upload(data)

    # THEN the API says why, with a 413, before a byte goes to the bucket
    assert refused.value.status == 413
    assert "WorkerMemorySize" in refused.value.detail
    assert refused.value.problem["max_bytes"] == MOST
