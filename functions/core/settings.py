"""Settings read from the environment once per container; a missing resource name fails at start-up."""

from __future__ import annotations

import os
from functools import lru_cache

import msgspec


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
    # Inputs and results too large for the record (core.payloads).
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
    # The key that idempotent task ids are derived with (core.service.idempotent_task_id).
    id_secret_arn: str

    @classmethod
    def from_env(cls) -> SubmitSettings:
        return cls(
            **msgspec.structs.asdict(Settings.from_env()),
            queue_url=_required("QUEUE_URL"),
            id_secret_arn=_required("TASK_ID_SECRET_ARN"),
        )


class ResultSettings(Settings, frozen=True):
    # The stack's secret, which list cursors are signed with a key derived from (core.listing).
    id_secret_arn: str

    @classmethod
    def from_env(cls) -> ResultSettings:
        return cls(**msgspec.structs.asdict(Settings.from_env()), id_secret_arn=_required("TASK_ID_SECRET_ARN"))


class WorkerSettings(Settings, frozen=True):
    # The task queue, where the messages a batch cannot run in time go back as new ones.
    queue_url: str
    # Must equal the queue's maxReceiveCount: the delivery with this count is the task's last chance.
    max_receive_count: int

    @classmethod
    def from_env(cls) -> WorkerSettings:
        return cls(
            **msgspec.structs.asdict(Settings.from_env()),
            queue_url=_required("QUEUE_URL"),
            max_receive_count=_positive_int("MAX_RECEIVE_COUNT"),
        )


class DeadLetterSettings(Settings, frozen=True):
    # The task queue's maxReceiveCount: how many deliveries a dead letter had.
    max_receive_count: int

    @classmethod
    def from_env(cls) -> DeadLetterSettings:
        return cls(**msgspec.structs.asdict(Settings.from_env()), max_receive_count=_positive_int("MAX_RECEIVE_COUNT"))


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
def dead_letter_settings() -> DeadLetterSettings:
    return DeadLetterSettings.from_env()
