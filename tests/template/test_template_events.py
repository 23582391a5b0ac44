"""The template's completion events and webhooks: the table's stream, the notifier's filter and retries, the
webhook function's queue, schedule, secret and least privilege."""

from __future__ import annotations

import json
from typing import Any

from core.services.events import TERMINAL_TRANSITION
from core.services.webhooks import MAX_RETRIES, MAX_RETRY_DELAY_SECONDS, RECEIVE_LAG_SECONDS, RetrySchedule
from tests.template.test_template import FUNCTIONS, _alarms, _allowed, _statements, as_list

SECONDS_PER_DAY = 86_400
# Messages a standard queue holds in flight (received, not deleted) before ReceiveMessage fails with OverLimit.
SQS_IN_FLIGHT_LIMIT = 120_000


def _role_statements(resources: dict[str, Any], function: str) -> list[dict[str, Any]]:
    role = resources[resources[function]["Properties"]["Role"]["Fn::GetAtt"][0]]["Properties"]
    return [statement for policy in role.get("Policies", []) for statement in _statements(policy["PolicyDocument"])]


def _mapping(resources: dict[str, Any], function: str) -> dict[str, Any]:
    (mapping,) = (
        resource["Properties"]
        for resource in resources.values()
        if resource["Type"] == "AWS::Lambda::EventSourceMapping"
        and resource["Properties"]["FunctionName"] == {"Ref": function}
    )
    return mapping  # type: ignore[no-any-return]


def test_template_table_streams_old_and_new_images(resources: dict[str, Any]) -> None:
    stream = resources["TasksTable"]["Properties"]["StreamSpecification"]
    assert stream == {"StreamViewType": "NEW_AND_OLD_IMAGES"}


def test_template_notifier_filter_is_the_terminal_transition_of_core_events(resources: dict[str, Any]) -> None:
    mapping = _mapping(resources, "NotifierFunction")
    (only,) = mapping["FilterCriteria"]["Filters"]
    assert json.loads(only["Pattern"]) == TERMINAL_TRANSITION
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["TasksTable", "StreamArn"]}


def test_template_notifier_batches_reports_partial_failures_and_ends_in_a_dead_letter_queue(
    resources: dict[str, Any],
) -> None:
    mapping = _mapping(resources, "NotifierFunction")
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert 0 < mapping["MaximumRetryAttempts"] <= 10
    assert mapping["BatchSize"] >= 100
    assert 0 < mapping["MaximumBatchingWindowInSeconds"] <= 1
    assert mapping["StartingPosition"] == "LATEST"
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["NotifierDeadLetterQueue", "Arn"]
    }


def test_template_notifier_may_put_events_on_its_bus_and_queue_deliveries_only(resources: dict[str, Any]) -> None:
    allowed = {
        action: resource
        for statement in _role_statements(resources, "NotifierFunction")
        for action in as_list(statement["Action"])
        for resource in as_list(statement["Resource"])
        if not action.startswith("dynamodb:")  # the stream's read actions, SAM's own for the event source
    }
    assert set(allowed) == {"events:PutEvents", "sqs:SendMessage"}
    assert _allowed(resources, "NotifierFunction", "events:") == {
        "events:PutEvents": [{"Fn::GetAtt": ["TaskEventBus", "Arn"]}]
    }
    queues = {json.dumps(r) for r in _allowed(resources, "NotifierFunction", "sqs:")["sqs:SendMessage"]}
    assert queues == {json.dumps({"Fn::GetAtt": [name, "Arn"]}) for name in ("WebhookQueue", "NotifierDeadLetterQueue")}
    variables = resources["NotifierFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["TASK_EVENTS"] == {"Ref": "TaskEvents"}
    assert variables["EVENT_BUS_NAME"] == {"Ref": "TaskEventBus"}
    # An event refused for good is kept there at once (core.services.events.Notifier), not retried with its batch.
    assert variables["NOTIFIER_DEAD_LETTER_QUEUE_URL"] == {"Ref": "NotifierDeadLetterQueue"}


def test_template_only_the_webhook_function_reads_the_webhook_secret(resources: dict[str, Any]) -> None:
    readers = {
        name
        for name in FUNCTIONS
        for statement in _role_statements(resources, name)
        if {"Ref": "WebhookSecret"} in as_list(statement["Resource"])
    }
    assert readers == {"WebhookFunction"}
    assert _allowed(resources, "WebhookFunction", "secretsmanager:") == {
        "secretsmanager:GetSecretValue": [{"Ref": "WebhookSecret"}]
    }
    assert _allowed(resources, "WebhookFunction", "dynamodb:") == {}
    sqs = _allowed(resources, "WebhookFunction", "sqs:")
    assert sqs["sqs:ChangeMessageVisibility"] == [{"Fn::GetAtt": ["WebhookQueue", "Arn"]}]
    # Each retry a new message on the webhook queue; a delivery given up, on its dead-letter queue.
    assert {json.dumps(queue) for queue in sqs["sqs:SendMessage"]} == {
        json.dumps({"Fn::GetAtt": [name, "Arn"]}) for name in ("WebhookQueue", "WebhookDeadLetterQueue")
    }
    secret = resources["WebhookSecret"]["Properties"]["GenerateSecretString"]
    # Letters and digits only: the value is base64 as it is, which Standard Webhooks' secrets are.
    assert secret == {"PasswordLength": 64, "ExcludePunctuation": True}


def test_template_webhook_retry_schedule_spans_a_day_within_sqs_limits(
    sam_template: dict[str, Any], resources: dict[str, Any]
) -> None:
    default = sam_template["Parameters"]["WebhookRetrySchedule"]["Default"]
    schedule = RetrySchedule.parse(default)
    assert schedule.total_seconds >= SECONDS_PER_DAY
    assert all(delay <= MAX_RETRY_DELAY_SECONDS for delay in schedule.delays)
    queue = resources["WebhookQueue"]["Properties"]
    assert int(queue["MessageRetentionPeriod"]) > schedule.total_seconds
    assert queue["RedrivePolicy"]["maxReceiveCount"] > MAX_RETRIES + 1
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["WebhookDeadLetterQueue", "Arn"]}
    timeout = resources["WebhookFunction"]["Properties"]["Timeout"]
    assert queue["VisibilityTimeout"] >= 6 * timeout
    # A message received early is hidden again during an invocation, which begins within the queue's visibility
    # timeout of the receive and lasts at most the function's Timeout: the margin kept inside SQS's 12 hours of that
    # receive covers both (tests/unit/test_webhook_retries.py checks every schedule against that rule).
    window = _mapping(resources, "WebhookFunction")["MaximumBatchingWindowInSeconds"]
    assert queue["VisibilityTimeout"] + timeout + window < RECEIVE_LAG_SECONDS
    variables = resources["WebhookFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["WEBHOOK_RETRY_SCHEDULE"] == {"Ref": "WebhookRetrySchedule"}


def test_template_webhooks_refuse_private_addresses_unless_the_local_stack_says_otherwise(
    sam_template: dict[str, Any], resources: dict[str, Any]
) -> None:
    policy = sam_template["Parameters"]["WebhookUrlPolicy"]
    assert (policy["Default"], policy["AllowedValues"]) == ("public", ["public", "loopback"])
    for name in ("SubmitFunction", "WebhookFunction"):
        variables = resources[name]["Properties"]["Environment"]["Variables"]
        assert variables["WEBHOOK_URL_POLICY"] == {"Ref": "WebhookUrlPolicy"}, name
    assert sam_template["Parameters"]["TaskEvents"]["Default"] == "Enabled"


def test_template_event_and_webhook_dead_letters_raise_alarms(resources: dict[str, Any]) -> None:
    watched = {
        json.dumps(alarm["Dimensions"][0]["Value"])
        for alarm in _alarms(resources).values()
        if alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    }
    for queue in ("WebhookDeadLetterQueue", "NotifierDeadLetterQueue"):
        assert json.dumps({"Fn::GetAtt": [queue, "QueueName"]}) in watched, queue


def test_template_webhook_deliveries_in_flight_raise_an_alarm_well_before_sqs_refuses_receives(
    resources: dict[str, Any],
) -> None:
    # Deliveries hidden until their retry is due are in flight; a standard queue holds about 120,000 in flight.
    (alarm,) = (
        alarm
        for alarm in _alarms(resources).values()
        if alarm["MetricName"] == "ApproximateNumberOfMessagesNotVisible"
        and alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["WebhookQueue", "QueueName"]}}]
    )
    assert alarm["Namespace"] == "AWS/SQS"
    assert (alarm["Statistic"], alarm["ComparisonOperator"]) == ("Maximum", "GreaterThanThreshold")
    assert 0 < alarm["Threshold"] <= SQS_IN_FLIGHT_LIMIT // 2


def test_template_outputs_name_the_bus_and_the_webhook_secret(sam_template: dict[str, Any]) -> None:
    outputs = sam_template["Outputs"]
    assert outputs["TaskEventBusName"]["Value"] == {"Ref": "TaskEventBus"}
    assert outputs["WebhookSecretArn"]["Value"] == {"Ref": "WebhookSecret"}
    assert outputs["WebhookDeadLetterQueueUrl"]["Value"] == {"Ref": "WebhookDeadLetterQueue"}
