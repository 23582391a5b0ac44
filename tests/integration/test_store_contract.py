"""The DynamoDB store keeps the same contract as the in-memory one: every lifecycle scenario of
tests/unit/test_lifecycle_rules.py, run here against DynamoDB (moto, the table built from template.yaml)."""

from __future__ import annotations

import boto3
import pytest

from core.adapters.dynamodb_store import DynamoTaskStore
from devstack.resources import LocalResources
from tests.unit.test_lifecycle_rules import *  # noqa: F403 - the same scenarios, with this module's `store`
from tests.unit.test_lifecycle_rules import NOW, QUEUED


@pytest.fixture
def store(aws: LocalResources) -> DynamoTaskStore:  # type: ignore[no-redef]
    store = DynamoTaskStore(aws.table_name, boto3.client("dynamodb"))
    store.create(QUEUED, NOW)
    return store
