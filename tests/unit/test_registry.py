"""The task registry and the input models, as plain Python."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import msgspec
import pytest

from core.errors import MAX_ERROR_TEXT, MAX_FIELD_ERRORS, InvalidInput, TaskNotFound
from core.registry import FiniteNumber, Progress, Steps, TaskDefinition, TaskInput, get_task, task, tasks
from core.services.runner import encode_result
from tasks.multiply import MultiplyInput, slow_multiply

ROOT = Path(__file__).resolve().parents[2]


def test_registry_lists_multiply_with_its_input_model() -> None:
    definition = tasks()["multiply"]

    assert definition.function is slow_multiply
    assert definition.input_model is MultiplyInput
    assert "MULTIPLY_DELAY_SECONDS" in definition.description


def test_get_task_unknown_name_lists_known_tasks() -> None:
    with pytest.raises(TaskNotFound) as raised:
        get_task("divide")

    assert "multiply" in raised.value.detail
    assert "multiply" in raised.value.extra["known_tasks"]


@pytest.mark.parametrize(
    ("x", "y", "product"),
    [(2, 3, 6), (2.5, 4, 10.0), (-1, 0, 0), (2**53, 2, 2**54), (1e300, 1e-300, pytest.approx(1.0))],
)
def test_slow_multiply_returns_the_product(monkeypatch: pytest.MonkeyPatch, x: float, y: float, product: float) -> None:
    monkeypatch.setenv("MULTIPLY_DELAY_SECONDS", "0")

    assert slow_multiply(MultiplyInput(x=x, y=y), lambda fraction: None) == product


def test_slow_multiply_reports_progress_while_it_sleeps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MULTIPLY_DELAY_SECONDS", "0.05")
    reported: list[float] = []

    slow_multiply(MultiplyInput(x=1, y=1), reported.append)

    assert reported
    assert all(0.0 <= fraction < 1.0 for fraction in reported)
    assert reported == sorted(reported)


@pytest.mark.parametrize(
    ("body", "field", "error_type"),
    [
        ({"x": 1}, "y", "missing"),
        ({"x": 1, "y": 2, "z": 3}, "z", "unknown_field"),
        ({"x": True, "y": 2}, "x", "invalid"),
        ({"x": None, "y": 2}, "x", "invalid"),
        ({"x": "2", "y": 2}, "x", "invalid"),
        ({"x": [2], "y": 2}, "x", "invalid"),
        ({"x": float("nan"), "y": 2}, "x", "invalid"),
        ({"x": float("inf"), "y": 2}, "x", "invalid"),
        ({"x": -float("inf"), "y": 2}, "x", "invalid"),
    ],
)
def test_multiply_input_rejects_what_is_not_a_finite_number(
    body: dict[str, object], field: str, error_type: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        get_task("multiply").validate(body)

    assert {error["field"]: error["type"] for error in raised.value.extra["errors"]} == {field: error_type}


def test_invalid_input_reports_every_field_not_only_the_first() -> None:
    with pytest.raises(InvalidInput) as raised:
        get_task("multiply").validate({"x": "2", "z": 1})

    assert raised.value.extra["errors"] == [
        {"field": "x", "message": "Expected `int | float`, got `str`", "type": "invalid"},
        {"field": "y", "message": "Field required", "type": "missing"},
        {"field": "z", "message": "Unknown field", "type": "unknown_field"},
    ]


def test_invalid_input_names_the_item_of_a_list_field() -> None:
    class Features(TaskInput):
        features: list[FiniteNumber]

    definition = TaskDefinition(
        name="predict", function=lambda inputs, progress: None, input_model=Features, description=""
    )

    with pytest.raises(InvalidInput) as raised:
        definition.validate({"features": [1, 2.5, True]})

    assert raised.value.extra["errors"] == [
        {"field": "features.2", "message": "Expected `int | float`, got `bool`", "type": "invalid"}
    ]


def test_invalid_input_reports_a_body_that_is_not_an_object() -> None:
    with pytest.raises(InvalidInput) as raised:
        get_task("multiply").validate([1, 2])

    assert raised.value.extra["errors"] == [
        {"field": "(body)", "message": "Expected `object`, got `array`", "type": "invalid"}
    ]


@pytest.mark.parametrize("value", [12345678901234567, 10**400, -(10**30)])
def test_multiply_input_keeps_integers_exact(value: int) -> None:
    model = get_task("multiply").validate(json.loads(f'{{"x": {value}, "y": 3}}'))

    assert isinstance(model, MultiplyInput)
    assert model.x == value
    assert isinstance(model.x, int)


def test_task_decorator_refuses_a_function_without_an_input_model() -> None:
    with pytest.raises(TypeError, match="input model"):

        @task("untyped")
        def untyped(inputs, progress):  # type: ignore[no-untyped-def]
            return None


def test_task_decorator_refuses_a_name_unfit_for_a_url() -> None:
    class Empty(TaskInput):
        pass

    with pytest.raises(ValueError, match="must match"):

        @task("Not/A/Path")
        def bad(inputs: Empty, progress: object) -> None:
            return None


class NoInput(TaskInput):
    pass


def test_a_durable_task_takes_steps_as_its_third_parameter_and_a_plain_one_does_not() -> None:
    with pytest.raises(TypeError, match=r"\(inputs, progress, steps\)"):

        @task("durable-without-steps", durable=True)
        def without_steps(inputs: NoInput, progress: Progress) -> None:
            return None

    with pytest.raises(TypeError, match=r"\(inputs, progress\)"):

        @task("plain-with-steps")
        def with_steps(inputs: NoInput, progress: Progress, steps: Steps) -> None:
            return None

    with pytest.raises(ValueError, match="no exclusive or max_seconds"):

        @task("durable-with-a-limit", durable=True, max_seconds=10)
        def limited(inputs: NoInput, progress: Progress, steps: Steps) -> None:
            return None

    assert get_task("train").durable
    assert not get_task("multiply").durable


def test_loading_the_registry_imports_no_heavy_dependency() -> None:
    # Submit loads every task module; a task must import numpy, a model etc. inside its function.
    script = (
        "import sys, json; before = {m.split('.')[0] for m in sys.modules}; "
        "from core.registry import tasks; tasks(); "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} - before)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT / "functions", capture_output=True, text=True, check=True
    ).stdout
    imported = set(json.loads(out))
    third_party = {m for m in imported - set(sys.stdlib_module_names) - {"core", "tasks"} if not m.startswith("_")}

    # msgspec uses typing_extensions when it is installed (it is not in the Lambda package).
    assert third_party <= {"msgspec", "typing_extensions"}


def test_a_task_may_return_a_struct_whose_fields_become_the_result() -> None:
    class Score(msgspec.Struct):
        label: str
        score: float
        features: list[FiniteNumber]

    assert json.loads(encode_result(Score("cat", 0.75, [1, 2.5]))) == {
        "label": "cat",
        "score": 0.75,
        "features": [1, 2.5],
    }


def test_a_result_that_is_not_json_fails_the_task_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="not JSON"):
        encode_result({"score": float("nan")})


class Pair(TaskInput):
    first: list[int]
    second: list[int]

    def invalid_fields(self) -> dict[str, str]:
        calls.append(self)
        if len(self.first) == len(self.second):
            return {}
        return {"second": f"Expected {len(self.first)} items, as many as first, got {len(self.second)}"}


calls: list[Pair] = []
PAIR = TaskDefinition(name="pair", function=lambda inputs, progress: None, input_model=Pair, description="")


def test_invalid_fields_of_an_input_become_per_field_errors_of_invalid_input() -> None:
    with pytest.raises(InvalidInput) as raised:
        PAIR.validate({"first": [1, 2], "second": [3]})

    assert raised.value.detail == "invalid input for task 'pair'"
    assert raised.value.extra["errors"] == [
        {"field": "second", "message": "Expected 2 items, as many as first, got 1", "type": "invalid"}
    ]


def test_an_input_whose_fields_agree_is_returned_as_its_model() -> None:
    assert PAIR.validate({"first": [1, 2], "second": [3, 4]}) == Pair(first=[1, 2], second=[3, 4])


def test_invalid_fields_is_asked_only_once_every_field_is_valid_on_its_own() -> None:
    calls.clear()

    with pytest.raises(InvalidInput) as raised:
        PAIR.validate({"first": [1, 2], "second": ["3"]})

    assert calls == []
    assert [error["field"] for error in raised.value.extra["errors"]] == ["second.0"]


def test_invalid_input_as_text_names_each_field_for_a_failed_tasks_message() -> None:
    # The worker records str(error) as a task's failure: an input that reached it without submit's check says
    # what the 422 would have said.
    with pytest.raises(InvalidInput) as raised:
        get_task("multiply").validate({"x": "2"})

    assert str(raised.value) == (
        "invalid input for task 'multiply': x: Expected `int | float`, got `str`; y: Field required"
    )


class Counts(TaskInput):
    n: int
    sizes: list[Annotated[int, msgspec.Meta(ge=0)]]
    weight: float


def test_an_integral_float_where_an_int_is_wanted_is_that_int_and_nothing_else_is_coerced() -> None:
    definition = TaskDefinition("counts", lambda inputs, progress: None, Counts, "")

    # JSON Schema's "integer" includes 3.0, and JSON has one kind of number
    assert definition.validate({"n": 3.0, "sizes": [1.0, 2], "weight": 2.0}) == Counts(n=3, sizes=[1, 2], weight=2.0)
    # but a fraction, a string, or a float too large to be exact is still refused, each named
    with pytest.raises(InvalidInput) as refused:
        definition.validate({"n": 3.5, "sizes": ["1", 2.0**60], "weight": 1})
    assert {error["field"] for error in refused.value.extra["errors"]} == {"n", "sizes.0"}


def test_invalid_input_lists_fifty_field_errors_each_cut_short_and_counts_the_rest() -> None:
    inputs = {"x": 1, "y": 2} | {f"extra_{n}": n for n in range(120)} | {"z" * 1_000: 0}

    with pytest.raises(InvalidInput) as raised:
        get_task("multiply").validate(inputs)

    errors = raised.value.extra["errors"]
    assert len(errors) == MAX_FIELD_ERRORS
    assert raised.value.extra["errors_omitted"] == 121 - MAX_FIELD_ERRORS
    assert all(len(error["field"]) <= MAX_ERROR_TEXT for error in errors)
    assert str(raised.value).endswith(f"; and {121 - MAX_FIELD_ERRORS} more")


def test_invalid_input_with_few_errors_says_nothing_was_left_out() -> None:
    with pytest.raises(InvalidInput) as raised:
        get_task("multiply").validate({"x": 1, "y": 2, "extra": 3})

    assert "errors_omitted" not in raised.value.extra
