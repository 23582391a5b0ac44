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
from devstack.template import DEFAULT_TEMPLATE, load_sam_app, load_template


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


def test_the_worker_starts_the_runner_by_its_alias_and_each_runner_invocation_lasts_worker_timeout() -> None:
    with mock_aws():
        # WHEN the stack reads the template with WorkerTimeout=30 (`python -m devstack --parameter WorkerTimeout=30`)
        resources = create_resources(parameter_overrides={"WorkerTimeout": "30"})
        app = load_sam_app(resources.template_path, resources.translator())

    # THEN the runner is durable, stopped after 30 s an invocation, and the worker names it by its alias's ARN
    runner = app.functions["DurableRunnerFunction"]
    assert runner.function_name == "local-durable-runner"
    assert runner.timeout == 30
    assert runner.durable == {"ExecutionTimeout": "86400", "RetentionPeriodInDays": 14}
    assert app.functions["WorkerFunction"].environment["DURABLE_RUNNER_ARN"] == (
        "arn:aws:lambda:us-east-1:123456789012:function:local-durable-runner:live"
    )
    # AND the worker's heartbeat knows the task queue's visibility timeout: six of its 30 s
    assert app.functions["WorkerFunction"].environment["QUEUE_VISIBILITY_TIMEOUT"] == "180"


def test_the_durable_execution_ends_rule_queues_the_runners_unfinished_ends_only() -> None:
    runner = "arn:aws:lambda:us-east-1:123456789012:function:local-durable-runner"
    with mock_aws():
        # GIVEN the template's rule and queue
        resources = create_resources()
        events = boto3.client("events", region_name="us-east-1")

        # WHEN Lambda puts the ends of executions on the default bus
        for name, status, function_arn in [
            ("failed", "FAILED", f"{runner}:1"),
            ("timed-out", "TIMED_OUT", f"{runner}:1"),
            ("stopped", "STOPPED", f"{runner}:$LATEST"),
            ("succeeded", "SUCCEEDED", f"{runner}:1"),
            ("another-function", "FAILED", "arn:aws:lambda:us-east-1:123456789012:function:local-worker:1"),
        ]:
            detail = {"durableExecutionName": name, "status": status, "functionArn": function_arn}
            entry = {
                "Source": "aws.lambda",
                "DetailType": "Durable Execution Status Change",
                "Detail": json.dumps(detail),
            }
            assert events.put_events(Entries=[entry])["FailedEntryCount"] == 0

        # THEN those of the runner that did not succeed reach the dead-letter consumer's queue
        sqs = boto3.client("sqs", region_name="us-east-1")
        queue = resources["DurableExecutionEndsQueue"].ref
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
        assert {json.loads(m["Body"])["detail"]["durableExecutionName"] for m in messages} == {
            "failed",
            "timed-out",
            "stopped",
        }
        # AND the queue has the template's policy, which lets that rule alone send to it
        policy = json.loads(sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["Policy"])["Attributes"]["Policy"])
        assert policy["Statement"][0]["Condition"] == {
            "ArnEquals": {"aws:SourceArn": resources["DurableExecutionEndsRule"].arn}
        }


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
