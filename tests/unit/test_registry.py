"""The task registry and the input models, as plain Python."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.errors import TaskNotFound
from core.registry import TaskInput, get_task, task, tasks
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
        ({"x": 1, "y": 2, "z": 3}, "z", "extra_forbidden"),
        ({"x": True, "y": 2}, "x", "number_type"),
        ({"x": None, "y": 2}, "x", "number_type"),
        ({"x": "2", "y": 2}, "x", "number_type"),
        ({"x": [2], "y": 2}, "x", "number_type"),
        ({"x": float("nan"), "y": 2}, "x", "finite_number"),
        ({"x": float("inf"), "y": 2}, "x", "finite_number"),
        ({"x": 10**400, "y": 2}, "x", "finite_number"),
    ],
)
def test_multiply_input_rejects_what_is_not_a_finite_number(
    body: dict[str, object], field: str, error_type: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        MultiplyInput.model_validate(body)

    errors = {".".join(map(str, error["loc"])): error["type"] for error in raised.value.errors()}
    assert errors[field] == error_type


def test_multiply_input_keeps_integers_exact() -> None:
    model = MultiplyInput.model_validate(json.loads('{"x": 12345678901234567, "y": 3}'))

    assert model.x == 12345678901234567
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

    assert third_party <= {"pydantic", "pydantic_core", "typing_extensions", "annotated_types", "typing_inspection"}
