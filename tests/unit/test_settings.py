"""Settings fail fast on a missing or malformed variable."""

from __future__ import annotations

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


def test_worker_settings_read_the_receive_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_RECEIVE_COUNT", "5")

    assert WorkerSettings.from_env().max_receive_count == 5


def test_empty_endpoint_url_from_the_template_means_aws_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    # template.yaml sets AWS_ENDPOINT_URL to the LocalEndpointUrl parameter, empty in a deployment.
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", "")

    assert boto3.client("dynamodb").meta.endpoint_url == "https://dynamodb.us-east-1.amazonaws.com"
