"""Logger and metrics, created once; service name and namespace come from the template's Globals.

Tracing: the functions run with X-Ray active tracing (template). botocore forwards the Lambda trace header
on every AWS call, so SQS carries it from submit to the worker and one trace spans a task's journey,
without the X-Ray SDK and its cold-start cost.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from core.records import TaskRecord, TaskStatus

logger = Logger()
metrics = Metrics()

_OUTCOME_METRICS = {TaskStatus.SUCCEEDED: "TasksSucceeded", TaskStatus.FAILED: "TasksFailed"}


def _task_metric(name: str, unit: MetricUnit, value: float, task: str) -> None:
    # One EMF document per task name: a worker batch can hold several tasks.
    with single_metric(name=name, unit=unit, value=value, namespace=metrics.namespace) as metric:
        metric.add_dimension(name="service", value=metrics.service or "long-running-tasks")
        metric.add_dimension(name="task", value=task)


def record_submitted(task: str) -> None:
    _task_metric("TasksSubmitted", MetricUnit.Count, 1, task)


def record_finished(record: TaskRecord) -> None:
    """Outcome count, run time and queue wait of a task that has just finished."""
    name = _OUTCOME_METRICS.get(record.status)
    if name is None:
        return
    _task_metric(name, MetricUnit.Count, 1, record.task)
    if record.started_at is not None:
        _task_metric("QueueWait", MetricUnit.Milliseconds, (record.started_at - record.created_at) * 1000, record.task)
        if record.finished_at is not None:
            duration = (record.finished_at - record.started_at) * 1000
            _task_metric("TaskDuration", MetricUnit.Milliseconds, duration, record.task)
