"""describe and fit through the three handlers: numpy's figures as results, and the same per-field problems
whether an input that does not agree is sent inline (422) or reaches the worker another way (a failed task)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from tests.support.driver import Driver


def test_describe_round_trip_returns_numpys_figures(driver: Driver) -> None:
    values = [3, 1.5, 4, 1, 5, 9, 2.25, 6]
    task_id = driver.submit("describe", {"values": values}).body["task_id"]

    assert driver.deliver() == []

    done = driver.get("describe", task_id).body
    assert done["status"] == "succeeded"
    assert done["result"] == {
        "count": 8,
        "mean": pytest.approx(np.mean(values)),
        "std": pytest.approx(np.std(values, ddof=1)),
        "min": 1.0,
        "max": 9.0,
        "quantiles": {str(q): pytest.approx(np.quantile(values, q)) for q in (0.25, 0.5, 0.75)},
    }


def test_fit_round_trip_returns_the_line_and_its_predictions(driver: Driver) -> None:
    task_id = driver.submit("fit", {"X": [[0], [1], [2], [3]], "y": [1, 3, 5, 7], "predict": [[10]]}).body["task_id"]

    assert driver.deliver() == []

    done = driver.get("fit", task_id).body
    assert done["status"] == "succeeded"
    assert done["result"] == {
        "coefficients": [pytest.approx(2.0)],
        "intercept": pytest.approx(1.0),
        "r2": 1.0,
        "predictions": [pytest.approx(21.0)],
    }


SHAPES_THAT_DISAGREE = [
    pytest.param({"X": [[1, 2], [3, 4], [5, 6], [7]], "y": [1, 2, 3, 4]}, {"X.3"}, id="ragged-X"),
    pytest.param({"X": [[1], [2]], "y": [1, 2, 3]}, {"y"}, id="y-not-one-per-row"),
    pytest.param({"X": [[1, 2], [3, 4]], "y": [1, 2], "predict": [[1]]}, {"predict.0"}, id="predict-too-narrow"),
    pytest.param({"X": [], "y": []}, {"X"}, id="empty-X"),
]


@pytest.mark.parametrize(("body", "fields"), SHAPES_THAT_DISAGREE)
def test_fit_inline_with_shapes_that_disagree_is_422_naming_the_field(
    driver: Driver, body: dict[str, Any], fields: set[str]
) -> None:
    refused = driver.submit("fit", body)

    assert refused.status == 422
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert {error["field"] for error in refused.body["errors"]} == fields
    assert driver.receive() == []  # nothing queued


@pytest.mark.parametrize(("body", "fields"), SHAPES_THAT_DISAGREE)
def test_fit_input_that_reaches_the_worker_without_submits_check_fails_with_the_422s_message(
    driver: Driver, body: dict[str, Any], fields: set[str]
) -> None:
    # GIVEN a task whose stored input disagrees with itself, as one stored by another path than submit's would
    task_id = driver.submit("fit", {"X": [[1]], "y": [1]}).body["task_id"]
    driver.dynamodb.update_item(
        TableName=driver.resources.table_name,
        Key={"task_id": {"S": task_id}},
        UpdateExpression="SET #input = :input",
        ExpressionAttributeNames={"#input": "input"},
        ExpressionAttributeValues={":input": {"S": json.dumps(body)}},
    )

    # WHEN the worker takes its message
    assert driver.deliver() == []

    # THEN the task fails, at once, with each field's problem as the 422 states it
    failed = driver.get("fit", task_id).body
    assert failed["status"] == "failed"
    assert failed["attempts"] == 1
    problems = driver.submit("fit", body).body["errors"]
    assert {problem["field"] for problem in problems} == fields
    assert failed["error"] == {
        "type": "InvalidInput",
        "message": "invalid input for task 'fit': "
        + "; ".join(f"{problem['field']}: {problem['message']}" for problem in problems),
        "errors": problems,
    }
    assert driver.queue_depth(driver.resources.queue_url) == 0


def test_fit_whose_figures_overflow_a_float_fails_with_a_clear_error(driver: Driver) -> None:
    task_id = driver.submit("fit", {"X": [[0], [1]], "y": [0, 1e300], "predict": [[1e300]]}).body["task_id"]

    assert driver.deliver() == []

    failed = driver.get("fit", task_id).body
    assert failed["status"] == "failed"
    assert failed["error"]["type"] == "ValueError"
    assert failed["error"]["message"].startswith("a prediction is beyond the range of a 64-bit float")
