"""The describe task: numpy's own figures for a list of numbers, and a clear failure where a float can't hold one."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.errors import InvalidInput
from core.registry import get_task
from core.services.runner import encode_result
from tasks.describe import DescribeInput, Description, describe
from tests.support.measure import measure

DESCRIBE = get_task("describe")


def run(values: list[float]) -> Description:
    inputs = DESCRIBE.validate({"values": values})
    assert isinstance(inputs, DescribeInput)
    description = describe(inputs, lambda fraction: None)
    assert isinstance(description, Description)
    return description


def test_describe_is_registered_with_its_input_model() -> None:
    assert DESCRIBE.function is describe
    assert DESCRIBE.input_model is DescribeInput


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_describe_matches_numpy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = [*rng.normal(10, 3, size=997).tolist(), *rng.integers(-50, 50, size=10).tolist()]

    description = run(values)

    array = np.array(values)
    assert description.count == len(values)
    assert description.mean == pytest.approx(np.mean(array), rel=1e-12)
    assert description.std == pytest.approx(np.std(array, ddof=1), rel=1e-12)
    assert description.min == np.min(array)
    assert description.max == np.max(array)
    assert description.quantiles == {str(q): pytest.approx(np.quantile(array, q), rel=1e-12) for q in (0.25, 0.5, 0.75)}


def test_describe_result_is_the_documented_json() -> None:
    result = json.loads(encode_result(run([1, 2, 3, 4, 10])))

    assert result == {
        "count": 5,
        "mean": 4.0,
        "std": pytest.approx(3.5355339059327378),
        "min": 1.0,
        "max": 10.0,
        # numpy's linear method: the 0.25 quantile of five values is the second.
        "quantiles": {"0.25": 2.0, "0.5": 3.0, "0.75": 4.0},
    }


def test_describe_of_one_value_has_no_standard_deviation() -> None:
    result = json.loads(encode_result(run([7.5])))

    assert result["std"] is None
    assert result["count"] == 1
    assert result["mean"] == result["min"] == result["max"] == 7.5
    assert result["quantiles"] == {"0.25": 7.5, "0.5": 7.5, "0.75": 7.5}


def test_describe_takes_integers_of_any_size_a_float_can_hold() -> None:
    description = run([2**64 + 1, -(10**30), 3])

    assert (description.min, description.max) == (-1e30, float(2**64))
    assert description.mean == pytest.approx((2**64 - 10**30 + 3) / 3)


def test_describe_reports_progress_from_0_to_1() -> None:
    reported: list[float] = []

    describe(DescribeInput(values=[1, 2, 3]), reported.append)

    assert reported == sorted(reported)
    assert reported[-1] == 1.0
    assert all(0.0 <= fraction <= 1.0 for fraction in reported)


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ([1.7e308, 1.7e308], "the mean of these values is beyond the range of a 64-bit float"),
        ([-1.7e308, 1.7e308], "the std of these values is beyond the range of a 64-bit float"),
        ([10**400, 1], "values: an integer is beyond the range of a 64-bit float"),
    ],
)
def test_describe_fails_clearly_where_a_float_cannot_hold_a_figure(values: list[float], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        run(values)


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"values": []}, [("values", "Expected `array` of length >= 1")]),
        ({"values": [1, True]}, [("values.1", "Expected `int | float`, got `bool`")]),
        ({"values": [1, None]}, [("values.1", "Expected `int | float`, got `null`")]),
        ({}, [("values", "Field required")]),
    ],
)
def test_describe_refuses_what_is_not_a_list_of_numbers(body: dict[str, object], errors: list[tuple[str, str]]) -> None:
    with pytest.raises(InvalidInput) as raised:
        DESCRIBE.validate(body)

    assert [(error["field"], error["message"]) for error in raised.value.extra["errors"]] == errors


def test_describe_of_two_million_values_is_quick_and_holds_few_copies() -> None:
    values = np.random.default_rng(7).normal(size=2_000_000).tolist()
    inputs = DESCRIBE.validate({"values": values})
    assert isinstance(inputs, DescribeInput)

    cost = measure(lambda: describe(inputs, lambda fraction: None))

    # ≈ 0.15 s on the build machine; a loop over the values in Python takes seconds.
    assert cost.seconds < 2.0
    # The numbers as one float64 array, and numpy's working copies of it: not a Python object per value.
    assert cost.peak_bytes < 4 * 8 * len(values)
    assert cost.result.mean == pytest.approx(np.mean(values), rel=1e-9)
