"""Logistic regression for binary labels by gradient descent: a durable task, one checkpointed step per block of
epochs (as many as fit in a step's time), so that a training run may take hours and resume where it stopped."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from core.registry import FiniteNumber, Progress, Steps, TaskInput, task

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

Row = Annotated[list[FiniteNumber], msgspec.Meta(min_length=1)]
MAX_EPOCHS = 100_000
# A step's epochs run for at most this long (and never longer than a step may: Steps.step_seconds): the weights are
# checkpointed this often, and a crash loses at most this much work.
STEP_SECONDS = 600.0


def _numbers(count: int) -> str:
    return f"{count} number" if count == 1 else f"{count} numbers"


def _first_row_not_of_width(rows: list[list[FiniteNumber]], width: int) -> int | None:
    return next((index for index, row in enumerate(rows) if len(row) != width), None)


class TrainInput(TaskInput):
    """X: one row per observation, all of one width; y: a label, 0 or 1, per row of X; epochs: passes of gradient
    descent over the whole of X (1 to 100,000); learning_rate: the step size (default 0.1); predict (optional): rows
    as wide as X's, whose probabilities of label 1 the result gives."""

    X: Annotated[list[Row], msgspec.Meta(min_length=1)]
    y: list[int]
    epochs: Annotated[int, msgspec.Meta(ge=1, le=MAX_EPOCHS)]
    learning_rate: Annotated[float, msgspec.Meta(gt=0, le=1_000_000)] = 0.1
    predict: list[Row] | msgspec.UnsetType = msgspec.UNSET

    def invalid_fields(self) -> dict[str, str]:
        width = len(self.X[0])
        problems = {}
        if (row := _first_row_not_of_width(self.X, width)) is not None:
            problems[f"X.{row}"] = f"Expected {_numbers(width)}, as many as X.0 has, got {len(self.X[row])}"
        if len(self.y) != len(self.X):
            problems["y"] = f"Expected {_numbers(len(self.X))}, one label per row of X, got {len(self.y)}"
        elif (label := next((index for index, value in enumerate(self.y) if value not in (0, 1)), None)) is not None:
            problems[f"y.{label}"] = f"Expected a label 0 or 1, got {self.y[label]}"
        if self.predict and (row := _first_row_not_of_width(self.predict, width)) is not None:
            problems[f"predict.{row}"] = (
                f"Expected {_numbers(width)}, one per column of X, got {len(self.predict[row])}"
            )
        return problems


class LogisticFit(msgspec.Struct, omit_defaults=True):
    coefficients: list[float]  # one per column of X
    intercept: float
    log_loss: float  # on X and y, with the final weights
    accuracy: float  # share of X's rows whose label the final weights predict (probability >= 0.5 means 1)
    predictions: list[float] | msgspec.UnsetType = msgspec.UNSET  # probability of label 1 per row of predict


def _floats(numbers: list[list[FiniteNumber]] | list[int], field: str) -> npt.NDArray[np.float64]:
    import numpy as np

    try:
        array = np.array(numbers, dtype=np.float64)
    except OverflowError as error:
        raise ValueError(f"{field}: an integer is beyond the range of a 64-bit float") from error
    if not np.isfinite(array).all():
        raise ValueError(f"{field} is beyond the range of a 64-bit float: scale the data down")
    return array


def _probabilities(X: npt.NDArray[np.float64], weights: npt.NDArray[np.float64], intercept: float) -> Any:
    import numpy as np

    # The logistic function as tanh: no overflow for any logit.
    return 0.5 * (1.0 + np.tanh(0.5 * (X @ weights + intercept)))


def _loss(X: npt.NDArray[np.float64], y: npt.NDArray[np.float64], weights: Any, intercept: float) -> float:
    import numpy as np

    logits = X @ weights + intercept
    # Mean cross-entropy, log(1 + e^z) - y·z, stable for any logit.
    return float(np.mean(np.logaddexp(0.0, logits) - y * logits))


def train_epochs(
    X: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    learning_rate: float,
    state: dict[str, Any],
    epochs: int,
    seconds: float,
) -> dict[str, Any]:
    """From `state` (the weights after its epochs), the epochs that fit in `seconds` (at least one), up to `epochs`:
    the weights after them, and the loss."""
    import numpy as np

    weights = np.array(state["weights"], dtype=np.float64)
    intercept = float(state["intercept"])
    epoch = int(state["epoch"])
    deadline = time.monotonic() + seconds
    rows = len(y)
    with np.errstate(all="ignore"):  # an overflow is told below, as the task's failure
        while epoch < epochs:
            error = _probabilities(X, weights, intercept) - y
            weights -= learning_rate * (X.T @ error) / rows
            intercept -= learning_rate * float(np.mean(error))
            epoch += 1
            if time.monotonic() >= deadline:
                break
        loss = _loss(X, y, weights, intercept)
    if not (np.isfinite(weights).all() and np.isfinite(intercept) and np.isfinite(loss)):
        raise ValueError("the weights overflowed: lower learning_rate, or scale X down")
    return {"weights": weights.tolist(), "intercept": intercept, "epoch": epoch, "loss": loss}


@task("train", durable=True, retry_after_seconds=5)
def train(inputs: TrainInput, progress: Progress, steps: Steps) -> LogisticFit:
    """Fit P(y=1 | x) = 1 / (1 + e^-(x·coefficients + intercept)) by full-batch gradient descent on the mean
    log loss, `epochs` passes from zero weights; the weights are checkpointed after each block of epochs, so an
    interrupted run resumes from its last block. Returns the coefficients, intercept, final log loss and training
    accuracy, and the probability of label 1 for each row of `predict`."""
    import numpy as np  # here, not at the top: the API's functions load this module and must not load numpy

    X = _floats(inputs.X, "X")
    y = _floats(inputs.y, "y")
    seconds = min(STEP_SECONDS, steps.step_seconds)
    state: dict[str, Any] = {"weights": [0.0] * X.shape[1], "intercept": 0.0, "epoch": 0}
    while state["epoch"] < inputs.epochs:
        state = steps.run(
            f"epochs from {state['epoch'] + 1}", train_epochs, X, y, inputs.learning_rate, state, inputs.epochs, seconds
        )
        progress(state["epoch"] / inputs.epochs)
    weights = np.array(state["weights"], dtype=np.float64)
    intercept = float(state["intercept"])
    fitted = LogisticFit(
        coefficients=weights.tolist(),
        intercept=intercept,
        log_loss=float(state["loss"]),
        accuracy=float(np.mean((_probabilities(X, weights, intercept) >= 0.5) == (y == 1.0))),
    )
    if inputs.predict:
        fitted.predictions = _probabilities(_floats(inputs.predict, "predict"), weights, intercept).tolist()
    return fitted
