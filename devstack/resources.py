"""The template's queues and tables, created in an emulator (moto server or `moto.mock_aws`) from their own
definitions in template.yaml, so that the local schema cannot drift from the deployed one.

Each resource type the stack emulates has one creator in CREATORS: it gets the resolved properties and returns the
LocalResource (name, ARN, what !Ref gives). A new type is one more small function and one more entry."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from graphlib import TopologicalSorter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

from devstack.template import (
    ACCOUNT_ID,
    DEFAULT_TEMPLATE,
    REGION,
    load_template,
    parameter_values,
    resolve_without_no_value,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

QUEUE = "AWS::SQS::Queue"
TABLE = "AWS::DynamoDB::Table"
SECRET = "AWS::SecretsManager::Secret"
BUCKET = "AWS::S3::Bucket"
EVENT_BUS = "AWS::Events::EventBus"
RULE = "AWS::Events::Rule"
QUEUE_POLICY = "AWS::SQS::QueuePolicy"

# CloudFormation properties of AWS::SQS::Queue that are SQS queue attributes of the same name.
_QUEUE_ATTRIBUTES = (
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "DelaySeconds",
    "FifoQueue",
    "FifoThroughputLimit",
    "KmsDataKeyReusePeriodSeconds",
    "KmsMasterKeyId",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "RedriveAllowPolicy",
    "RedrivePolicy",
    "SqsManagedSseEnabled",
    "VisibilityTimeout",
)


@dataclass(frozen=True)
class LocalResource:
    logical_id: str
    type: str
    name: str
    arn: str
    # What !Ref gives: a queue's URL, a table's name.
    ref: str
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LocalResources:
    """The template's resources as created locally, and the values its intrinsics resolve to."""

    template_path: Path
    parameters: dict[str, Any]
    resources: dict[str, LocalResource]
    endpoint_url: str | None = None
    # What `!Ref <Function>.Alias` gives for each function with an AutoPublishAlias: the alias's ARN. (Lambda is the
    # stack's own, devstack.lambda_service, not moto's.)
    aliases: dict[str, dict[str, str]] = field(default_factory=dict)

    def __getitem__(self, logical_id: str) -> LocalResource:
        return self.resources[logical_id]

    def of_type(self, resource_type: str) -> Iterator[LocalResource]:
        return (resource for resource in self.resources.values() if resource.type == resource_type)

    def _one(self, resource_type: str, *, dead_letter: bool | None = None) -> LocalResource:
        found = [r for r in self.of_type(resource_type) if dead_letter is None or self._is_dlq(r) == dead_letter]
        if len(found) != 1:
            raise LookupError(f"expected one {resource_type} (dead letter: {dead_letter}), found {len(found)}")
        return found[0]

    def _is_dlq(self, queue: LocalResource) -> bool:
        return any(
            json.loads(other.properties.get("RedrivePolicy", "{}")).get("deadLetterTargetArn") == queue.arn
            for other in self.of_type(QUEUE)
        )

    @property
    def table_name(self) -> str:
        return self._one(TABLE).name

    @property
    def _task_queue(self) -> LocalResource:
        # The queue the task messages go to: the one of its type that is no dead-letter queue, or, among several
        # (the webhook queue beside it), the one named TaskQueue.
        if "TaskQueue" in self.resources:
            return self.resources["TaskQueue"]
        return self._one(QUEUE, dead_letter=False)

    @property
    def queue_url(self) -> str:
        return self._task_queue.ref

    @property
    def queue_arn(self) -> str:
        return self._task_queue.arn

    @property
    def payload_bucket(self) -> str:
        return self._one(BUCKET).name

    @property
    def dlq_url(self) -> str:
        if "TaskDeadLetterQueue" in self.resources:
            return self.resources["TaskDeadLetterQueue"].ref
        return self._one(QUEUE, dead_letter=True).ref

    @property
    def max_receive_count(self) -> int:
        policy = json.loads(self._task_queue.properties["RedrivePolicy"])
        return int(policy["maxReceiveCount"])

    def translator(self) -> dict[str, Any]:
        """samcli's logical id translator: parameter values, and each resource's Ref and Arn."""
        values: dict[str, Any] = {name: str(value) for name, value in self.parameters.items()}
        values.update({r.logical_id: {"Ref": r.ref, "Arn": r.arn} for r in self.resources.values()})
        values.update(self.aliases)
        return values


@dataclass
class Creation:
    """What every creator needs besides the resource's own definition."""

    endpoint_url: str | None
    region: str
    name_prefix: str
    visibility_timeout: int | None
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    def client(self, service: str) -> Any:
        """One client per service for one create_resources call."""
        if service not in self._clients:
            self._clients[service] = boto3.client(service, endpoint_url=self.endpoint_url, region_name=self.region)  # type: ignore[call-overload]
        return self._clients[service]

    def name(self, logical_id: str, properties: dict[str, Any], name_property: str, suffix: str = "") -> str:
        return str(properties.get(name_property) or f"{self.name_prefix}{logical_id}{suffix}")


def create_resources(
    endpoint_url: str | None = None,
    *,
    template: str | Path = DEFAULT_TEMPLATE,
    parameter_overrides: dict[str, Any] | None = None,
    visibility_timeout: int | None = None,
    name_prefix: str = "",
    region: str = REGION,
) -> LocalResources:
    """Create the template's resources of the types in CREATORS; leave alone any that exist already.

    Works against `moto.mock_aws()` (endpoint_url None) and against a moto server (its URL). Each resource is
    named `<name_prefix><LogicalId>` unless the template names it. `visibility_timeout` replaces the template's
    VisibilityTimeout on every queue: a local-only override, so that tests see a redelivery in seconds.
    """
    path = Path(template).resolve()
    raw = load_template(path)
    parameters = parameter_values(raw, parameter_overrides)
    creation = Creation(endpoint_url, region, name_prefix, visibility_timeout)
    definitions = {
        logical_id: resource
        for logical_id, resource in raw.get("Resources", {}).items()
        if resource.get("Type") in CREATORS
    }
    order = TopologicalSorter({lid: _references(res, definitions) for lid, res in definitions.items()})
    # CloudFormation passes every parameter as a string (Fn::FindInMap keys on them so).
    strings = {name: str(value) for name, value in parameters.items()}
    aliases = _aliases(raw, strings, region)
    created: dict[str, LocalResource] = {}
    for logical_id in order.static_order():
        translator: dict[str, Any] = strings | aliases
        translator.update({r.logical_id: {"Ref": r.ref, "Arn": r.arn} for r in created.values()})
        properties = resolve_without_no_value(raw, definitions[logical_id].get("Properties", {}), translator) or {}
        created[logical_id] = CREATORS[definitions[logical_id]["Type"]](creation, logical_id, properties)
    return LocalResources(path, parameters, created, endpoint_url, aliases)


def _aliases(raw: dict[str, Any], parameters: dict[str, str], region: str) -> dict[str, dict[str, str]]:
    """`<Function>.Alias`: {"Ref": the alias's ARN} for each function with an AutoPublishAlias. (Not the functions'
    own ids: samcli renames a resource to what the translator maps its id to.)"""
    aliases: dict[str, dict[str, str]] = {}
    for logical_id, resource in raw.get("Resources", {}).items():
        properties = resource.get("Properties", {})
        if resource.get("Type") == "AWS::Serverless::Function" and "AutoPublishAlias" in properties:
            name, alias = resolve_without_no_value(
                raw, [properties.get("FunctionName", logical_id), properties["AutoPublishAlias"]], parameters
            )
            aliases[f"{logical_id}.Alias"] = {"Ref": f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{name}:{alias}"}
    return aliases


def _references(value: Any, candidates: dict[str, Any]) -> set[str]:
    """Logical ids among `candidates` that `value` refers to through Ref, Fn::GetAtt or Fn::Sub."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "Ref" and item in candidates:
                found.add(item)
            elif key == "Fn::GetAtt":
                target = item[0] if isinstance(item, list) else str(item).split(".", 1)[0]
                if target in candidates:
                    found.add(target)
            elif key == "Fn::Sub":
                text = item[0] if isinstance(item, list) else item
                found.update(c for c in candidates if f"${{{c}}}" in text or f"${{{c}." in text)
            found.update(_references(item, candidates))
    elif isinstance(value, list):
        for item in value:
            found.update(_references(item, candidates))
    return found


def _attribute(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _create_queue(creation: Creation, logical_id: str, properties: dict[str, Any]) -> LocalResource:
    sqs: SQSClient = creation.client("sqs")
    name = creation.name(logical_id, properties, "QueueName", ".fifo" if properties.get("FifoQueue") else "")
    attributes = {key: _attribute(properties[key]) for key in _QUEUE_ATTRIBUTES if key in properties}
    if creation.visibility_timeout is not None:
        attributes["VisibilityTimeout"] = str(creation.visibility_timeout)
    if "RedrivePolicy" in attributes:
        # SQS wants the count as a number inside the policy's JSON, whatever type the template resolved to.
        policy = json.loads(attributes["RedrivePolicy"])
        policy["maxReceiveCount"] = int(policy["maxReceiveCount"])
        attributes["RedrivePolicy"] = json.dumps(policy)
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in (
            "AWS.SimpleQueueService.NonExistentQueue",
            "QueueDoesNotExist",
        ):
            raise
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]  # type: ignore[arg-type]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return LocalResource(logical_id, QUEUE, name, arn, url, attributes)


def _create_table(creation: Creation, logical_id: str, properties: dict[str, Any]) -> LocalResource:
    dynamodb: DynamoDBClient = creation.client("dynamodb")
    name = creation.name(logical_id, properties, "TableName")
    try:
        arn = dynamodb.describe_table(TableName=name)["Table"]["TableArn"]
    except dynamodb.exceptions.ResourceNotFoundException:
        arn = _new_table(dynamodb, name, properties)
    return LocalResource(logical_id, TABLE, name, arn, name, properties)


def _new_table(dynamodb: DynamoDBClient, name: str, properties: dict[str, Any]) -> str:
    request: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "KeySchema": properties["KeySchema"],
        "BillingMode": properties.get("BillingMode", "PROVISIONED"),
    }
    for key in ("ProvisionedThroughput", "GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if key in properties:
            request[key] = properties[key]
    if "StreamSpecification" in properties:
        # CloudFormation's StreamSpecification has the view type only; the API's says the stream is on, too.
        request["StreamSpecification"] = {"StreamEnabled": True} | properties["StreamSpecification"]
    if request["BillingMode"] == "PAY_PER_REQUEST":
        for index in request.get("GlobalSecondaryIndexes", []):
            index.pop("ProvisionedThroughput", None)
    if "SSESpecification" in properties:
        sse = properties["SSESpecification"]
        request["SSESpecification"] = {"Enabled": bool(sse.get("SSEEnabled"))} | (
            {"SSEType": sse["SSEType"]} if "SSEType" in sse else {}
        )
    arn = dynamodb.create_table(**request)["TableDescription"]["TableArn"]
    dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    ttl = properties.get("TimeToLiveSpecification")
    if ttl:
        dynamodb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": bool(ttl.get("Enabled"))},
        )
    pitr = properties.get("PointInTimeRecoverySpecification")
    if pitr:
        dynamodb.update_continuous_backups(
            TableName=name,
            PointInTimeRecoverySpecification={
                "PointInTimeRecoveryEnabled": bool(pitr.get("PointInTimeRecoveryEnabled"))
            },
        )
    return arn


def _create_secret(creation: Creation, logical_id: str, properties: dict[str, Any]) -> LocalResource:
    """A secret with a value generated as GenerateSecretString asks (Secrets Manager's own GetRandomPassword); its
    Ref is its ARN."""
    secrets = creation.client("secretsmanager")
    name = creation.name(logical_id, properties, "Name")
    try:
        arn = secrets.describe_secret(SecretId=name)["ARN"]
    except secrets.exceptions.ResourceNotFoundException:
        generate = properties.get("GenerateSecretString", {})
        value = secrets.get_random_password(
            PasswordLength=int(generate.get("PasswordLength", 32)),
            ExcludePunctuation=bool(generate.get("ExcludePunctuation", False)),
        )["RandomPassword"]
        arn = secrets.create_secret(Name=name, SecretString=value)["ARN"]
    return LocalResource(logical_id, SECRET, name, arn, arn, properties)


def _create_bucket(creation: Creation, logical_id: str, properties: dict[str, Any]) -> LocalResource:
    """A bucket with the template's versioning, encryption, public access block and lifecycle rules. (Its bucket
    policy, TLS only, is not applied: the local stack speaks plain HTTP on loopback.)"""
    s3 = creation.client("s3")
    name = creation.name(logical_id, properties, "BucketName").lower()  # S3 bucket names are lowercase
    try:
        s3.head_bucket(Bucket=name)
    except ClientError:
        s3.create_bucket(Bucket=name)
        if "VersioningConfiguration" in properties:
            status = properties["VersioningConfiguration"]["Status"]
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": status})
        encryption = properties.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
        if encryption:
            # CloudFormation's ServerSideEncryptionByDefault is the API's ApplyServerSideEncryptionByDefault.
            rules = [
                {"ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]}
                | ({"BucketKeyEnabled": rule["BucketKeyEnabled"]} if "BucketKeyEnabled" in rule else {})
                for rule in encryption
            ]
            s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
        if "PublicAccessBlockConfiguration" in properties:
            s3.put_public_access_block(
                Bucket=name, PublicAccessBlockConfiguration=properties["PublicAccessBlockConfiguration"]
            )
        rules = properties.get("LifecycleConfiguration", {}).get("Rules", [])
        if rules:
            s3.put_bucket_lifecycle_configuration(
                Bucket=name, LifecycleConfiguration={"Rules": [_lifecycle_rule(rule) for rule in rules]}
            )
        cors = properties.get("CorsConfiguration", {}).get("CorsRules", [])
        if cors:
            s3.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": [_cors_rule(rule) for rule in cors]})
    return LocalResource(logical_id, BUCKET, name, f"arn:aws:s3:::{name}", name, properties)


def _cors_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """A CloudFormation CORS rule in the S3 API's shape (its MaxAge, ExposedHeaders and Id are MaxAgeSeconds,
    ExposeHeaders and ID there)."""
    names = {"MaxAge": "MaxAgeSeconds", "ExposedHeaders": "ExposeHeaders", "Id": "ID"}
    return {names.get(key, key): int(value) if key == "MaxAge" else value for key, value in rule.items()}


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """A CloudFormation lifecycle rule in the S3 API's shape."""
    converted: dict[str, Any] = {
        "ID": rule.get("Id", "rule"),
        "Status": rule["Status"],
        "Filter": {"Prefix": rule.get("Prefix", "")},
    }
    if "ExpirationInDays" in rule:
        converted["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "ExpiredObjectDeleteMarker" in rule:
        converted["Expiration"] = {"ExpiredObjectDeleteMarker": bool(rule["ExpiredObjectDeleteMarker"])}
    if "NoncurrentVersionExpiration" in rule:
        days = int(rule["NoncurrentVersionExpiration"]["NoncurrentDays"])
        converted["NoncurrentVersionExpiration"] = {"NoncurrentDays": days}
    if "AbortIncompleteMultipartUpload" in rule:
        days = int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
        converted["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": days}
    return converted


def _create_event_bus(creation: Creation, logical_id: str, properties: dict[str, Any]) -> LocalResource:
    """An EventBridge bus; its Ref is its name. Rules on it (a test's, a developer's) route its events in moto."""
    events = creation.client("events")
    name = creation.name(logical_id, properties, "Name")
    try:
        arn = events.describe_event_bus(Name=name)["Arn"]
    except events.exceptions.ResourceNotFoundException:
        arn = events.create_event_bus(Name=name)["EventBusArn"]
    return LocalResource(logical_id, EVENT_BUS, name, arn, name, properties)


def _create_rule(creation: Creation, logical_id: str, properties: dict[str, Any]) -> LocalResource:
    """An EventBridge rule and its targets; moto routes the events that match it (SQS targets included). Its Ref is
    its name."""
    events = creation.client("events")
    name = creation.name(logical_id, properties, "Name")
    bus = properties.get("EventBusName", "default")
    arn = events.put_rule(
        Name=name,
        EventBusName=bus,
        EventPattern=json.dumps(properties["EventPattern"]),
        State=properties.get("State", "ENABLED"),
        Description=properties.get("Description", ""),
    )["RuleArn"]
    targets = [{"Id": target["Id"], "Arn": target["Arn"]} for target in properties.get("Targets", [])]
    if targets:
        events.put_targets(Rule=name, EventBusName=bus, Targets=targets)
    return LocalResource(logical_id, RULE, name, arn, name, properties)


def _create_queue_policy(creation: Creation, logical_id: str, properties: dict[str, Any]) -> LocalResource:
    """The policy set on each of its queues (moto keeps it; it does not enforce it)."""
    sqs: SQSClient = creation.client("sqs")
    for url in properties["Queues"]:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(properties["PolicyDocument"])})
    return LocalResource(logical_id, QUEUE_POLICY, logical_id, "", logical_id, properties)


Creator = Callable[[Creation, str, dict[str, Any]], LocalResource]
# The resource types the local stack creates, each by one function.
CREATORS: dict[str, Creator] = {
    QUEUE: _create_queue,
    TABLE: _create_table,
    SECRET: _create_secret,
    BUCKET: _create_bucket,
    EVENT_BUS: _create_event_bus,
    RULE: _create_rule,
    QUEUE_POLICY: _create_queue_policy,
}
