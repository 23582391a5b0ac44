"""train: logistic regression by gradient descent, a durable task run under the durable-execution SDK's test runner;
its input's 422s; and the same weights however its epochs are cut into checkpointed steps."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import tasks.train
from core.errors import InvalidInput
from core.registry import get_task
from tests.support.durable import run_durable_task

# Two features, labels by a line through the middle: separable.
X = [[0.0, 0.1], [0.2, 0.0], [0.1, 0.3], [0.9, 1.0], [1.0, 0.8], [0.8, 0.9]]
Y = [0, 0, 0, 1, 1, 1]


def reference(X: list[list[float]], y: list[int], epochs: int, learning_rate: float) -> tuple[Any, float]:
    """Full-batch gradient descent on the mean log loss, written out independently of the task."""
    features, labels = np.array(X, dtype=float), np.array(y, dtype=float)
    weights, intercept = np.zeros(features.shape[1]), 0.0
    for _ in range(epochs):
        probabilities = 1.0 / (1.0 + np.exp(-(features @ weights + intercept)))
        weights = weights - learning_rate * features.T @ (probabilities - labels) / len(labels)
        intercept = intercept - learning_rate * float(np.mean(probabilities - labels))
    return weights, intercept


def test_train_fits_the_labels_and_predicts_probabilities() -> None:
    progress: list[float] = []

    execution, result = run_durable_task(
        "train", {"X": X, "y": Y, "epochs": 2000, "learning_rate": 1.0, "predict": [[0, 0], [1, 1]]}, progress=progress
    )

    assert execution.status.value == "SUCCEEDED", execution.error
    weights, intercept = reference(X, Y, 2000, 1.0)
    assert result["coefficients"] == pytest.approx(weights.tolist(), rel=1e-9)
    assert result["intercept"] == pytest.approx(intercept, rel=1e-9)
    assert result["accuracy"] == 1.0
    assert 0 < result["log_loss"] < 0.1
    low, high = result["predictions"]
    assert low < 0.1 < 0.9 < high
    assert progress[-1] == 1.0


def test_train_gives_the_same_weights_however_its_epochs_are_cut_into_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = {"X": X, "y": Y, "epochs": 40}
    _, whole = run_durable_task("train", inputs)
    # Steps of no time at all: one epoch each, every weight checkpointed as JSON and read back on replay.
    monkeypatch.setattr(tasks.train, "STEP_SECONDS", 0.0)

    execution, cut = run_durable_task("train", inputs)

    steps = [operation for operation in execution.operations if operation.name.startswith("epochs from")]
    assert len(steps) == 40
    assert cut == whole


def test_train_without_predict_gives_no_predictions() -> None:
    _, result = run_durable_task("train", {"X": [[1], [2]], "y": [0, 1], "epochs": 1})

    assert "predictions" not in result
    # One epoch from zero weights: both probabilities 0.5, so w = -0.1 * (1·0.5 + 2·(-0.5)) / 2.
    assert result["coefficients"] == pytest.approx([0.025])


@pytest.mark.parametrize(
    ("inputs", "field"),
    [
        ({"X": [[1, 2], [3]], "y": [0, 1], "epochs": 5}, "X.1"),
        ({"X": [[1], [2]], "y": [0], "epochs": 5}, "y"),
        ({"X": [[1], [2]], "y": [0, 2], "epochs": 5}, "y.1"),
        ({"X": [[1], [2]], "y": [0, -1], "epochs": 5}, "y.1"),
        ({"X": [[1], [2]], "y": [0, 1], "epochs": 0}, "epochs"),
        ({"X": [[1], [2]], "y": [0, 1], "epochs": 100_001}, "epochs"),
        ({"X": [[1], [2]], "y": [0, 1], "epochs": 5, "learning_rate": 0}, "learning_rate"),
        ({"X": [[1], [2]], "y": [0, 1], "epochs": 5, "predict": [[1, 2]]}, "predict.0"),
        ({"X": [], "y": [], "epochs": 5}, "X"),
        ({"X": [[1], [2]], "y": [0.5, 1], "epochs": 5}, "y.0"),
        ({"X": [[1], [2]], "y": [0, 1]}, "epochs"),
    ],
)
def test_train_refuses_inputs_it_cannot_fit(inputs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        get_task("train").validate(inputs)

    assert field in [error["field"] for error in refused.value.extra["errors"]]


def test_train_accepts_labels_written_as_whole_floats() -> None:
    validated = get_task("train").validate({"X": [[1], [2]], "y": [0.0, 1.0], "epochs": 1})

    assert validated.y == [0, 1]  # type: ignore[attr-defined]


def test_train_fails_clearly_when_the_weights_overflow() -> None:
    execution, _ = run_durable_task("train", {"X": [[1e200], [-1e200]], "y": [0, 1], "epochs": 3, "learning_rate": 1e6})

    assert execution.status.value == "FAILED"
    assert "overflowed" in str(execution.error)
