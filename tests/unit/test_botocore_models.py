"""The cut botocore models the functions' clients read (tools/trim_botocore_models.py)."""

from __future__ import annotations

import re
from pathlib import Path

import boto3
import botocore
import pytest
from botocore import xform_name

from core.adapters import aws
from core.adapters.aws import BOTOCORE_MODELS, cut_models_fit, dynamodb_client, sqs_client
from tools.trim_botocore_models import OPERATIONS, model_path, rendered, trimmed_model

ROOT = Path(__file__).resolve().parents[2]
# How the functions call AWS: every call goes through an adapter's `self._client`.
_CLIENT_CALL = re.compile(r"self\._client\.(\w+)\(")


@pytest.mark.parametrize(("service", "api_version"), list(OPERATIONS))
def test_the_models_are_what_the_script_writes_from_the_installed_botocore(service: str, api_version: str) -> None:
    expected = rendered(trimmed_model(service, api_version, OPERATIONS[(service, api_version)]))

    assert model_path(service, api_version).read_text() == expected, "run `make models`"


def test_every_operation_the_functions_call_is_in_the_models() -> None:
    called = {
        method
        for path in (ROOT / "functions").rglob("*.py")
        for method in _CLIENT_CALL.findall(path.read_text())
        if not method.startswith("generate_presigned_")  # signed locally: no operation is called
    }
    modelled = {xform_name(operation) for operations in OPERATIONS.values() for operation in operations}

    assert called, "no client call found: the pattern no longer matches how the functions call AWS"
    assert called <= modelled, "add the operation to tools/trim_botocore_models.py and run `make models`"


def test_the_functions_clients_read_the_cut_models_and_a_tasks_clients_the_full_ones(aws: object) -> None:
    assert dynamodb_client().meta.service_model.operation_names == [
        "BatchGetItem",
        "DeleteItem",
        "GetItem",
        "PutItem",
        "Query",
        "TransactWriteItems",
        "UpdateItem",
    ]
    assert "SendMessage" in sqs_client().meta.service_model.operation_names
    assert "ReceiveMessage" not in sqs_client().meta.service_model.operation_names
    assert "Query" in boto3.client("dynamodb").meta.service_model.operation_names


def test_the_models_record_the_botocore_they_were_cut_from() -> None:
    assert (BOTOCORE_MODELS / "VERSION").read_text().strip() == botocore.__version__, "run `make models`"


def test_under_another_botocore_the_functions_use_its_own_models_and_say_so_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a runtime whose botocore is not the one the models were cut from (Lambda updates its runtime's SDK)
    monkeypatch.setattr(aws, "cut_models_fit", lambda: cut_models_fit("1.0.0"))
    aws.session.cache_clear()
    try:
        # WHEN the functions build their clients
        search_paths = aws.session()._session.get_component("data_loader").search_paths
        client = aws.session().client("dynamodb", region_name="us-east-1")

        # THEN botocore's own, whole models serve them, and one warning says why
        assert str(BOTOCORE_MODELS) not in search_paths
        assert "Query" in client.meta.service_model.operation_names
        warnings = [record for record in caplog.records if "cut models" in record.getMessage()]
        assert len(warnings) == 1
        assert "1.0.0" in warnings[0].getMessage()
    finally:
        aws.session.cache_clear()
