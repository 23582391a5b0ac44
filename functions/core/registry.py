"""The task registry: every module in the `tasks` package registers its tasks with `@task`.

A task is one typed function, `def name(inputs: SomeInput, progress: Progress) -> result`, whose first
parameter's annotation is its input model. Loading the registry imports each task module, so a module
imports heavy dependencies (numpy, a model) inside the function, never at its top.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Annotated, Any, get_type_hints

from pydantic import BaseModel, ConfigDict, PlainValidator, ValidationError, WithJsonSchema
from pydantic_core import PydanticCustomError

from core.errors import InvalidInput, TaskNotFound

Progress = Callable[[float], None]
"""Called by a task with the fraction of its work done, 0..1. Cheap to call often: writes are throttled."""

TASK_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


class TaskInput(BaseModel):
    """Base of task input models: exact types, no unknown fields, no NaN or infinity."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


def _finite_number(value: Any) -> int | float:
    # bool is an int in Python, but true is not a number in JSON.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("number_type", "Input should be a number")
    try:
        finite = math.isfinite(float(value))
    except OverflowError:
        finite = False
    if not finite:
        raise PydanticCustomError("finite_number", "Input should be a finite number that fits a 64-bit float")
    return value


FiniteNumber = Annotated[int | float, PlainValidator(_finite_number), WithJsonSchema({"type": "number"})]
"""A JSON number (never a boolean, string or null) that a 64-bit float can hold."""


@dataclass(frozen=True)
class TaskDefinition:
    name: str
    function: Callable[[Any, Progress], Any]
    input_model: type[BaseModel]
    description: str
    # Seconds a client should wait between polls while the task is pending.
    retry_after_seconds: int = 1

    def validate(self, inputs: Any) -> BaseModel:
        """The task's typed input; InvalidInput with per-field details when `inputs` do not fit its model."""
        try:
            return self.input_model.model_validate(inputs)
        except ValidationError as error:
            raise InvalidInput(f"invalid input for task {self.name!r}", errors=validation_errors(error)) from error


def validation_errors(error: ValidationError) -> list[dict[str, Any]]:
    """Per-field details a client can act on, without echoing large inputs back."""
    return [
        {"field": ".".join(str(part) for part in item["loc"]) or "(body)", "message": item["msg"], "type": item["type"]}
        for item in error.errors(include_url=False, include_input=False)
    ]


_definitions: dict[str, TaskDefinition] = {}


def task(
    name: str | None = None, *, retry_after_seconds: int = 1
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a function as a task reachable at `POST /<name>`."""

    def register(function: Callable[..., Any]) -> Callable[..., Any]:
        task_name = name or function.__name__
        if not TASK_NAME.match(task_name):
            raise ValueError(f"task name {task_name!r} must match {TASK_NAME.pattern}")
        if task_name in _definitions and _definitions[task_name].function is not function:
            raise ValueError(f"task {task_name!r} is registered twice")
        hints = get_type_hints(function)
        parameters = list(function.__code__.co_varnames[: function.__code__.co_argcount])
        input_model = hints.get(parameters[0]) if parameters else None
        if not (isinstance(input_model, type) and issubclass(input_model, BaseModel)):
            raise TypeError(f"task {task_name!r}: annotate the first parameter with a pydantic input model")
        _definitions[task_name] = TaskDefinition(
            name=task_name,
            function=function,
            input_model=input_model,
            description=(function.__doc__ or "").strip(),
            retry_after_seconds=retry_after_seconds,
        )
        return function

    return register


@lru_cache(maxsize=1)
def _import_task_modules() -> None:
    package = importlib.import_module("tasks")
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"tasks.{module.name}")


def tasks() -> Mapping[str, TaskDefinition]:
    """Every registered task by name, once each module of the `tasks` package has been imported."""
    _import_task_modules()
    return MappingProxyType(_definitions)


def get_task(name: str) -> TaskDefinition:
    definition = tasks().get(name)
    if definition is None:
        known = sorted(tasks())
        raise TaskNotFound(f"no task named {name!r}; known tasks: {', '.join(known) or 'none'}", known_tasks=known)
    return definition
