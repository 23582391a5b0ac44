"""template.yaml: the linters pass, and the SAM-transformed template keeps the production promises (auth on every
route, least privilege, encryption, dead letters, log retention, alarms) under every AuthType."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from samcli.yamlhelper import yaml_parse
from samtranslator.translator.transform import transform

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
BIN = Path(sys.executable).parent
AUTH_TYPES = ("AWS_IAM", "JWT", "NONE")
JWT_PARAMETERS = {"JwtIssuer": "https://issuer.example.com", "JwtAudience": "task-api"}
FUNCTIONS = (
    "SubmitFunction",
    "ResultFunction",
    "WorkerFunction",
    "DeadLetterFunction",
    "NotifierFunction",
    "WebhookFunction",
    "DurableRunnerFunction",
)
SQS_FUNCTIONS = ("WorkerFunction", "DeadLetterFunction", "WebhookFunction")
STREAM_FUNCTIONS = ("NotifierFunction",)
API_FUNCTIONS = ("SubmitFunction", "ResultFunction")
# What SAM attaches by itself: basic execution (logs), X-Ray (Tracing: Active) and, for the SQS event source,
# queue polling. Their account-wide resources are capped by FunctionPermissionsBoundary (tested below).
SAM_MANAGED_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
}
SQS_POLLER_POLICY = "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole"
# What SAM attaches to a durable function's role instead of AWSLambdaBasicExecutionRole: logs, and its executions'
# checkpoints on every resource (the boundary narrows them to the stack's runner).
DURABLE_POLICY = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicDurableExecutionRolePolicy"
# The durable runner's executions, on every version (function:<name>:<version>/durable-execution/...): a durable
# execution's ARN always names a version, never an alias, so this is how AWS has them granted.
DURABLE_EXECUTIONS = {
    "Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${AWS::StackName}-durable-runner:*"
}
STREAM_POLLER_POLICY = "arn:aws:iam::aws:policy/service-role/AWSLambdaDynamoDBExecutionRole"
# Actions that support no resource-level permissions, so "*" is the only possible resource.
UNSCOPABLE_ACTION_PREFIXES = ("xray:", "dynamodb:ListStreams")
# The dashboard's static files: the only routes without the chosen auth (the page holds no data; its calls carry the
# user's token).
OPEN_ROUTES = {("/dashboard", "get"), ("/dashboard/app.js", "get"), ("/dashboard/app.css", "get")}
# Browsers' CORS preflights of the routes an ANY route serves (an ANY route also catches OPTIONS): they carry no
# credentials, so they must reach no authorizer.
PREFLIGHT_ROUTES = {("/{task}/{task_id}", "options")}
OWNER_INDEX_ARN = {"Fn::Sub": "${TasksTable.Arn}/index/by-owner"}


class _NoManagedPolicies:
    """Stands in for samtranslator's ManagedPolicyLoader: needed only for policy names, which we do not use."""

    def load(self) -> dict[str, str]:
        return {}


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0"}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


def _sam_transform(template: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    template = copy.deepcopy(template)
    # `sam build` replaces the local CodeUri with the built artefact; the transform wants an S3 location.
    template["Globals"]["Function"]["CodeUri"] = "s3://bucket/functions.zip"
    for name, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Serverless::LayerVersion":
            resource["Properties"]["ContentUri"] = f"s3://bucket/{name}.zip"
    values = {"AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws", **parameters}
    transformed: dict[str, Any] = transform(template, values, _NoManagedPolicies())
    return transformed


class Resolver:
    """Evaluates a transformed template's conditions and Fn::If for given parameter values, as CloudFormation
    would, leaving every other intrinsic as it is."""

    def __init__(self, template: dict[str, Any], parameters: dict[str, Any]) -> None:
        defaults = {name: spec.get("Default") for name, spec in template.get("Parameters", {}).items()}
        self.parameters = {**defaults, **parameters}
        self.conditions = template.get("Conditions", {})
        self._cache: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._cache:
            self._cache[name] = self._truth(self.conditions[name])
        return self._cache[name]

    def _value(self, node: Any) -> Any:
        if isinstance(node, dict) and set(node) == {"Ref"} and node["Ref"] in self.parameters:
            return self.parameters[node["Ref"]]
        if isinstance(node, dict) and set(node) == {"Fn::Join"}:
            separator, items = node["Fn::Join"]
            items = self._value(items)
            # A CommaDelimitedList parameter is a list; its default here is the template's text.
            return separator.join(items.split(",") if isinstance(items, str) else map(str, items))
        return node

    def _truth(self, node: Any) -> bool:
        (function, args), *_ = node.items()
        if function == "Fn::Equals":
            return bool(str(self._value(args[0])) == str(self._value(args[1])))
        if function == "Fn::Not":
            return not self._truth(args[0])
        if function == "Fn::And":
            return all(self._truth(arg) for arg in args)
        if function == "Fn::Or":
            return any(self._truth(arg) for arg in args)
        if function == "Condition":
            return self.condition(args)
        raise AssertionError(f"condition function {function} is not handled by this test")

    def resolve(self, node: Any) -> Any:
        if isinstance(node, dict):
            if set(node) == {"Fn::If"}:
                name, if_true, if_false = node["Fn::If"]
                return self.resolve(if_true if self.condition(name) else if_false)
            resolved = {key: self.resolve(value) for key, value in node.items()}
            return {key: value for key, value in resolved.items() if value != {"Ref": "AWS::NoValue"}}
        if isinstance(node, list):
            return [self.resolve(item) for item in node if self.resolve(item) != {"Ref": "AWS::NoValue"}]
        return node


@pytest.fixture(scope="module")
def sam_template() -> dict[str, Any]:
    return yaml_parse(TEMPLATE.read_text())  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def deployed(sam_template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per AuthType, the transformed template with conditions and Fn::If resolved, as CloudFormation deploys it."""
    result = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_DEFAULT_REGION", "eu-west-1")  # the transform insists on a region
        for auth_type in AUTH_TYPES:
            parameters = {"AuthType": auth_type, **(JWT_PARAMETERS if auth_type == "JWT" else {})}
            transformed = _sam_transform(sam_template, parameters)
            resolver = Resolver(transformed, parameters)
            resources = {
                name: resolver.resolve(resource)
                for name, resource in transformed["Resources"].items()
                if "Condition" not in resource or resolver.condition(resource["Condition"])
            }
            result[auth_type] = {**transformed, "Resources": resources}
    return result


@pytest.fixture(scope="module")
def resources(deployed: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The default deployment's resources (AuthType AWS_IAM)."""
    default: dict[str, Any] = deployed["AWS_IAM"]["Resources"]
    return default


def of_type(resources: dict[str, Any], resource_type: str) -> dict[str, Any]:
    return {name: resource for name, resource in resources.items() if resource["Type"] == resource_type}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# ---- linters


def test_template_sam_validate_lint_passes() -> None:
    completed = _run([str(BIN / "sam"), "validate", "--lint", "--template-file", str(TEMPLATE)])
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_template_cfn_lint_serverless_rules_report_nothing() -> None:
    completed = _run([str(BIN / "cfn-lint"), "-a", "cfn_lint_serverless.rules", "--", str(TEMPLATE)])
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_template_cfn_lint_suppressions_say_why() -> None:
    lines = TEMPLATE.read_text().splitlines()
    suppressions = [number for number, line in enumerate(lines) if "ignore_checks" in line]
    assert suppressions, "expected the documented suppressions"
    for number in suppressions:
        assert lines[number - 1].strip().startswith("#"), f"line {number + 1}: say why above ignore_checks"


def _checkov() -> str | None:
    """checkov pins an old boto3, so it lives in its own virtual environment (see the Makefile / README)."""
    for candidate in (os.environ.get("CHECKOV"), str(ROOT / ".venv-checkov" / "bin" / "checkov")):
        if candidate and Path(candidate).is_file():
            return candidate
    return shutil.which("checkov")


def test_template_checkov_reports_nothing() -> None:
    checkov = _checkov()
    if checkov is None:
        # `make test` installs it; only a bare pytest run outside CI may go without.
        assert not os.environ.get("CI"), "checkov is missing in CI: `make test` installs it in .venv-checkov"
        pytest.skip("checkov not installed: python -m venv .venv-checkov && .venv-checkov/bin/pip install checkov")
    started = time.monotonic()
    completed = _run(
        [checkov, "-f", str(TEMPLATE), "--framework", "cloudformation", "--skip-download", "--quiet", "--compact"]
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert time.monotonic() - started < 120


def test_template_checkov_skips_say_why(sam_template: dict[str, Any]) -> None:
    skips = [
        (name, skip)
        for name, resource in sam_template["Resources"].items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert skips, "expected the documented checkov skips"
    for name, skip in skips:
        assert re.fullmatch(r"CKV2?_AWS_\d+", skip.get("id", "")), (name, skip)
        assert len(skip.get("comment", "")) > 20, f"{name} skips {skip.get('id')} without a reason"


# ---- authentication and abuse


def test_template_api_stays_an_http_api(sam_template: dict[str, Any]) -> None:
    assert sam_template["Resources"]["HttpApi"]["Type"] == "AWS::Serverless::HttpApi"


def test_template_auth_defaults_to_iam(sam_template: dict[str, Any]) -> None:
    assert sam_template["Parameters"]["AuthType"]["Default"] == "AWS_IAM"


def _routes(resources: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    body = resources["HttpApi"]["Properties"]["Body"]
    return {(path, method): operation for path, item in body["paths"].items() for method, operation in item.items()}


def test_template_routes_are_the_functions_http_events(sam_template: dict[str, Any], resources: dict[str, Any]) -> None:
    events = {
        (event["Properties"]["Path"], event["Properties"]["Method"].lower())
        for name in API_FUNCTIONS
        for event in sam_template["Resources"][name]["Properties"]["Events"].values()
        if event["Type"] == "HttpApi"
    }
    routes = {
        (path, method.removeprefix("x-amazon-apigateway-").removesuffix("-method"))
        for path, method in _routes(resources)
    }
    assert routes == events


@pytest.mark.parametrize(("auth_type", "scheme"), [("AWS_IAM", "AWS_IAM"), ("JWT", "JwtAuthorizer")])
def test_template_every_route_requires_the_chosen_auth(
    deployed: dict[str, dict[str, Any]], auth_type: str, scheme: str
) -> None:
    resources = deployed[auth_type]["Resources"]
    routes = _routes(resources)
    assert set(routes) > OPEN_ROUTES | PREFLIGHT_ROUTES
    for route, operation in routes.items():
        if route not in OPEN_ROUTES | PREFLIGHT_ROUTES:
            assert operation.get("security") == [{scheme: []}], route
    schemes = resources["HttpApi"]["Properties"]["Body"]["components"]["securitySchemes"]
    if auth_type == "AWS_IAM":
        assert schemes["AWS_IAM"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    else:
        jwt = schemes["JwtAuthorizer"]["x-amazon-apigateway-authorizer"]
        assert jwt["type"] == "jwt"
        assert jwt["jwtConfiguration"] == {"issuer": {"Ref": "JwtIssuer"}, "audience": {"Ref": "JwtAudience"}}


@pytest.mark.parametrize("auth_type", AUTH_TYPES)
def test_template_dashboard_routes_alone_take_no_authorizer(
    deployed: dict[str, dict[str, Any]], auth_type: str
) -> None:
    routes = _routes(deployed[auth_type]["Resources"])

    open_routes = {route for route, operation in routes.items() if "security" not in operation}

    assert open_routes == (set(routes) if auth_type == "NONE" else OPEN_ROUTES | PREFLIGHT_ROUTES)
    for path, _ in OPEN_ROUTES:
        integration = routes[(path, "get")]["x-amazon-apigateway-integration"]
        assert "ResultFunction.Arn" in json.dumps(integration["uri"])


@pytest.mark.parametrize("auth_type", ["AWS_IAM", "JWT"])
def test_template_no_browser_preflight_meets_an_authorizer(deployed: dict[str, dict[str, Any]], auth_type: str) -> None:
    # API Gateway answers a preflight itself when no route of the path catches OPTIONS; an ANY route does catch it, and
    # with security it would answer a cross-origin GET's or DELETE's preflight 401 ("Configure CORS for HTTP APIs in
    # API Gateway": an OPTIONS route without authorization is the documented way out).
    routes = _routes(deployed[auth_type]["Resources"])
    for path in {path for path, _ in routes}:
        catching = routes.get((path, "options")) or routes.get((path, "x-amazon-apigateway-any-method"))
        if catching is not None:
            assert "security" not in catching, path
            assert "ResultFunction.Arn" in json.dumps(catching["x-amazon-apigateway-integration"]["uri"]), path


def test_template_auth_none_leaves_routes_open_and_no_jwt_authorizer(deployed: dict[str, dict[str, Any]]) -> None:
    resources = deployed["NONE"]["Resources"]
    assert all("security" not in operation for operation in _routes(resources).values())
    assert "JwtAuthorizer" not in resources["HttpApi"]["Properties"]["Body"]["components"]["securitySchemes"]


def test_template_jwt_requires_issuer_and_audience(sam_template: dict[str, Any]) -> None:
    rule = sam_template["Rules"]["JwtNeedsIssuerAndAudience"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "AuthType"}, "JWT"]}
    asserted = json.dumps(rule["Assertions"])
    assert '"Ref": "JwtIssuer"' in asserted
    assert '"Ref": "JwtAudience"' in asserted


def test_template_stage_is_throttled_by_parameters(resources: dict[str, Any]) -> None:
    settings = resources["HttpApiApiGatewayDefaultStage"]["Properties"]["DefaultRouteSettings"]
    assert settings == {
        "ThrottlingRateLimit": {"Ref": "ApiThrottlingRateLimit"},
        "ThrottlingBurstLimit": {"Ref": "ApiThrottlingBurstLimit"},
    }


def test_template_functions_are_traced(resources: dict[str, Any]) -> None:
    for name in FUNCTIONS:
        assert resources[name]["Properties"]["TracingConfig"] == {"Mode": "Active"}, name


def test_template_tasks_packages_layer_is_the_workers_alone(resources: dict[str, Any]) -> None:
    # SAM names a layer version after its logical id and a hash of its content.
    (layer_id,) = (
        name for name in of_type(resources, "AWS::Lambda::LayerVersion") if name.startswith("TaskPackagesLayer")
    )
    layer = resources[layer_id]["Properties"]
    worker = resources["WorkerFunction"]["Properties"]

    assert worker["Layers"] == [{"Ref": layer_id}]
    for name in API_FUNCTIONS:
        assert "Layers" not in resources[name]["Properties"], name
    assert layer["CompatibleRuntimes"] == [worker["Runtime"]]
    assert layer["CompatibleArchitectures"] == worker["Architectures"]


def test_template_tasks_packages_layer_is_built_for_the_workers_runtime(sam_template: dict[str, Any]) -> None:
    layer = sam_template["Resources"]["TaskPackagesLayer"]
    function_globals = sam_template["Globals"]["Function"]

    assert layer["Properties"]["ContentUri"] == "layers/tasks/"
    assert (ROOT / "layers" / "tasks" / "requirements.txt").is_file()
    assert layer["Metadata"] == {
        "BuildMethod": function_globals["Runtime"],
        "BuildArchitecture": function_globals["Architectures"][0],
    }


# ---- least privilege


def _statements(policy_document: dict[str, Any]) -> list[dict[str, Any]]:
    return as_list(policy_document["Statement"])


PAYLOAD_PREFIXES = ("inputs", "uploads", "results", "checkpoints")


def _payload_prefix(resource: Any) -> str | None:
    """The payload bucket's key prefix a resource names (`${PayloadBucket.Arn}/inputs/*`), None for anything else:
    the only wildcard a function's own policy may hold is the objects under one of its prefixes."""
    match = re.fullmatch(
        r"\$\{PayloadBucket\.Arn\}/(\w+)/\*", resource.get("Fn::Sub", "") if isinstance(resource, dict) else ""
    )
    return match.group(1) if match and match.group(1) in PAYLOAD_PREFIXES else None


def _allowed(resources: dict[str, Any], function: str, service: str) -> dict[str, list[Any]]:
    """Each action of one service (`s3:`, `dynamodb:`) the function's role allows, with the resources it allows it on."""
    role = resources[resources[function]["Properties"]["Role"]["Fn::GetAtt"][0]]["Properties"]
    allowed: dict[str, list[Any]] = {}
    for policy in role.get("Policies", []):
        for statement in _statements(policy["PolicyDocument"]):
            for action in as_list(statement["Action"]):
                if action.startswith(service):
                    allowed.setdefault(action, []).extend(as_list(statement["Resource"]))
    return allowed


def _object_grants(resources: dict[str, Any], function: str) -> dict[str, set[str]]:
    """The payload bucket's prefixes each S3 action is allowed on, for one function."""
    grants: dict[str, set[str]] = {}
    for action, allowed in _allowed(resources, function, "s3:").items():
        prefixes = {_payload_prefix(resource) for resource in allowed}
        assert None not in prefixes, (function, action, allowed)
        grants[action] = {prefix for prefix in prefixes if prefix}
    return grants


def test_template_each_function_may_touch_only_the_payload_prefixes_it_uses(resources: dict[str, Any]) -> None:
    assert _object_grants(resources, "SubmitFunction") == {
        "s3:PutObject": {"inputs", "uploads"},  # a large inline input; the upload forms it signs
        "s3:GetObject": {"uploads"},  # does a submitted upload exist?
    }
    assert _object_grants(resources, "WorkerFunction") == {
        "s3:GetObject": {"inputs", "uploads"},
        "s3:GetObjectVersion": {"uploads"},  # an upload as its task was accepted
        "s3:PutObject": {"results"},
    }
    # Download links: of results (GET .../result), and of inputs kept apart (GET .../input), an upload's in its version.
    assert _object_grants(resources, "ResultFunction") == {
        "s3:GetObject": {"results", "inputs", "uploads"},
        "s3:GetObjectVersion": {"uploads"},
    }
    # A durable task's input (an upload's in its version) and result, and its step values too large for a checkpoint.
    assert _object_grants(resources, "DurableRunnerFunction") == {
        "s3:GetObject": {"inputs", "uploads", "checkpoints"},
        "s3:GetObjectVersion": {"uploads"},
        "s3:PutObject": {"results", "checkpoints"},
    }
    assert _object_grants(resources, "DeadLetterFunction") == {}
    assert _object_grants(resources, "NotifierFunction") == {}
    assert _object_grants(resources, "WebhookFunction") == {}


def test_template_iam_owner_chooses_role_or_session_for_the_api_functions(
    sam_template: dict[str, Any], resources: dict[str, Any]
) -> None:
    from core.domain.identity import IamOwner

    parameter = sam_template["Parameters"]["IamOwner"]
    assert parameter["Default"] == "Role"  # as before the parameter: one owner per role
    assert parameter["AllowedValues"] == [mode.value for mode in IamOwner]
    # Every function that works out a caller's owner reads it.
    for name in ("SubmitFunction", "ResultFunction"):
        assert resources[name]["Properties"]["Environment"]["Variables"]["IAM_OWNER"] == {"Ref": "IamOwner"}, name


def test_template_submit_bounds_inputs_by_the_workers_memory(resources: dict[str, Any]) -> None:
    # The largest input a task can take (POST /uploads' 413, the form's limit) follows WorkerMemorySize.
    variables = resources["SubmitFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["WORKER_MEMORY_MB"] == {"Ref": "WorkerMemorySize"}
    assert resources["WorkerFunction"]["Properties"]["MemorySize"] == {"Ref": "WorkerMemorySize"}


def test_template_payload_bucket_is_private_encrypted_tls_only_and_expires_with_the_tasks(
    resources: dict[str, Any],
) -> None:
    bucket = resources["PayloadBucket"]["Properties"]
    assert bucket["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
    )
    (encryption,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    # Versions: a task reads its upload as it was accepted, whatever is posted to the form after.
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    rules = {rule.get("Prefix"): rule for rule in bucket["LifecycleConfiguration"]["Rules"]}
    assert all(rule["Status"] == "Enabled" for rule in rules.values())
    retention = {"Ref": "TaskRetentionDays"}
    # Every prefix the functions write expires, and no version outlives what reads it: inputs and results are
    # written once, with their task; an upload's version is read as long as its task lives, from when it stops being
    # the current one (a day after its form, or when the form is posted again).
    expiry = {
        prefix: (rule["ExpirationInDays"], rule["NoncurrentVersionExpiration"]["NoncurrentDays"])
        for prefix, rule in rules.items()
        if prefix
    }
    assert expiry == {
        "inputs/": (retention, 1),
        "results/": (retention, 1),
        "uploads/": (1, retention),
        # Read back at each replay of a durable task, which may run a year (DurableTaskTimeout's maximum).
        "checkpoints/": (366, 1),
    }
    assert {prefix.rstrip("/") for prefix in expiry} == set(PAYLOAD_PREFIXES)
    clean_up = rules[None]  # every object: delete markers left alone, unfinished uploads
    assert clean_up["ExpiredObjectDeleteMarker"] is True
    assert clean_up["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    (statement,) = resources["PayloadBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert (statement["Effect"], statement["Principal"], statement["Action"]) == ("Deny", "*", "s3:*")
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_template_function_roles_grant_no_wildcards(resources: dict[str, Any]) -> None:
    for name in FUNCTIONS:
        role = resources[resources[name]["Properties"]["Role"]["Fn::GetAtt"][0]]["Properties"]
        allowed_managed = (
            SAM_MANAGED_POLICIES
            | ({SQS_POLLER_POLICY} if name in SQS_FUNCTIONS else set())
            | ({STREAM_POLLER_POLICY} if name in STREAM_FUNCTIONS else set())
            | ({DURABLE_POLICY} if name == "DurableRunnerFunction" else set())
        )
        assert set(role["ManagedPolicyArns"]) <= allowed_managed, name
        assert role["PermissionsBoundary"] == {"Ref": "FunctionPermissionsBoundary"}, name
        for policy in role.get("Policies", []):
            for statement in _statements(policy["PolicyDocument"]):
                assert statement["Effect"] == "Allow"
                for action in as_list(statement["Action"]):
                    assert "*" not in action, (name, action)
                for resource in as_list(statement["Resource"]):
                    assert (
                        "*" not in json.dumps(resource) or _payload_prefix(resource) or resource == DURABLE_EXECUTIONS
                    ), (
                        name,
                        resource,
                    )


def test_template_permissions_boundary_is_scoped(resources: dict[str, Any]) -> None:
    document = resources["FunctionPermissionsBoundary"]["Properties"]["PolicyDocument"]
    for statement in _statements(document):
        actions = as_list(statement["Action"])
        assert all("*" not in action for action in actions), actions
        if statement["Resource"] == "*":
            assert all(action.startswith(UNSCOPABLE_ACTION_PREFIXES) for action in actions), actions
        else:
            for resource in as_list(statement["Resource"]):
                # One of the stack's own resources: an ARN attribute, a secret's Ref (its ARN), the payload bucket's
                # objects, the table's index.
                assert (
                    set(resource) == {"Fn::GetAtt"}
                    or resource in ({"Ref": "TaskIdSecret"}, {"Ref": "WebhookSecret"}, OWNER_INDEX_ARN)
                    or resource in ({"Fn::Sub": "${PayloadBucket.Arn}/*"}, DURABLE_EXECUTIONS)
                ), resource
    log_groups = next(s for s in _statements(document) if "logs:PutLogEvents" in s["Action"])["Resource"]
    assert {group["Fn::GetAtt"][0] for group in log_groups} == {
        "SubmitLogGroup",
        "ResultLogGroup",
        "WorkerLogGroup",
        "DeadLetterLogGroup",
        "NotifierLogGroup",
        "WebhookLogGroup",
        "DurableRunnerLogGroup",
    }


def test_template_only_submit_and_result_may_read_the_task_id_secret(resources: dict[str, Any]) -> None:
    readers = set()
    for name in FUNCTIONS:
        role = resources[resources[name]["Properties"]["Role"]["Fn::GetAtt"][0]]["Properties"]
        for policy in role.get("Policies", []):
            for statement in _statements(policy["PolicyDocument"]):
                if "secretsmanager:GetSecretValue" in as_list(statement["Action"]):
                    # The webhook function reads the webhooks' own key and nothing else (test_template_events).
                    if name == "WebhookFunction":
                        assert as_list(statement["Resource"]) == [{"Ref": "WebhookSecret"}]
                        continue
                    assert as_list(statement["Resource"]) == [{"Ref": "TaskIdSecret"}]
                    readers.add(name)
    # Submit derives idempotent task ids from it, result the key it signs list cursors with.
    assert readers == {"SubmitFunction", "ResultFunction"}
    for name in readers:
        variables = resources[name]["Properties"]["Environment"]["Variables"]
        assert variables["TASK_ID_SECRET_ARN"] == {"Ref": "TaskIdSecret"}


def test_template_owner_index_is_the_stores_projecting_only_what_never_changes(
    sam_template: dict[str, Any], resources: dict[str, Any]
) -> None:
    from core.adapters.dynamodb_store import OWNER_INDEX

    table = resources["TasksTable"]["Properties"]
    (index,) = table["GlobalSecondaryIndexes"]

    assert index["IndexName"] == OWNER_INDEX
    assert index["KeySchema"] == [
        {"AttributeName": "owner", "KeyType": "HASH"},
        {"AttributeName": "created_at", "KeyType": "RANGE"},
    ]
    # Written once, at a task's creation: no status, progress or result, which change during its run.
    assert index["Projection"] == {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["task", "expires_at"]}
    types = {attribute["AttributeName"]: attribute["AttributeType"] for attribute in table["AttributeDefinitions"]}
    assert types == {"task_id": "S", "owner": "S", "created_at": "N"}
    assert OWNER_INDEX_ARN["Fn::Sub"].endswith(f"/index/{OWNER_INDEX}")


def test_template_only_result_may_list_and_only_through_the_owner_index(resources: dict[str, Any]) -> None:
    table = {"Fn::GetAtt": ["TasksTable", "Arn"]}
    for name in FUNCTIONS:
        allowed = _allowed(resources, name, "dynamodb:")
        assert "dynamodb:Scan" not in allowed, name
        if name == "ResultFunction":
            assert allowed["dynamodb:Query"] == [OWNER_INDEX_ARN]
            assert allowed["dynamodb:BatchGetItem"] == [table]
        else:
            assert not {"dynamodb:Query", "dynamodb:BatchGetItem"} & set(allowed), name


def test_template_has_no_powertools_dev_or_debug(resources: dict[str, Any]) -> None:
    for name in FUNCTIONS:
        variables = resources[name]["Properties"]["Environment"]["Variables"]
        assert not {"POWERTOOLS_DEV", "POWERTOOLS_DEBUG"} & set(variables), name


# ---- data: encryption, dead letters, retention


def test_template_queues_and_table_are_encrypted(resources: dict[str, Any]) -> None:
    for name in ("TaskQueue", "TaskDeadLetterQueue"):
        assert resources[name]["Properties"]["SqsManagedSseEnabled"] is True, name
    # DynamoDB encrypts every table; SSEEnabled false chooses the AWS owned key, which costs nothing per request.
    assert resources["TasksTable"]["Properties"]["SSESpecification"] == {"SSEEnabled": False}


def test_template_table_outlives_the_stack_and_is_protected_by_a_parameter(
    sam_template: dict[str, Any], resources: dict[str, Any]
) -> None:
    table = resources["TasksTable"]
    assert (table["DeletionPolicy"], table["UpdateReplacePolicy"]) == ("Retain", "Retain")
    assert table["Properties"]["DeletionProtectionEnabled"] == {"Ref": "TableDeletionProtection"}
    assert sam_template["Parameters"]["TableDeletionProtection"]["Default"] == "true"


def test_template_alarm_topic_is_encrypted_with_a_key_cloudwatch_may_use(resources: dict[str, Any]) -> None:
    # CloudWatch cannot publish to a topic under the AWS managed key alias/aws/sns.
    assert resources["AlarmTopic"]["Properties"]["KmsMasterKeyId"] == {"Ref": "AlarmTopicKey"}
    key = resources["AlarmTopicKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    cloudwatch = [s for s in key["KeyPolicy"]["Statement"] if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
    assert cloudwatch
    assert set(cloudwatch[0]["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}


def test_template_failed_tasks_reach_the_dead_letter_queue(resources: dict[str, Any]) -> None:
    redrive = resources["TaskQueue"]["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["TaskDeadLetterQueue", "Arn"]}
    assert redrive["maxReceiveCount"] == {"Ref": "MaxReceiveCount"}
    # The worker fails a task on its last delivery, so it must know the same count.
    worker_variables = resources["WorkerFunction"]["Properties"]["Environment"]["Variables"]
    assert worker_variables["MAX_RECEIVE_COUNT"] == {"Ref": "MaxReceiveCount"}
    assert resources["TaskDeadLetterQueue"]["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_template_visibility_timeout_is_six_worker_timeouts_for_every_allowed_timeout(
    sam_template: dict[str, Any], resources: dict[str, Any]
) -> None:
    assert resources["WorkerFunction"]["Properties"]["Timeout"] == {"Ref": "WorkerTimeout"}
    assert resources["TaskQueue"]["Properties"]["VisibilityTimeout"] == {
        "Fn::FindInMap": ["QueueVisibility", {"Ref": "WorkerTimeout"}, "Seconds"]
    }
    timeouts = sam_template["Parameters"]["WorkerTimeout"]["AllowedValues"]
    assert max(timeouts) == 900  # Lambda's limit
    mapping = sam_template["Mappings"]["QueueVisibility"]
    assert {int(key): value["Seconds"] for key, value in mapping.items()} == {t: 6 * t for t in timeouts}
    # The worker's heartbeat knows the same timeout from its settings, without asking SQS at its cold start.
    worker_variables = resources["WorkerFunction"]["Properties"]["Environment"]["Variables"]
    assert worker_variables["QUEUE_VISIBILITY_TIMEOUT"] == resources["TaskQueue"]["Properties"]["VisibilityTimeout"]


def test_template_dead_letter_consumer_looks_again_after_its_own_timeout(resources: dict[str, Any]) -> None:
    timeout = resources["DeadLetterFunction"]["Properties"]["Timeout"]
    assert resources["TaskDeadLetterQueue"]["Properties"]["VisibilityTimeout"] >= 6 * timeout


def test_template_submit_stops_before_a_replay_resends_its_message(resources: dict[str, Any]) -> None:
    # An idempotent replay of a still-queued task sends its message again, hidden until any first submission of it
    # has sent its own or stopped.
    from core.services.tasks import RESEND_DELAY_SECONDS

    assert resources["SubmitFunction"]["Properties"]["Timeout"] < RESEND_DELAY_SECONDS


def test_template_table_has_pitr_and_ttl(resources: dict[str, Any]) -> None:
    table = resources["TasksTable"]["Properties"]
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


def _event_sources(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        mapping["Properties"]["FunctionName"]["Ref"]: mapping["Properties"]
        for mapping in of_type(resources, "AWS::Lambda::EventSourceMapping").values()
    }


def test_template_worker_reports_partial_batches_with_bounded_concurrency(
    sam_template: dict[str, Any], resources: dict[str, Any]
) -> None:
    properties = _event_sources(resources)["WorkerFunction"]
    assert properties["EventSourceArn"] == {"Fn::GetAtt": ["TaskQueue", "Arn"]}
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert properties["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "WorkerMaxConcurrency"}}
    assert properties["BatchSize"] == {"Ref": "WorkerBatchSize"}
    parameters = sam_template["Parameters"]
    # One task per invocation unless asked: a batch runs its tasks one after another.
    assert parameters["WorkerBatchSize"]["Default"] == 1
    # A new account may have a concurrency quota of 10: the worker leaves half of it to the API.
    assert parameters["WorkerMaxConcurrency"]["Default"] <= 5
    # The worker sends back what a batch has no time for, to its own queue.
    variables = resources["WorkerFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["QUEUE_URL"] == {"Ref": "TaskQueue"}


def test_template_dead_letters_are_consumed_and_their_tasks_failed(resources: dict[str, Any]) -> None:
    sources = [
        mapping["Properties"]
        for mapping in of_type(resources, "AWS::Lambda::EventSourceMapping").values()
        if mapping["Properties"]["FunctionName"] == {"Ref": "DeadLetterFunction"}
    ]
    assert {json.dumps(source["EventSourceArn"]) for source in sources} == {
        json.dumps({"Fn::GetAtt": [queue, "Arn"]}) for queue in ("TaskDeadLetterQueue", "DurableExecutionEndsQueue")
    }
    assert all(source["FunctionResponseTypes"] == ["ReportBatchItemFailures"] for source in sources)
    variables = resources["DeadLetterFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["MAX_RECEIVE_COUNT"] == {"Ref": "MaxReceiveCount"}


# ---- logs


def test_template_functions_log_to_their_own_group_with_retention(
    sam_template: dict[str, Any], resources: dict[str, Any]
) -> None:
    assert sam_template["Parameters"]["LogRetentionDays"]["Default"] == 30
    for name in FUNCTIONS:
        group = resources[name]["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        assert resources[group]["Type"] == "AWS::Logs::LogGroup"
        assert resources[group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name
    for name, group in of_type(resources, "AWS::Logs::LogGroup").items():
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name


def test_template_api_access_log_group_is_a_vended_log_group(resources: dict[str, Any]) -> None:
    # API Gateway adds other log groups to the account's 5,120-character CloudWatch Logs resource policy.
    name = resources["HttpApiAccessLogGroup"]["Properties"]["LogGroupName"]
    assert name == {"Fn::Sub": "/aws/vendedlogs/apigateway/${AWS::StackName}/access"}


def test_template_api_access_log_is_json_with_the_fields_to_investigate(resources: dict[str, Any]) -> None:
    settings = resources["HttpApiApiGatewayDefaultStage"]["Properties"]["AccessLogSettings"]
    assert settings["DestinationArn"] == {"Fn::GetAtt": ["HttpApiAccessLogGroup", "Arn"]}
    fields = json.loads(settings["Format"])
    assert {"requestId", "ip", "routeKey", "status", "latency", "integrationErrorMessage"} <= set(fields)
    assert all(value.startswith("$context.") for value in fields.values())


# ---- alarms and dashboard


def _alarms(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: alarm["Properties"] for name, alarm in of_type(resources, "AWS::CloudWatch::Alarm").items()}


def _watches(namespace: str, metric: str, dimension_value: Any) -> tuple[str, str, str]:
    return namespace, metric, json.dumps(dimension_value, sort_keys=True)


def test_template_has_every_alarm(resources: dict[str, Any]) -> None:
    watched = set()
    for alarm in _alarms(resources).values():
        (dimension,) = alarm["Dimensions"]
        watched.add(_watches(alarm["Namespace"], alarm["MetricName"], dimension["Value"]))
    expected = {
        _watches("AWS/SQS", "NumberOfMessagesReceived", {"Fn::GetAtt": ["TaskDeadLetterQueue", "QueueName"]}),
        _watches("AWS/SQS", "ApproximateAgeOfOldestMessage", {"Fn::GetAtt": ["TaskDeadLetterQueue", "QueueName"]}),
        _watches("AWS/SQS", "ApproximateAgeOfOldestMessage", {"Fn::GetAtt": ["TaskQueue", "QueueName"]}),
        _watches("AWS/ApiGateway", "5xx", {"Ref": "HttpApi"}),
        _watches("AWS/ApiGateway", "Latency", {"Ref": "HttpApi"}),
    } | {_watches("AWS/Lambda", metric, {"Ref": name}) for name in FUNCTIONS for metric in ("Errors", "Throttles")}
    assert expected <= watched


def test_template_alarm_thresholds(resources: dict[str, Any]) -> None:
    alarms = _alarms(resources)
    by_metric = {alarm["MetricName"]: alarm for alarm in alarms.values() if alarm["Namespace"] == "AWS/ApiGateway"}
    dead_letters = alarms["DeadLetterQueueAlarm"]
    assert (dead_letters["Threshold"], dead_letters["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    assert alarms["QueueAgeAlarm"]["Threshold"] == {"Ref": "QueueAgeAlarmSeconds"}
    assert by_metric["Latency"]["ExtendedStatistic"] == "p99"
    assert by_metric["Latency"]["Threshold"] == {"Ref": "ApiLatencyAlarmMilliseconds"}


def test_template_alarm_descriptions_say_what_the_code_does(resources: dict[str, Any]) -> None:
    worker = _alarms(resources)["WorkerErrorsAlarm"]["AlarmDescription"]
    # The worker answers a partial batch response even when every message failed: Errors are its own faults.
    assert "every record failed" not in worker
    assert "never fails an invocation" in worker


def test_template_every_alarm_notifies_the_topic(resources: dict[str, Any]) -> None:
    for name, alarm in _alarms(resources).items():
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        assert alarm["OKActions"] == [{"Ref": "AlarmTopic"}], name


def test_template_alarm_email_subscription_only_when_given(sam_template: dict[str, Any]) -> None:
    subscription = sam_template["Resources"]["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"]["TopicArn"] == {"Ref": "AlarmTopic"}
    assert sam_template["Parameters"]["AlarmEmail"]["Default"] == ""


def test_template_dashboard_shows_task_metrics_from_the_functions_namespace(
    sam_template: dict[str, Any], resources: dict[str, Any]
) -> None:
    body, variables = resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    namespace = sam_template["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"]
    assert variables["Namespace"] == namespace
    # Fill the placeholders the way Fn::Sub would, then the body must be a JSON dashboard.
    filled = json.loads(re.sub(r"\$\{[^}]+\}", "0", body))
    text = json.dumps(filled)
    for metric in ("TasksSubmitted", "TasksSucceeded", "TasksFailed", "TaskDuration", "QueueWait", "ColdStart"):
        assert metric in text, metric
    (alarm_widget,) = (widget for widget in filled["widgets"] if widget["type"] == "alarm")
    assert len(alarm_widget["properties"]["alarms"]) == len(_alarms(resources))


def _emitted_dimensions(capsys: pytest.CaptureFixture[str]) -> dict[str, set[frozenset[str]]]:
    """Each metric the functions emit (EMF documents on stdout), with the dimension sets it is emitted under."""
    from msgspec.structs import replace

    from core.domain.records import TaskRecord, TaskStatus
    from core.observability import metrics, record_dead_lettered, record_finished, record_submitted
    from tests.support.events import lambda_context

    capsys.readouterr()
    done = TaskRecord("id", "multiply", TaskStatus.SUCCEEDED, "{}", 1.0, 2, "public", 1, None, 1.5, 2.0)
    record_submitted("multiply")
    record_finished(done)
    record_dead_lettered(replace(done, status=TaskStatus.FAILED))
    metrics.provider.add_cold_start_metric(lambda_context())  # what log_metrics(capture_cold_start_metric) emits once
    emitted: dict[str, set[frozenset[str]]] = {}
    for line in capsys.readouterr().out.splitlines():
        document = json.loads(line)
        for directive in document.get("_aws", {}).get("CloudWatchMetrics", []):
            for metric in directive["Metrics"]:
                emitted.setdefault(metric["Name"], set()).update(frozenset(d) for d in directive["Dimensions"])
    return emitted


def test_template_dashboard_series_match_the_dimensions_the_functions_emit(
    resources: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the metrics as the functions emit them
    emitted = _emitted_dimensions(capsys)
    body, _ = resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    searches = re.findall(r"SEARCH\('\{\$\{Namespace\},([^}]*)\} MetricName=\\\"(\w+)\\\"'", body)
    assert searches

    # THEN every SEARCH asks for a metric under exactly a dimension set it is emitted with (SEARCH matches a schema's
    # dimensions exactly: a series over fewer dimensions than the documents carry finds nothing)
    for dimensions, metric in searches:
        assert metric in emitted, metric
        assert frozenset(dimensions.split(",")) in emitted[metric], (metric, dimensions, emitted[metric])


def _deploy(sam_template: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
        transformed = _sam_transform(sam_template, parameters)
    resolver = Resolver(transformed, parameters)
    return {name: resolver.resolve(resource) for name, resource in transformed["Resources"].items()}


def test_template_cors_is_off_unless_origins_are_given(sam_template: dict[str, Any], resources: dict[str, Any]) -> None:
    # GIVEN no origins (the default): same-origin pages and non-browser clients need no CORS
    assert "x-amazon-apigateway-cors" not in resources["HttpApi"]["Properties"]["Body"]

    # WHEN a browser app's origins are given, for a JWT-authorized API
    parameters = {"AuthType": "JWT", **JWT_PARAMETERS, "CorsAllowOrigins": "https://app.example.com"}
    cors = _deploy(sam_template, parameters)["HttpApi"]["Properties"]["Body"]["x-amazon-apigateway-cors"]

    # THEN those origins may call it with a bearer token, read where a task is and when to poll again
    assert cors["allowOrigins"] == {"Ref": "CorsAllowOrigins"}  # CloudFormation resolves the list
    assert {"authorization", "content-type", "idempotency-key"} <= set(cors["allowHeaders"])
    assert {"location", "retry-after"} <= set(cors["exposeHeaders"])
    assert {"GET", "POST", "DELETE"} <= set(cors["allowMethods"])


def test_template_payload_bucket_answers_the_same_origins_scripts_only_when_they_are_given(
    sam_template: dict[str, Any], resources: dict[str, Any]
) -> None:
    # GIVEN no origins: S3 answers no cross-origin script
    assert "CorsConfiguration" not in resources["PayloadBucket"]["Properties"]

    # WHEN a browser app's origins are given
    parameters = {"AuthType": "JWT", **JWT_PARAMETERS, "CorsAllowOrigins": "https://app.example.com"}
    bucket = _deploy(sam_template, parameters)["PayloadBucket"]["Properties"]

    # THEN its scripts may POST the presigned upload form and GET result and input links, from those origins alone
    (rule,) = bucket["CorsConfiguration"]["CorsRules"]
    assert rule["AllowedOrigins"] == {"Ref": "CorsAllowOrigins"}
    assert {"POST", "GET"} <= set(rule["AllowedMethods"]) <= {"GET", "HEAD", "POST"}
