"""Settings fail fast on a missing or malformed variable."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.settings import Settings, SettingsError, SubmitSettings, WorkerSettings


def test_settings_missing_table_name_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TABLE_NAME")

    with pytest.raises(SettingsError, match="TABLE_NAME"):
        Settings.from_env()


def test_submit_settings_missing_queue_url_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUE_URL", " ")

    with pytest.raises(SettingsError, match="QUEUE_URL"):
        SubmitSettings.from_env()


@pytest.mark.parametrize("value", ["three", "0", "-1"])
def test_worker_settings_reject_a_bad_receive_count(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("MAX_RECEIVE_COUNT", value)

    with pytest.raises(SettingsError, match="MAX_RECEIVE_COUNT"):
        WorkerSettings.from_env()


@pytest.mark.parametrize("value", ["", "512MB", "0"])
def test_submit_settings_need_the_workers_memory(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("WORKER_MEMORY_MB", value)

    with pytest.raises(SettingsError, match="WORKER_MEMORY_MB"):
        SubmitSettings.from_env()


def test_worker_settings_read_the_receive_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_RECEIVE_COUNT", "5")

    assert WorkerSettings.from_env().max_receive_count == 5


def test_empty_endpoint_url_from_the_template_means_aws_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    # template.yaml sets AWS_ENDPOINT_URL to the LocalEndpointUrl parameter, empty in a deployment.
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", "")

    assert boto3.client("dynamodb").meta.endpoint_url == "https://dynamodb.us-east-1.amazonaws.com"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WEBHOOK_URL_POLICY", "anything"),
        ("WEBHOOK_RETRY_SCHEDULE", "30,forever"),
        ("WEBHOOK_RETRY_SCHEDULE", "86400"),
        ("WEBHOOK_SECRET_ARN", ""),
    ],
)
def test_webhook_settings_refuse_a_bad_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    from core.settings import WebhookSettings

    monkeypatch.setenv(name, value)

    with pytest.raises(SettingsError, match=name):
        WebhookSettings.from_env()


def test_webhook_and_notifier_settings_read_the_templates_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.services.webhooks import UrlPolicy
    from core.settings import NotifierSettings, WebhookSettings

    monkeypatch.setenv("WEBHOOK_RETRY_SCHEDULE", "30,120,600")
    monkeypatch.setenv("TASK_EVENTS", "Disabled")

    webhooks, notifier = WebhookSettings.from_env(), NotifierSettings.from_env()

    assert webhooks.retry_schedule.delays == (30, 120, 600)
    assert webhooks.url_policy is UrlPolicy.PUBLIC
    assert notifier.events_enabled is False
    assert notifier.event_source == "long-running-tasks"
    assert notifier.dead_letter_queue_url.endswith("/NotifierDeadLetterQueue")


def test_notifier_settings_refuse_an_unknown_task_events_value(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.settings import NotifierSettings

    monkeypatch.setenv("TASK_EVENTS", "yes")

    with pytest.raises(SettingsError, match="TASK_EVENTS"):
        NotifierSettings.from_env()


@pytest.fixture
def fresh_iam_owner() -> Iterator[None]:
    from core.settings import iam_owner

    iam_owner.cache_clear()
    yield
    iam_owner.cache_clear()


@pytest.mark.usefixtures("fresh_iam_owner")
def test_iam_owner_is_read_from_the_template(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.domain.identity import IamOwner
    from core.settings import iam_owner

    monkeypatch.setenv("IAM_OWNER", "RoleSession")

    assert iam_owner() is IamOwner.ROLE_SESSION


@pytest.mark.usefixtures("fresh_iam_owner")
@pytest.mark.parametrize("value", ["", "Session", "role"])
def test_iam_owner_refuses_anything_but_the_parameters_values(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    from core.settings import iam_owner

    monkeypatch.setenv("IAM_OWNER", value)

    with pytest.raises(SettingsError, match="IAM_OWNER"):
        iam_owner()
