"""devstack.create_resources builds the template's table and queues in moto (in-process mock_aws).

Not in tests/e2e: mock_aws resets moto's in-process backends, which the e2e stack's embedded moto server shares.
"""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from devstack import create_resources
from devstack.template import DEFAULT_TEMPLATE, load_template


def test_create_resources_builds_template_resources_in_mock_aws() -> None:
    template = load_template(DEFAULT_TEMPLATE)["Resources"]
    with mock_aws():
        # WHEN
        resources = create_resources(visibility_timeout=5)
        again = create_resources()  # what exists already is left alone

        # THEN the table and queues are the template's
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        table = dynamodb.describe_table(TableName=resources.table_name)["Table"]
        assert table["KeySchema"] == template["TasksTable"]["Properties"]["KeySchema"]
        assert table["AttributeDefinitions"] == template["TasksTable"]["Properties"]["AttributeDefinitions"]
        ttl = dynamodb.describe_time_to_live(TableName=resources.table_name)["TimeToLiveDescription"]
        assert ttl["AttributeName"] == template["TasksTable"]["Properties"]["TimeToLiveSpecification"]["AttributeName"]
        sqs = boto3.client("sqs", region_name="us-east-1")
        attributes = sqs.get_queue_attributes(QueueUrl=resources.queue_url, AttributeNames=["All"])["Attributes"]
        redrive = json.loads(attributes["RedrivePolicy"])
        dlq_arn = sqs.get_queue_attributes(QueueUrl=resources.dlq_url, AttributeNames=["QueueArn"])["Attributes"]
        assert redrive == {"deadLetterTargetArn": dlq_arn["QueueArn"], "maxReceiveCount": 3}
        assert attributes["VisibilityTimeout"] == "5"
        assert again.queue_url == resources.queue_url


def test_create_resources_uses_parameter_overrides() -> None:
    with mock_aws():
        resources = create_resources(parameter_overrides={"MaxReceiveCount": 5}, name_prefix="other-")
        assert resources.max_receive_count == 5
        assert resources.table_name == "other-TasksTable"


def test_create_resources_gives_the_bucket_cors_rules_only_under_their_condition() -> None:
    with mock_aws():
        # WHEN the template's bucket is made without origins, then with them (the property is Fn::If ... AWS::NoValue)
        plain = create_resources(name_prefix="plain-")
        with_cors = create_resources(parameter_overrides={"CorsAllowOrigins": "https://app.example.com"})

        # THEN the first has no CORS rules, the second the template's for those origins
        s3 = boto3.client("s3", region_name="us-east-1")
        with pytest.raises(ClientError, match="NoSuchCORSConfiguration"):
            s3.get_bucket_cors(Bucket=plain.payload_bucket)
        (rule,) = s3.get_bucket_cors(Bucket=with_cors.payload_bucket)["CORSRules"]
        assert rule["AllowedOrigins"] == ["https://app.example.com"]
        assert "POST" in rule["AllowedMethods"]
        assert rule["MaxAgeSeconds"] == 600
