"""Property tests: whatever JSON a client sends, validation answers 4xx or accepts exactly the valid inputs."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import InvalidInput
from core.registry import get_task
from devstack.resources import LocalResources
from submit.app import lambda_handler as submit_handler
from tasks.multiply import MultiplyInput
from tests.support.events import http_event, lambda_context

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)
numbers = st.integers() | st.floats(allow_nan=False, allow_infinity=False)


def is_finite_number(value: Any) -> bool:
    """An integer of any size (kept exact) or a finite float; a bool is not a number in JSON."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


@given(x=json_values | numbers, y=json_values | numbers)
def test_multiply_input_accepts_exactly_two_finite_numbers(x: Any, y: Any) -> None:
    if is_finite_number(x) and is_finite_number(y):
        model = get_task("multiply").validate({"x": x, "y": y})
        assert isinstance(model, MultiplyInput)
        assert (model.x, model.y) == (x, y)
        assert (type(model.x), type(model.y)) == (type(x), type(y))
    else:
        with pytest.raises(InvalidInput) as raised:
            get_task("multiply").validate({"x": x, "y": y})
        fields = {error["field"].split(".")[0] for error in raised.value.extra["errors"]}
        assert fields == {name for name, value in (("x", x), ("y", y)) if not is_finite_number(value)}


@given(body=json_values | st.dictionaries(st.sampled_from(["x", "y", "z"]), json_values | numbers, max_size=3))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_submit_answers_any_json_body_with_202_or_a_4xx_problem(aws: LocalResources, body: Any) -> None:
    try:
        raw = json.dumps(body)
    except ValueError:
        raw = str(body)

    response = submit_handler(http_event("POST", "/multiply", raw), lambda_context())

    assert response["statusCode"] in {202, 400, 422}
    payload = json.loads(response["body"])
    if response["statusCode"] == 202:
        assert payload["status"] == "queued"
    else:
        assert payload["status"] == response["statusCode"]
        assert response["headers"]["Content-Type"] == "application/problem+json"


@given(raw=st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_submit_answers_any_text_body_without_a_5xx(aws: LocalResources, raw: str) -> None:
    response = submit_handler(http_event("POST", "/multiply", raw), lambda_context())

    assert 200 <= response["statusCode"] < 500
