"""template.yaml read through aws-sam-cli: parameters, functions and routes as SAM itself sees them.

aws-sam-cli is imported where it is used: the functions' processes unpickle a FunctionSpec, and samcli's
providers cost them ≈ 0.6 s at every start."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from samcli.lib.providers.provider import Stack

DEFAULT_TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"
REGION = "us-east-1"
# The account id AWS::AccountId resolves to locally (samcli's default), in the ARNs the stack makes.
ACCOUNT_ID = "123456789012"


def load_template(path: str | Path = DEFAULT_TEMPLATE) -> dict[str, Any]:
    """The raw template, intrinsics still in place (samcli's YAML parser turns !Ref into {"Ref": ...})."""
    from samcli.commands._utils.template import get_template_data

    template: dict[str, Any] = get_template_data(str(path))
    return template


def parameter_values(template: dict[str, Any], overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Each parameter's default, as CloudFormation would use it when none is given, then the overrides."""
    values = {name: spec["Default"] for name, spec in template.get("Parameters", {}).items() if "Default" in spec}
    values.update(overrides or {})
    return values


def resolve(template: dict[str, Any], value: Any, translator: dict[str, Any]) -> Any:
    """Resolve the intrinsics in `value` with samcli's resolver; `translator` maps logical ids to local values."""
    from samcli.lib.intrinsic_resolver.intrinsic_property_resolver import IntrinsicResolver
    from samcli.lib.intrinsic_resolver.intrinsics_symbol_table import IntrinsicsSymbolTable

    symbols = IntrinsicsSymbolTable(template=template, logical_id_translator=dict(translator))
    return IntrinsicResolver(template=template, symbol_resolver=symbols).intrinsic_property_resolver(
        value, ignore_errors=False
    )


def resolve_without_no_value(template: dict[str, Any], value: Any, translator: dict[str, Any]) -> Any:
    """`resolve`, leaving out what resolves to AWS::NoValue (a property given only under a condition), as
    CloudFormation does."""
    return _without_no_value(resolve(template, _marked(value), translator))


@dataclass(frozen=True)
class FunctionSpec:
    """One AWS::Serverless::Function as it runs locally."""

    name: str
    handler: str
    timeout: int
    memory: int
    environment: dict[str, str]
    events: dict[str, Any] = field(default_factory=dict)
    # Its FunctionName (the logical id when the template gives none): what Invoke names it by.
    function_name: str = ""
    # A durable function's DurableConfig (ExecutionTimeout, RetentionPeriodInDays); None for any other.
    durable: dict[str, Any] | None = None
    # Its AutoPublishAlias: locally, an alias of version 1.
    alias: str | None = None

    def sqs_events(self) -> list[dict[str, Any]]:
        return [event["Properties"] for event in self.events.values() if event.get("Type") == "SQS"]


@dataclass(frozen=True)
class SamApp:
    """The template after SAM's own transform, with resource references resolved to local values."""

    stacks: list[Stack]
    functions: dict[str, FunctionSpec]

    def api(self, cwd: str | Path) -> Any:
        from samcli.lib.providers.api_provider import ApiProvider

        return ApiProvider(self.stacks, cwd=str(cwd)).api


def load_sam_app(path: str | Path, translator: dict[str, Any]) -> SamApp:
    """`translator` holds parameter values and {"Ref": ..., "Arn": ...} for each local resource."""
    from samcli.lib.providers.sam_function_provider import SamFunctionProvider
    from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider

    stacks, _ = SamLocalStackProvider.get_stacks(str(path), parameter_overrides=dict(translator))
    functions = {}
    for function in SamFunctionProvider(stacks).get_all():
        variables = (function.environment or {}).get("Variables", {})
        stack = next(stack for stack in stacks if stack.stack_path == function.stack_path)
        properties: dict[str, Any] = stack.resources[function.function_id].get("Properties", {})
        functions[function.name] = FunctionSpec(
            name=function.name,
            handler=str(function.handler),
            timeout=int(function.timeout or 3),
            memory=int(function.memory or 128),
            environment={key: _env_str(value) for key, value in variables.items()},
            events=dict(function.events or {}),
            function_name=function.functionname,
            durable=function.durable_config,
            alias=properties.get("AutoPublishAlias"),
        )
    return SamApp(stacks=stacks, functions=functions)


def _env_str(value: Any) -> str:
    # Lambda's environment holds strings only; CloudFormation turns true into "true".
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


# samcli resolves Ref AWS::NoValue to None, which it then refuses inside Fn::If: it stands for "no value" instead.
_NO_VALUE = "devstack:AWS::NoValue"


def _marked(value: Any) -> Any:
    if isinstance(value, dict):
        return _NO_VALUE if value == {"Ref": "AWS::NoValue"} else {key: _marked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_marked(item) for item in value]
    return value


def _without_no_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_no_value(item) for key, item in value.items() if item != _NO_VALUE}
    if isinstance(value, list):
        return [_without_no_value(item) for item in value if item != _NO_VALUE]
    return value


@dataclass(frozen=True)
class ApiSecurity:
    """What each route of the template's HTTP APIs requires, as deployed: `routes` maps (path, method) to the
    route's OpenAPI `security` (a list of {scheme: scopes}; empty or absent: open), with method "x-amazon-apigateway-
    any-method" for ANY; `schemes` holds each API's securitySchemes by name."""

    routes: dict[tuple[str, str], list[dict[str, list[str]]]]
    schemes: dict[str, dict[str, Any]]

    def security(self, path: str, method: str) -> list[dict[str, list[str]]]:
        found = self.routes.get((path, method.lower()))
        return found if found is not None else self.routes.get((path, "x-amazon-apigateway-any-method"), [])


def api_security(path: str | Path, parameters: dict[str, Any]) -> ApiSecurity:
    """The routes' security after SAM's own transform (which merges the functions' HttpApi events into the API's
    OpenAPI body) with the template's conditions resolved for `parameters`."""
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    template = load_template(path)
    # The transform wants an S3 location for the code and the layers, as `sam build` gives them.
    template.setdefault("Globals", {}).setdefault("Function", {})["CodeUri"] = "s3://devstack/functions.zip"
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::LayerVersion":
            resource.setdefault("Properties", {})["ContentUri"] = "s3://devstack/layer.zip"
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=REGION))
    # Managed policies are looked up by name only; the template names none.
    transformed = translator.translate(template, parameter_values=dict(parameters), get_managed_policy_map=dict)
    routes: dict[tuple[str, str], list[dict[str, list[str]]]] = {}
    schemes: dict[str, dict[str, Any]] = {}
    for resource in transformed["Resources"].values():
        if resource.get("Type") != "AWS::ApiGatewayV2::Api":
            continue
        body = resource["Properties"].get("Body", {})
        for route_path, methods in body.get("paths", {}).items():
            for method, operation in methods.items():
                security = operation.get("security")
                if security is not None:
                    security = _without_no_value(resolve(transformed, _marked(security), parameters))
                routes[(route_path, method.lower())] = security if isinstance(security, list) else []
        declared = body.get("components", {}).get("securitySchemes", {})
        schemes.update(_without_no_value(resolve(transformed, _marked(declared), parameters)))
    return ApiSecurity(routes, schemes)
