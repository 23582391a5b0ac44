"""Settings read from the environment once per container; a missing resource name fails at start-up."""

from __future__ import annotations

import os
from functools import lru_cache

import msgspec

from core.domain.identity import IamOwner
from core.services.webhooks import RetrySchedule, UrlPolicy


class SettingsError(RuntimeError):
    """The function's environment lacks a variable it cannot run without."""


def _required(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise SettingsError(f"environment variable {name} must be set (template.yaml sets it)")
    return value


def _positive_int(name: str) -> int:
    raw = _required(name)
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingsError(f"environment variable {name} must be an integer, got {raw!r}") from exc
    if value < 1:
        raise SettingsError(f"environment variable {name} must be at least 1, got {value}")
    return value


class Settings(msgspec.Struct, frozen=True):
    table_name: str
    retention_days: int
    # Inputs and results too large for the record (core.adapters.payloads).
    payload_bucket: str

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            table_name=_required("TABLE_NAME"),
            retention_days=_positive_int("TASK_RETENTION_DAYS"),
            payload_bucket=_required("PAYLOAD_BUCKET"),
        )


class SubmitSettings(Settings, frozen=True):
    queue_url: str
    # The key that idempotent task ids are derived with (core.services.tasks.idempotent_task_id).
    id_secret_arn: str
    # Which Webhook-URL a submission may name (core.services.webhooks.UrlPolicy).
    webhook_url_policy: UrlPolicy
    # The worker's memory (WorkerMemorySize), which bounds the inputs a task can take (core.adapters.payloads.InputLimit).
    worker_memory_mb: int
    # The longest a durable task may run (DurableTaskTimeout): its record is kept that much longer than the retention.
    durable_task_timeout: int

    @classmethod
    def from_env(cls) -> SubmitSettings:
        return cls(
            **msgspec.structs.asdict(Settings.from_env()),
            queue_url=_required("QUEUE_URL"),
            id_secret_arn=_required("TASK_ID_SECRET_ARN"),
            webhook_url_policy=_url_policy(),
            worker_memory_mb=_positive_int("WORKER_MEMORY_MB"),
            durable_task_timeout=_positive_int("DURABLE_TASK_TIMEOUT"),
        )


class ResultSettings(Settings, frozen=True):
    # The stack's secret, which list cursors are signed with a key derived from (core.domain.listing).
    id_secret_arn: str

    @classmethod
    def from_env(cls) -> ResultSettings:
        return cls(**msgspec.structs.asdict(Settings.from_env()), id_secret_arn=_required("TASK_ID_SECRET_ARN"))


class WorkerSettings(Settings, frozen=True):
    # The task queue, where the messages a batch cannot run in time go back as new ones.
    queue_url: str
    # Must equal the queue's maxReceiveCount: the delivery with this count is the task's last chance.
    max_receive_count: int
    # The durable runner's alias, where durable tasks' executions are started.
    durable_runner_arn: str
    # The task queue's VisibilityTimeout (template.yaml's, or the local stack's override), in seconds.
    queue_visibility_timeout: int

    @classmethod
    def from_env(cls) -> WorkerSettings:
        return cls(
            **msgspec.structs.asdict(Settings.from_env()),
            queue_url=_required("QUEUE_URL"),
            max_receive_count=_positive_int("MAX_RECEIVE_COUNT"),
            durable_runner_arn=_required("DURABLE_RUNNER_ARN"),
            queue_visibility_timeout=_positive_int("QUEUE_VISIBILITY_TIMEOUT"),
        )


class DurableSettings(Settings, frozen=True):
    # A durable task's step interrupted this many times fails the task; a step's RetryableTaskError is retried up to
    # this many attempts (as a plain task's deliveries).
    max_receive_count: int
    # The runner's Timeout: what one invocation, and so a step, may take.
    worker_timeout: int

    @classmethod
    def from_env(cls) -> DurableSettings:
        return cls(
            **msgspec.structs.asdict(Settings.from_env()),
            max_receive_count=_positive_int("MAX_RECEIVE_COUNT"),
            worker_timeout=_positive_int("WORKER_TIMEOUT"),
        )


class DeadLetterSettings(Settings, frozen=True):
    # The task queue's maxReceiveCount: how many deliveries a dead letter had.
    max_receive_count: int

    @classmethod
    def from_env(cls) -> DeadLetterSettings:
        return cls(**msgspec.structs.asdict(Settings.from_env()), max_receive_count=_positive_int("MAX_RECEIVE_COUNT"))


def _url_policy() -> UrlPolicy:
    raw = _required("WEBHOOK_URL_POLICY")
    try:
        return UrlPolicy(raw)
    except ValueError as exc:
        raise SettingsError(f"WEBHOOK_URL_POLICY must be one of {[p.value for p in UrlPolicy]}, got {raw!r}") from exc


class NotifierSettings(msgspec.Struct, frozen=True):
    # The stack's TaskEvents parameter: Disabled puts no events on the bus (webhooks are still delivered).
    events_enabled: bool
    event_bus_name: str
    # The `source` of every event: the service's name.
    event_source: str
    webhook_queue_url: str
    # Where the events that can never be published are kept (core.services.events.Notifier).
    dead_letter_queue_url: str

    @classmethod
    def from_env(cls) -> NotifierSettings:
        raw = _required("TASK_EVENTS")
        if raw not in ("Enabled", "Disabled"):
            raise SettingsError(f"TASK_EVENTS must be Enabled or Disabled, got {raw!r}")
        return cls(
            events_enabled=raw == "Enabled",
            event_bus_name=_required("EVENT_BUS_NAME"),
            event_source=_required("POWERTOOLS_SERVICE_NAME"),
            webhook_queue_url=_required("WEBHOOK_QUEUE_URL"),
            dead_letter_queue_url=_required("NOTIFIER_DEAD_LETTER_QUEUE_URL"),
        )


class WebhookSettings(msgspec.Struct, frozen=True):
    secret_arn: str
    url_policy: UrlPolicy
    retry_schedule: RetrySchedule
    queue_url: str
    dead_letter_queue_url: str

    @classmethod
    def from_env(cls) -> WebhookSettings:
        try:
            schedule = RetrySchedule.parse(_required("WEBHOOK_RETRY_SCHEDULE"))
        except ValueError as exc:
            raise SettingsError(f"WEBHOOK_RETRY_SCHEDULE: {exc}") from exc
        return cls(
            secret_arn=_required("WEBHOOK_SECRET_ARN"),
            url_policy=_url_policy(),
            retry_schedule=schedule,
            queue_url=_required("WEBHOOK_QUEUE_URL"),
            dead_letter_queue_url=_required("WEBHOOK_DEAD_LETTER_QUEUE_URL"),
        )


@lru_cache(maxsize=1)
def iam_owner() -> IamOwner:
    """The stack's IamOwner parameter: who owns what an assumed role submits (core.domain.identity). Read by the API's
    functions, at the first request that has an owner."""
    raw = _required("IAM_OWNER")
    try:
        return IamOwner(raw)
    except ValueError as exc:
        raise SettingsError(f"IAM_OWNER must be one of {[o.value for o in IamOwner]}, got {raw!r}") from exc


@lru_cache(maxsize=1)
def notifier_settings() -> NotifierSettings:
    return NotifierSettings.from_env()


@lru_cache(maxsize=1)
def webhook_settings() -> WebhookSettings:
    return WebhookSettings.from_env()


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings.from_env()


@lru_cache(maxsize=1)
def submit_settings() -> SubmitSettings:
    return SubmitSettings.from_env()


@lru_cache(maxsize=1)
def result_settings() -> ResultSettings:
    return ResultSettings.from_env()


@lru_cache(maxsize=1)
def worker_settings() -> WorkerSettings:
    return WorkerSettings.from_env()


@lru_cache(maxsize=1)
def durable_settings() -> DurableSettings:
    return DurableSettings.from_env()


@lru_cache(maxsize=1)
def dead_letter_settings() -> DeadLetterSettings:
    return DeadLetterSettings.from_env()
