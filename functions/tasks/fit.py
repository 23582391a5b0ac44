"""Ordinary least squares with an intercept, and predictions from the fitted line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import msgspec

from core.registry import FiniteNumber, Progress, TaskInput, task

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

Row = Annotated[list[FiniteNumber], msgspec.Meta(min_length=1)]


def _numbers(count: int) -> str:
    return f"{count} number" if count == 1 else f"{count} numbers"


def _first_row_not_of_width(rows: list[list[FiniteNumber]], width: int) -> int | None:
    return next((index for index, row in enumerate(rows) if len(row) != width), None)


class FitInput(TaskInput):
    """X: one row per observation, all of one width (a column per feature); y: one number per row of X; predict
    (optional): rows as wide as X's, to predict y for. Lengths that disagree are a 422 naming the field."""

    X: Annotated[list[Row], msgspec.Meta(min_length=1)]
    y: list[FiniteNumber]
    predict: list[Row] | msgspec.UnsetType = msgspec.UNSET

    def invalid_fields(self) -> dict[str, str]:
        # Pure Python, one step per row, not per number: submit runs it on every inline input.
        width = len(self.X[0])
        problems = {}
        if (row := _first_row_not_of_width(self.X, width)) is not None:
            problems[f"X.{row}"] = f"Expected {_numbers(width)}, as many as X.0 has, got {len(self.X[row])}"
        if len(self.y) != len(self.X):
            problems["y"] = f"Expected {_numbers(len(self.X))}, one per row of X, got {len(self.y)}"
        if self.predict and (row := _first_row_not_of_width(self.predict, width)) is not None:
            problems[f"predict.{row}"] = (
                f"Expected {_numbers(width)}, one per column of X, got {len(self.predict[row])}"
            )
        return problems


class LinearFit(msgspec.Struct, omit_defaults=True):
    coefficients: list[float]  # one per column of X
    intercept: float
    r2: float
    predictions: list[float] | msgspec.UnsetType = msgspec.UNSET  # one per row of predict, when it was given


def _floats(numbers: list[FiniteNumber] | list[list[FiniteNumber]], field: str) -> npt.NDArray[np.float64]:
    import numpy as np

    try:
        return np.array(numbers, dtype=np.float64)
    except OverflowError as error:
        raise ValueError(f"{field}: an integer is beyond the range of a 64-bit float") from error


def _finite(array: npt.ArrayLike, what: str) -> npt.NDArray[np.float64]:
    import numpy as np

    array = np.asarray(array, dtype=np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f"{what} is beyond the range of a 64-bit float: scale the data down")
    return array


@task("fit")
def fit(inputs: FitInput, progress: Progress) -> LinearFit:
    """Least squares fit of y = X·coefficients + intercept (numpy.linalg.lstsq), its R², and predictions for the
    rows of `predict`. Where X does not determine the coefficients (a constant or repeated column, fewer rows than
    columns + 1), they are the smallest that fit best, so a constant column's is 0."""
    import numpy as np  # here, not at the top: the API's functions load this module and must not load numpy

    x = _floats(inputs.X, "X")
    y = _floats(inputs.y, "y")
    progress(0.2)
    # What overflows a float becomes inf here, and is reported by _finite rather than warned about.
    with np.errstate(over="ignore", invalid="ignore"):
        # Centred on their means, X and y need no column of ones: the intercept is what the means leave over (as
        # scikit-learn's LinearRegression fits). A constant column, or a constant y, is centred on its own value so
        # that it becomes exactly zero, not rounding noise that lstsq would fit with a huge coefficient.
        x_mean = np.where(x.min(axis=0) == x.max(axis=0), x[0], x.mean(axis=0))
        y_mean = y[0] if y.min() == y.max() else y.mean()
        x_centred = _finite(x - x_mean, "X less its column means")
        y_centred = _finite(y - y_mean, "y less its mean")
        progress(0.4)
        # rcond=None: singular values under machine precision times the larger dimension count as zero.
        coefficients = _finite(np.linalg.lstsq(x_centred, y_centred, rcond=None)[0], "a coefficient")
        progress(0.8)
        intercept = float(_finite(y_mean - x_mean @ coefficients, "the intercept"))
        residuals = _finite(y_centred - x_centred @ coefficients, "a residual")
        fitted = LinearFit(coefficients=coefficients.tolist(), intercept=intercept, r2=_r2(y_centred, residuals))
        if not isinstance(inputs.predict, msgspec.UnsetType):
            rows = _floats(inputs.predict, "predict").reshape(-1, x.shape[1])
            fitted.predictions = _finite(rows @ coefficients + intercept, "a prediction").tolist()
    progress(1.0)
    return fitted


def _r2(y_centred: npt.NDArray[np.float64], residuals: npt.NDArray[np.float64]) -> float:
    """1 - residual sum of squares / total sum of squares. A constant y is fitted exactly by the intercept alone:
    its R² is 1.0 (the 0/0 of the formula), as the fit explains all there is."""
    import numpy as np

    # Scaled by the largest deviation, so that neither sum of squares overflows nor underflows to 0.
    scale = float(np.abs(y_centred).max())
    if scale == 0.0:
        return 1.0
    total = float(np.square(y_centred / scale).sum())
    unexplained = float(np.square(residuals / scale).sum())
    # Least squares with an intercept never explains less than nothing nor more than all; rounding can.
    return min(max(1.0 - unexplained / total, 0.0), 1.0)
