"""Logger and metrics, created once; service name and namespace come from the template's Globals.

Tracing: the functions run with X-Ray active tracing (template). botocore forwards the Lambda trace header
on every AWS call, so SQS carries it from submit to the worker and one trace spans a task's journey,
without the X-Ray SDK and its cold-start cost.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from core.domain.records import TaskRecord, TaskStatus

logger = Logger()
metrics = Metrics()

_OUTCOME_METRICS = {TaskStatus.SUCCEEDED: "TasksSucceeded", TaskStatus.FAILED: "TasksFailed"}


def _emit_task_metrics(task: str, values: dict[str, tuple[MetricUnit, float]]) -> None:
    # One EMF document per task, with the task's name as a dimension: a worker batch can hold several tasks,
    # and the invocation's own Metrics carry one set of dimensions.
    document = EphemeralMetrics(namespace=metrics.namespace, service=metrics.service)
    document.add_dimension(name="task", value=task)
    for name, (unit, value) in values.items():
        document.add_metric(name=name, unit=unit, value=value)
    document.flush_metrics()


def record_submitted(task: str) -> None:
    """A document of its own, like a finished task's: Powertools' Metrics keeps the invocation's metrics in one set
    per process, and a process that runs invocations side by side (the local stack's functions in its own process,
    as the tests and the bench run them) would flush one invocation's metric with another's dimensions, or raise
    on a set another emptied."""
    _emit_task_metrics(task, {"TasksSubmitted": (MetricUnit.Count, 1.0)})


def record_finished(record: TaskRecord, *, dead_lettered: bool = False) -> None:
    """Outcome count, run time and queue wait of a task that has just finished (started_at: when the run that
    finished it began)."""
    name = _OUTCOME_METRICS.get(record.status)
    if name is None:
        return
    values = {name: (MetricUnit.Count, 1.0)}
    if dead_lettered:
        values["TasksDeadLettered"] = (MetricUnit.Count, 1.0)
    if record.started_at is not None:
        values["QueueWait"] = (MetricUnit.Milliseconds, (record.started_at - record.created_at) * 1000)
        if record.finished_at is not None:
            values["TaskDuration"] = (MetricUnit.Milliseconds, (record.finished_at - record.started_at) * 1000)
    _emit_task_metrics(record.task, values)


def record_dead_lettered(record: TaskRecord) -> None:
    """A task failed by the dead-letter consumer: counted as failed, and apart (an alarm watches it)."""
    record_finished(record, dead_lettered=True)
