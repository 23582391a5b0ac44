"""The cut botocore models the functions' clients read (tools/trim_botocore_models.py)."""

from __future__ import annotations

import re
from pathlib import Path

import boto3
import pytest
from botocore import xform_name

from core.aws import dynamodb_client, sqs_client
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
        method for path in (ROOT / "functions").rglob("*.py") for method in _CLIENT_CALL.findall(path.read_text())
    }
    modelled = {xform_name(operation) for operations in OPERATIONS.values() for operation in operations}

    assert called, "no client call found: the pattern no longer matches how the functions call AWS"
    assert called <= modelled, "add the operation to tools/trim_botocore_models.py and run `make models`"


def test_the_functions_clients_read_the_cut_models_and_a_tasks_clients_the_full_ones(aws: object) -> None:
    assert dynamodb_client().meta.service_model.operation_names == ["DeleteItem", "GetItem", "PutItem", "UpdateItem"]
    assert sqs_client().meta.service_model.operation_names == ["SendMessage"]
    assert "Query" in boto3.client("dynamodb").meta.service_model.operation_names
