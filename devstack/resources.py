"""The template's queues and tables, created in an emulator (moto server or `moto.mock_aws`) from their own
definitions in template.yaml, so that the local schema cannot drift from the deployed one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from graphlib import TopologicalSorter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

from devstack.template import DEFAULT_TEMPLATE, REGION, load_template, parameter_values, resolve

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

QUEUE = "AWS::SQS::Queue"
TABLE = "AWS::DynamoDB::Table"
SECRET = "AWS::SecretsManager::Secret"
BUCKET = "AWS::S3::Bucket"
SUPPORTED_TYPES = (QUEUE, TABLE, SECRET, BUCKET)

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
    def queue_url(self) -> str:
        return self._one(QUEUE, dead_letter=False).ref

    @property
    def queue_arn(self) -> str:
        return self._one(QUEUE, dead_letter=False).arn

    @property
    def payload_bucket(self) -> str:
        return self._one(BUCKET).name

    @property
    def dlq_url(self) -> str:
        return self._one(QUEUE, dead_letter=True).ref

    @property
    def max_receive_count(self) -> int:
        policy = json.loads(self._one(QUEUE, dead_letter=False).properties["RedrivePolicy"])
        return int(policy["maxReceiveCount"])

    def translator(self) -> dict[str, Any]:
        """samcli's logical id translator: parameter values, and each resource's Ref and Arn."""
        values: dict[str, Any] = {name: str(value) for name, value in self.parameters.items()}
        values.update({r.logical_id: {"Ref": r.ref, "Arn": r.arn} for r in self.resources.values()})
        return values


def create_resources(
    endpoint_url: str | None = None,
    *,
    template: str | Path = DEFAULT_TEMPLATE,
    parameter_overrides: dict[str, Any] | None = None,
    visibility_timeout: int | None = None,
    name_prefix: str = "",
    region: str = REGION,
) -> LocalResources:
    """Create the template's SQS queues and DynamoDB tables; leave alone any that exist already.

    Works against `moto.mock_aws()` (endpoint_url None) and against a moto server (its URL). Each resource is
    named `<name_prefix><LogicalId>` unless the template names it. `visibility_timeout` replaces the template's
    VisibilityTimeout on every queue: a local-only override, so that tests see a redelivery in seconds.
    """
    path = Path(template).resolve()
    raw = load_template(path)
    parameters = parameter_values(raw, parameter_overrides)
    sqs: SQSClient = boto3.client("sqs", endpoint_url=endpoint_url, region_name=region)
    dynamodb: DynamoDBClient = boto3.client("dynamodb", endpoint_url=endpoint_url, region_name=region)

    definitions = {
        logical_id: resource
        for logical_id, resource in raw.get("Resources", {}).items()
        if resource.get("Type") in SUPPORTED_TYPES
    }
    order = TopologicalSorter({lid: _references(res, definitions) for lid, res in definitions.items()})
    created: dict[str, LocalResource] = {}
    for logical_id in order.static_order():
        # CloudFormation passes every parameter as a string (Fn::FindInMap keys on them so).
        translator: dict[str, Any] = {name: str(value) for name, value in parameters.items()}
        translator.update({r.logical_id: {"Ref": r.ref, "Arn": r.arn} for r in created.values()})
        properties = resolve(raw, definitions[logical_id].get("Properties", {}), translator) or {}
        resource_type = definitions[logical_id]["Type"]
        if resource_type == QUEUE:
            created[logical_id] = _create_queue(sqs, logical_id, properties, name_prefix, visibility_timeout)
        elif resource_type == SECRET:
            secrets = boto3.client("secretsmanager", endpoint_url=endpoint_url, region_name=region)
            created[logical_id] = _create_secret(secrets, logical_id, properties, name_prefix)
        elif resource_type == BUCKET:
            s3 = boto3.client("s3", endpoint_url=endpoint_url, region_name=region)
            created[logical_id] = _create_bucket(s3, logical_id, properties, name_prefix)
        else:
            created[logical_id] = _create_table(dynamodb, logical_id, properties, name_prefix)
    return LocalResources(path, parameters, created, endpoint_url)


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


def _create_queue(
    sqs: SQSClient, logical_id: str, properties: dict[str, Any], prefix: str, visibility_timeout: int | None
) -> LocalResource:
    name = properties.get("QueueName") or f"{prefix}{logical_id}{'.fifo' if properties.get('FifoQueue') else ''}"
    attributes = {key: _attribute(properties[key]) for key in _QUEUE_ATTRIBUTES if key in properties}
    if visibility_timeout is not None:
        attributes["VisibilityTimeout"] = str(visibility_timeout)
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


def _create_table(dynamodb: DynamoDBClient, logical_id: str, properties: dict[str, Any], prefix: str) -> LocalResource:
    name = properties.get("TableName") or f"{prefix}{logical_id}"
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
    for key in ("ProvisionedThroughput", "GlobalSecondaryIndexes", "LocalSecondaryIndexes", "StreamSpecification"):
        if key in properties:
            request[key] = properties[key]
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


def _create_secret(secrets: Any, logical_id: str, properties: dict[str, Any], prefix: str) -> LocalResource:
    """A secret with a value generated as GenerateSecretString asks (Secrets Manager's own GetRandomPassword); its
    Ref is its ARN."""
    name = properties.get("Name") or f"{prefix}{logical_id}"
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


def _create_bucket(s3: Any, logical_id: str, properties: dict[str, Any], prefix: str) -> LocalResource:
    """A bucket with the template's encryption, public access block and lifecycle rules. (Its bucket policy, TLS only,
    is not applied: the local stack speaks plain HTTP on loopback.)"""
    name = properties.get("BucketName") or f"{prefix}{logical_id}".lower()  # S3 bucket names are lowercase
    try:
        s3.head_bucket(Bucket=name)
    except ClientError:
        s3.create_bucket(Bucket=name)
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
    return LocalResource(logical_id, BUCKET, name, f"arn:aws:s3:::{name}", name, properties)


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """A CloudFormation lifecycle rule in the S3 API's shape."""
    converted: dict[str, Any] = {"ID": rule.get("Id", "rule"), "Status": rule["Status"], "Filter": {"Prefix": ""}}
    if "ExpirationInDays" in rule:
        converted["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "AbortIncompleteMultipartUpload" in rule:
        days = int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
        converted["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": days}
    return converted
