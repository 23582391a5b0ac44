"""The fit task: ordinary least squares with an intercept, as numpy.linalg.lstsq solves it, on any shape of data
that agrees, and a 422 naming the field for one that does not."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import InvalidInput
from core.registry import get_task
from core.services.runner import encode_result
from tasks.fit import FitInput, LinearFit, fit
from tests.support.measure import measure

FIT = get_task("fit")


def run(body: dict[str, Any]) -> LinearFit:
    inputs = FIT.validate(body)
    assert isinstance(inputs, FitInput)
    fitted = fit(inputs, lambda fraction: None)
    assert isinstance(fitted, LinearFit)
    return fitted


def lstsq_with_intercept(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """numpy's own least squares on X with a column of ones: [intercept, *coefficients]."""
    design = np.column_stack([np.ones(len(x)), x])
    solution: npt.NDArray[np.float64] = np.linalg.lstsq(design, y, rcond=None)[0]
    return solution


def r2(y: npt.NDArray[np.float64], fitted: npt.NDArray[np.float64]) -> float:
    return float(1 - np.sum((y - fitted) ** 2) / np.sum((y - y.mean()) ** 2))


def test_fit_is_registered_with_its_input_model() -> None:
    assert FIT.function is fit
    assert FIT.input_model is FitInput


@pytest.mark.parametrize(("rows", "columns"), [(50, 1), (200, 3), (31, 30)])
def test_fit_matches_numpy_lstsq_with_a_column_of_ones(rows: int, columns: int) -> None:
    rng = np.random.default_rng(rows)
    x = rng.normal(size=(rows, columns))
    y = x @ rng.normal(size=columns) + 3 + rng.normal(size=rows)
    new = rng.normal(size=(4, columns))

    result = run({"X": x.tolist(), "y": y.tolist(), "predict": new.tolist()})

    intercept, *coefficients = lstsq_with_intercept(x, y)
    assert result.coefficients == pytest.approx(coefficients, rel=1e-9, abs=1e-12)
    assert result.intercept == pytest.approx(intercept, rel=1e-9)
    assert result.r2 == pytest.approx(r2(y, intercept + x @ coefficients), rel=1e-9)
    assert result.predictions == pytest.approx((intercept + new @ coefficients).tolist(), rel=1e-9)


def test_fit_recovers_the_coefficients_of_data_without_noise() -> None:
    x = [[1, 0], [0, 1], [1, 1], [2, 5], [-3, 4]]
    y = [2 * a - 3 * b + 7 for a, b in x]

    result = json.loads(encode_result(run({"X": x, "y": y, "predict": [[10, 10]]})))

    assert result == {
        "coefficients": [pytest.approx(2.0), pytest.approx(-3.0)],
        "intercept": pytest.approx(7.0),
        "r2": 1.0,
        "predictions": [pytest.approx(-3.0)],
    }


def test_fit_without_predict_has_no_predictions_and_with_an_empty_one_has_none_predicted() -> None:
    body = {"X": [[1], [2], [3]], "y": [1, 2, 4]}

    assert "predictions" not in json.loads(encode_result(run(body)))
    assert json.loads(encode_result(run({**body, "predict": []})))["predictions"] == []


def test_fit_of_a_constant_column_gives_it_no_weight() -> None:
    x = np.column_stack([np.arange(6.0), np.full(6, 0.1)])
    y = np.array([1.0, 3.1, 4.9, 7.2, 9.0, 11.1])

    result = run({"X": x.tolist(), "y": y.tolist(), "predict": x.tolist()})

    assert result.coefficients[1] == 0.0
    # Any least squares solution fits the data the same way: numpy's, on the design matrix, too.
    solution = lstsq_with_intercept(x, y)
    assert result.predictions == pytest.approx((solution[0] + x @ solution[1:]).tolist(), rel=1e-12)
    assert result.r2 == pytest.approx(r2(y, solution[0] + x @ solution[1:]), rel=1e-12)


def test_fit_of_a_repeated_column_shares_its_weight_as_the_smallest_coefficients_that_fit() -> None:
    x1 = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    y = 5 * x1 + 1

    result = run({"X": np.column_stack([x1, 2 * x1]).tolist(), "y": y.tolist()})

    # a + 2b = 5 with the least a² + b²: (1, 2).
    assert result.coefficients == pytest.approx([1.0, 2.0])
    assert result.intercept == pytest.approx(1.0)
    assert result.r2 == pytest.approx(1.0)


def test_fit_with_fewer_rows_than_columns_plus_one_fits_them_exactly() -> None:
    result = run({"X": [[1, 2, 3], [4, 5, 7]], "y": [10, 20], "predict": [[1, 2, 3], [4, 5, 7]]})

    assert result.r2 == 1.0
    assert result.predictions == pytest.approx([10.0, 20.0])


def test_fit_of_one_row_is_its_intercept() -> None:
    result = run({"X": [[3, 4]], "y": [5]})

    assert (result.coefficients, result.intercept, result.r2) == ([0.0, 0.0], 5.0, 1.0)


def test_fit_of_a_constant_y_is_exact_with_r2_1() -> None:
    result = run({"X": [[1], [2], [3]], "y": [0.1, 0.1, 0.1], "predict": [[100]]})

    assert (result.coefficients, result.intercept, result.r2, result.predictions) == ([0.0], 0.1, 1.0, [0.1])


def test_fit_r2_of_unrelated_data_is_near_0_and_never_below() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(2000, 1)), rng.normal(size=2000)

    result = run({"X": x.tolist(), "y": y.tolist()})

    assert 0.0 <= result.r2 < 0.01


def test_fit_r2_holds_for_numbers_whose_squares_underflow() -> None:
    x = np.array([[1.0], [2.0], [3.0], [4.0]])
    y = np.array([1.0, 2.1, 2.9, 4.2])

    tiny = run({"X": x.tolist(), "y": (y * 1e-200).tolist()})

    assert tiny.r2 == pytest.approx(run({"X": x.tolist(), "y": y.tolist()}).r2, rel=1e-12)


def test_fit_reports_progress_from_0_to_1() -> None:
    reported: list[float] = []

    fit(FitInput(X=[[1], [2]], y=[1, 2]), reported.append)

    assert reported == sorted(reported)
    assert reported[-1] == 1.0
    assert all(0.0 <= fraction <= 1.0 for fraction in reported)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"X": [[10**400], [1]], "y": [1, 2]}, "X: an integer is beyond the range of a 64-bit float"),
        ({"X": [[1], [2]], "y": [1, 2], "predict": [[10**400]]}, "predict: an integer is beyond"),
        ({"X": [[1.7e308], [-1.7e308], [1.7e308]], "y": [1, 2, 3]}, "X less its column means is beyond"),
        ({"X": [[0], [1]], "y": [0, 1e300], "predict": [[1e300]]}, "a prediction is beyond"),
    ],
)
def test_fit_fails_clearly_where_a_float_cannot_hold_a_figure(body: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        run(body)


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            {"X": [[1, 2], [3, 4], [5, 6], [7], [8, 9, 10]], "y": [1, 2, 3, 4, 5]},
            {"X.3": "Expected 2 numbers, as many as X.0 has, got 1"},
        ),
        ({"X": [[1], [2]], "y": [1, 2, 3]}, {"y": "Expected 2 numbers, one per row of X, got 3"}),
        ({"X": [[1]], "y": []}, {"y": "Expected 1 number, one per row of X, got 0"}),
        (
            {"X": [[1, 2], [3, 4]], "y": [1, 2], "predict": [[1, 2], [3]]},
            {"predict.1": "Expected 2 numbers, one per column of X, got 1"},
        ),
        (
            {"X": [[1, 2], [3]], "y": [1], "predict": [[1, 2, 3]]},
            {
                "X.1": "Expected 2 numbers, as many as X.0 has, got 1",
                "y": "Expected 2 numbers, one per row of X, got 1",
                "predict.0": "Expected 2 numbers, one per column of X, got 3",
            },
        ),
        ({"X": [], "y": []}, {"X": "Expected `array` of length >= 1"}),
        ({"X": [[]], "y": [1]}, {"X.0": "Expected `array` of length >= 1"}),
        ({"X": [[1]], "y": [1], "predict": None}, {"predict": "Expected `array`, got `null`"}),
        ({"X": [[1, "2"]], "y": [1]}, {"X.0.1": "Expected `int | float`, got `str`"}),
    ],
)
def test_fit_refuses_shapes_that_do_not_agree_naming_the_field(body: dict[str, Any], errors: dict[str, str]) -> None:
    with pytest.raises(InvalidInput) as raised:
        FIT.validate(body)

    assert {error["field"]: error["message"] for error in raised.value.extra["errors"]} == errors
    assert {error["type"] for error in raised.value.extra["errors"]} == {"invalid"}


rows = st.lists(st.lists(st.integers(-5, 5), max_size=3), max_size=4)


@given(x=rows, y=st.lists(st.integers(-5, 5), max_size=4), predict=st.none() | rows)
def test_fit_accepts_exactly_the_inputs_whose_shapes_agree(
    x: list[list[int]], y: list[int], predict: list[list[int]] | None
) -> None:
    body: dict[str, Any] = {"X": x, "y": y, **({} if predict is None else {"predict": predict})}
    width = len(x[0]) if x else 0
    agree = (
        width > 0
        and all(len(row) == width for row in x)
        and len(y) == len(x)
        and all(len(row) == width for row in predict or [])
    )

    if agree:
        assert isinstance(FIT.validate(body), FitInput)
    else:
        with pytest.raises(InvalidInput):
            FIT.validate(body)


def test_fit_of_100000_rows_by_10_is_quick_and_holds_few_copies() -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(size=(100_000, 10))
    coefficients = np.arange(1.0, 11.0)
    y = x @ coefficients + 5 + rng.normal(scale=0.01, size=100_000)
    inputs = FIT.validate({"X": x.tolist(), "y": y.tolist()})
    assert isinstance(inputs, FitInput)

    cost = measure(lambda: fit(inputs, lambda fraction: None))

    # ≈ 0.1 s on the build machine.
    assert cost.seconds < 2.0
    # X as one float64 array, its centred copy and lstsq's work space: not a Python object per number.
    assert cost.peak_bytes < 4 * x.nbytes
    assert cost.result.coefficients == pytest.approx(coefficients.tolist(), abs=1e-3)
    assert cost.result.intercept == pytest.approx(5.0, abs=1e-3)
