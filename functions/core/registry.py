"""The task registry: every module in the `tasks` package registers its tasks with `@task`.

A task is one typed function, `def name(inputs: SomeInput, progress: Progress) -> result`, whose first
parameter's annotation is its input model. A durable task (`@task(durable=True)`) takes a third parameter,
`steps: Steps`, and may run for as long as it takes: each `steps.run(...)` is checkpointed, and a run that is
interrupted resumes from its last completed step. Loading the registry imports each task module, so a module
imports heavy dependencies (numpy, a model) inside the function, never at its top.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys
from collections.abc import Callable, Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import Annotated, Any, Protocol, TypeVar, get_type_hints

import msgspec
import msgspec.inspect

from core.errors import InvalidInput, TaskNotFound

Progress = Callable[[float], None]
"""Called by a task with the fraction of its work done, 0..1. Cheap to call often: writes are throttled."""

T = TypeVar("T")


class Steps(Protocol):
    """A durable task's checkpointed steps (its third parameter).

    `steps.run(name, fn, *args)` calls `fn(*args)` once and checkpoints its return value; when the task is resumed
    (its invocation crashed, ran out of memory or time, or suspended to start the next step afresh), a step that
    completed returns its stored value without calling `fn`, and the interrupted one runs again. So: the control flow
    between steps must be deterministic (the same steps, in the same order, from the same values), and every side
    effect (time, randomness, I/O) belongs inside a step. Step names are unique within a run; a step's value is what
    a task's result may be (JSON). A step fails the task on its own exceptions, and is retried on
    `core.errors.RetryableTaskError` (and timeouts, connection errors, AWS throttling)."""

    def run(self, name: str, fn: Callable[..., T], *args: Any) -> T: ...

    @property
    def step_seconds(self) -> float:
        """How long one step may take: an invocation's time (the stack's WorkerTimeout) less a margin. The same in
        every invocation of a run, so the control flow may depend on it (a step that runs as much work as fits)."""
        ...


TASK_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
# Paths of the API's own routes beside /<task>: no task may take their names.
RESERVED_NAMES = frozenset({"tasks", "uploads", "dashboard"})


class TaskInput(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of task input models: exact types (no "2" for 2, no true for 1), no unknown fields.

    A msgspec Struct: fields are annotated as in a dataclass, constraints with `Annotated[int, msgspec.Meta(ge=1)]`.
    msgspec rather than pydantic because its import costs ≈ 5 ms of a cold start where pydantic's costs ≈ 135 ms
    (README, "Design choices")."""

    def invalid_fields(self) -> dict[str, str]:
        """What no field's type can say on its own, such as lengths that must agree across fields: a message by
        field path (`{"y": "Expected 4 numbers, one per row of X, got 3"}`, `"X.3"` for an item), empty when the
        input is consistent. Each becomes a per-field error of the 422, as a wrong type does.

        Called once every field is valid on its own, at submit and again in the worker before the run: keep it
        cheap, and import nothing heavy."""
        return {}


_FLOAT_MAX = sys.float_info.max

FiniteNumber = int | Annotated[float, msgspec.Meta(ge=-_FLOAT_MAX, le=_FLOAT_MAX)]
"""A JSON number, never a boolean, string or null: an integer (kept exact) or a finite float."""


class TaskDefinition(msgspec.Struct, frozen=True):
    name: str
    # (inputs, progress) for a plain task; (inputs, progress, steps) for a durable one.
    function: Callable[..., Any]
    input_model: type[msgspec.Struct]
    description: str
    # Seconds a client should wait between polls while the task is pending and nothing tells its end.
    retry_after_seconds: int = 1
    # How long one run usually takes: clients polling the task are told to come back when it should have ended.
    expected_seconds: float | None = None
    # Claimed before it runs, so that two deliveries of its message at once (SQS delivers at least once) never run
    # it side by side: for a task whose work outside its result must not happen twice at once. One more write.
    exclusive: bool = False
    # The longest one run may take: the worker starts it only when its invocation has that long left. None: as long
    # as a whole invocation allows (it then runs only first in a batch).
    max_seconds: float | None = None
    # Run by the durable runner, step by step, for as long as it takes (core.services.durable), not in one worker
    # invocation.
    durable: bool = False

    def validate(self, inputs: Any) -> msgspec.Struct:
        """The task's typed input; InvalidInput with per-field details when `inputs` do not fit its model, or when
        its `invalid_fields` finds fields that do not agree."""
        try:
            model = msgspec.convert(inputs, self.input_model, strict=True)
        except msgspec.ValidationError:
            # JSON has one kind of number, and JSON Schema's "integer" includes 3.0: where the model wants an int, an
            # integral float is that int. (Nothing else is coerced: "3" stays a string, 3.5 a float.)
            inputs = integral_floats_as_ints(inputs, msgspec.inspect.type_info(self.input_model))
            try:
                model = msgspec.convert(inputs, self.input_model, strict=True)
            except msgspec.ValidationError as error:
                details = field_errors(self.input_model, inputs) or [_located("", error)]
                raise InvalidInput(f"invalid input for task {self.name!r}", errors=details) from error
        if isinstance(model, TaskInput) and (problems := model.invalid_fields()):
            details = [{"field": field, "message": message, "type": "invalid"} for field, message in problems.items()]
            raise InvalidInput(f"invalid input for task {self.name!r}", errors=details)
        return model


# Integers a float represents exactly: beyond, 3.0e20 may not be the integer its writer meant.
_EXACT_FLOAT_INT = 2**53


def integral_floats_as_ints(value: Any, expected: msgspec.inspect.Type) -> Any:
    """`value` with each float that stands where `expected` wants an int, and is a whole number, as that int."""
    if isinstance(expected, msgspec.inspect.IntType):
        if isinstance(value, float) and value.is_integer() and abs(value) <= _EXACT_FLOAT_INT:
            return int(value)
        return value
    if isinstance(expected, msgspec.inspect.StructType) and isinstance(value, dict):
        fields = {field.encode_name: field.type for field in expected.fields}
        return {
            key: integral_floats_as_ints(item, fields[key]) if key in fields else item for key, item in value.items()
        }
    if isinstance(expected, msgspec.inspect.ListType | msgspec.inspect.SetType | msgspec.inspect.FrozenSetType):
        return (
            [integral_floats_as_ints(item, expected.item_type) for item in value] if isinstance(value, list) else value
        )
    if isinstance(expected, msgspec.inspect.DictType) and isinstance(value, dict):
        return {key: integral_floats_as_ints(item, expected.value_type) for key, item in value.items()}
    if isinstance(expected, msgspec.inspect.Metadata):
        return integral_floats_as_ints(value, expected.type)
    return value


# msgspec ends a message with where it found the problem: "... - at `$.features[2]`".
_LOCATION = re.compile(r" - at `\$(?P<path>[^`]*)`$")


def _located(field: str, error: msgspec.ValidationError) -> dict[str, str]:
    message = str(error)
    if match := _LOCATION.search(message):
        message = message[: match.start()]
        field += re.sub(r"\[(\d+)\]", r".\1", match["path"])
    return {"field": field.lstrip(".") or "(body)", "message": message, "type": "invalid"}


def field_errors(model: type[msgspec.Struct], inputs: Any) -> list[dict[str, str]]:
    """Every field's problem, where msgspec stops at the first: a client fixes its request in one round trip.

    Empty when each field is right on its own, so that the whole object's error is the one to report."""
    if not isinstance(inputs, dict):
        return []
    fields = msgspec.structs.fields(model)
    errors = []
    for field in fields:
        if field.encode_name not in inputs:
            if field.required:
                errors.append({"field": field.encode_name, "message": "Field required", "type": "missing"})
            continue
        try:
            msgspec.convert(inputs[field.encode_name], field.type, strict=True)
        except msgspec.ValidationError as error:
            errors.append(_located(field.encode_name, error))
    known = {field.encode_name for field in fields}
    errors += [
        {"field": str(name), "message": "Unknown field", "type": "unknown_field"}
        for name in inputs
        if name not in known
    ]
    return errors


_definitions: dict[str, TaskDefinition] = {}


def task(
    name: str | None = None,
    *,
    retry_after_seconds: int = 1,
    expected_seconds: float | None = None,
    exclusive: bool = False,
    max_seconds: float | None = None,
    durable: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a function as a task reachable at `POST /<name>`.

    retry_after_seconds: how long a client polling a pending task is told to wait at least between polls, when
    neither expected_seconds nor the task's progress tells when it will end.
    expected_seconds: how long one run usually takes. A client polling the task is told to come back when it should
    have ended (a queued task: this long from now; a running one: from its start, or from its progress rate), so
    that it polls once or twice rather than every second (core.domain.polling). Progress that keeps to it is written
    only every half minute, which saves the writes (a cancel then stops the run at that write).
    exclusive: claim the task before running it (one more DynamoDB write), so that it never runs twice at once; a
    quick task is otherwise claimed only once it outlasts a second, and two simultaneous deliveries of its
    message may both run it (only one outcome is kept).
    max_seconds: the longest one run may take. The worker starts a run only when its invocation has that long left,
    and hands a message it cannot start back to the queue (a batch never outruns the function's Timeout). Declare
    it when the worker's BatchSize is above 1; without it a task runs only first in its batch. Not for a durable task.
    durable: run the task as a durable execution (Lambda durable functions): its function takes a third parameter,
    `steps: Steps`, whose checkpointed steps let it run across as many invocations as it takes (up to the stack's
    DurableTaskTimeout), each step within one invocation (WorkerTimeout), and resume after a crash from the last
    completed step."""

    def register(function: Callable[..., Any]) -> Callable[..., Any]:
        task_name = name or function.__name__
        if not TASK_NAME.match(task_name) or task_name in RESERVED_NAMES:
            raise ValueError(f"task name {task_name!r} must match {TASK_NAME.pattern} and not be one of the API's own")
        if max_seconds is not None and not max_seconds > 0:
            raise ValueError(f"task {task_name!r}: max_seconds must be positive")
        if expected_seconds is not None and not expected_seconds >= 0:
            raise ValueError(f"task {task_name!r}: expected_seconds must not be negative")
        if task_name in _definitions and _definitions[task_name].function is not function:
            raise ValueError(f"task {task_name!r} is registered twice")
        hints = get_type_hints(function)
        parameters = list(function.__code__.co_varnames[: function.__code__.co_argcount])
        input_model = hints.get(parameters[0]) if parameters else None
        if not (isinstance(input_model, type) and issubclass(input_model, msgspec.Struct)):
            raise TypeError(f"task {task_name!r}: annotate the first parameter with its input model (a TaskInput)")
        expected_parameters = "(inputs, progress, steps)" if durable else "(inputs, progress)"
        if len(parameters) != (3 if durable else 2):
            raise TypeError(f"task {task_name!r} takes {expected_parameters}, not ({', '.join(parameters)})")
        if durable and (exclusive or max_seconds is not None):
            raise ValueError(
                f"task {task_name!r}: a durable task's steps are its unit of work: no exclusive or max_seconds"
            )
        _definitions[task_name] = TaskDefinition(
            name=task_name,
            function=function,
            input_model=input_model,
            description=(function.__doc__ or "").strip(),
            retry_after_seconds=retry_after_seconds,
            expected_seconds=expected_seconds,
            exclusive=exclusive,
            max_seconds=max_seconds,
            durable=durable,
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
