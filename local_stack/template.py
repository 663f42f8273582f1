"""Reads a SAM template into what the local stack runs: the WebSocket API, functions, tables and
the user pool. SAM's Globals are merged here; the SAM translator is not run."""

from __future__ import annotations

import copy
import importlib.machinery
import importlib.util
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from local_stack import queues
from local_stack.cfn_yaml import load as load_cfn_yaml
from local_stack.errors import TemplateError
from local_stack.intrinsics import ACCOUNT_ID, REGION, Resolver
from local_stack.mock_integration import IntegrationResponse, MockIntegration, selected_template

logger = logging.getLogger(__name__)

SERVERLESS_FUNCTION = "AWS::Serverless::Function"
SERVERLESS_LAYER = "AWS::Serverless::LayerVersion"
DYNAMODB_TABLE = "AWS::DynamoDB::Table"
USER_POOL = "AWS::Cognito::UserPool"
USER_POOL_CLIENT = "AWS::Cognito::UserPoolClient"
API = "AWS::ApiGatewayV2::Api"
STAGE = "AWS::ApiGatewayV2::Stage"
ROUTE = "AWS::ApiGatewayV2::Route"
INTEGRATION = "AWS::ApiGatewayV2::Integration"
INTEGRATION_RESPONSE = "AWS::ApiGatewayV2::IntegrationResponse"
ROUTE_RESPONSE = "AWS::ApiGatewayV2::RouteResponse"
AUTHORIZER = "AWS::ApiGatewayV2::Authorizer"

DEFAULT_TIMEOUT_SECONDS = 3.0
DEFAULT_MEMORY_MB = 128
_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_RATE_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
_FUNCTION_IN_ARN = re.compile(r":function:([^/:]+)")


def function_arn(function_name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}"


@dataclass(frozen=True)
class Schedule:
    """A SAM Schedule/ScheduleV2 event with a rate(...) expression."""

    event_name: str
    period_seconds: float
    rule_name: str


@dataclass(frozen=True)
class FunctionDefinition:
    logical_id: str
    handler: str
    code_dir: Path
    layer_dirs: tuple[Path, ...]
    timeout_seconds: float
    memory_mb: int
    environment_template: Mapping[str, Any]
    schedules: tuple[Schedule, ...] = ()


@dataclass(frozen=True)
class Authorizer:
    logical_id: str
    function_id: str
    identity_sources: tuple[str, ...]


@dataclass(frozen=True)
class Route:
    route_key: str
    function_id: str | None  # None: a MOCK integration answers, no function runs
    authorizer: Authorizer | None = None
    mock: MockIntegration | None = None


@dataclass(frozen=True)
class WebSocketApi:
    logical_id: str
    api_id: str
    route_selection_expression: str
    stage_name: str
    routes: Mapping[str, Route]


@dataclass(frozen=True)
class TableDefinition:
    logical_id: str
    table_name: str
    properties: Mapping[str, Any]


@dataclass(frozen=True)
class UserPoolDefinition:
    pool_logical_id: str | None
    client_logical_id: str | None
    pool_properties: Mapping[str, Any]
    client_properties: Mapping[str, Any]


@dataclass
class StackTemplate:
    path: Path
    resolver: Resolver
    functions: dict[str, FunctionDefinition]
    tables: dict[str, TableDefinition]
    user_pool: UserPoolDefinition
    api: WebSocketApi | None
    parameter_names: frozenset[str] = field(default_factory=frozenset)

    def require_api(self) -> WebSocketApi:
        if self.api is None:
            raise TemplateError(f"template {self.path} has no WEBSOCKET {API}")
        return self.api


def load_template(path: Path, parameter_overrides: Mapping[str, str], api_id: str) -> StackTemplate:
    """Parses and discovers everything; `parameter_overrides` are ENV_VARS' Parameters entries."""
    raw = _parse(path)
    resources: dict[str, Any] = raw.get("Resources") or {}
    if not isinstance(resources, Mapping) or not resources:
        raise TemplateError(f"template {path} has no Resources")
    parameter_names = frozenset(raw.get("Parameters") or {})
    function_names = {
        logical_id: str((resource.get("Properties") or {}).get("FunctionName") or logical_id)
        for logical_id, resource in resources.items()
        if resource.get("Type") == SERVERLESS_FUNCTION
    }

    globals_function = (raw.get("Globals") or {}).get("Function") or {}

    def attribute(logical_id: str, attribute_name: str) -> str:
        resource_type = resources[logical_id].get("Type")
        if resource_type == SERVERLESS_FUNCTION and attribute_name == "Arn":
            return function_arn(function_names[logical_id])
        if resource_type == SERVERLESS_FUNCTION and attribute_name in {"Alias", "Version"}:
            # Locally every alias and version is the one copy of the code: the qualifier only
            # keeps the ARN's shape, so routes still find their function by name.
            properties = resources[logical_id].get("Properties") or {}
            alias = properties.get("AutoPublishAlias") or globals_function.get("AutoPublishAlias")
            if not alias:
                raise TemplateError(f"{logical_id}.{attribute_name} needs AutoPublishAlias on the function")
            qualifier = alias if attribute_name == "Alias" else "1"
            return f"{function_arn(function_names[logical_id])}:{qualifier}"
        if resource_type == DYNAMODB_TABLE and attribute_name == "Arn":
            return f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{resolver.ref(logical_id)}"
        if resource_type == queues.SQS_QUEUE:
            return queues.queue_attribute(resolver, logical_id, resources[logical_id], attribute_name)
        return f"arn:aws:local:{REGION}:{ACCOUNT_ID}:{logical_id}/{attribute_name}"

    overrides = {name: value for name, value in parameter_overrides.items() if name in parameter_names}
    resolver = Resolver(raw, overrides, attribute)
    api_logical_id = _api_logical_id(resources)
    if api_logical_id is not None:
        resolver.physical_ids[api_logical_id] = api_id
    try:
        return _discover(path, raw, resolver, api_id, function_names, parameter_names)
    except TemplateError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
        raise TemplateError(f"template {path} has an unexpected shape: {error!r}") from error


def _parse(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise TemplateError(f"template not found: {path}")
    try:
        raw = load_cfn_yaml(str(path))
    except (yaml.YAMLError, ValueError) as error:
        first_line = " ".join(str(error).split())
        raise TemplateError(f"template {path} does not parse: {first_line}") from error
    if not isinstance(raw, dict):
        raise TemplateError(f"template {path} does not parse: not a mapping")
    return raw


def _api_logical_id(resources: Mapping[str, Any]) -> str | None:
    for logical_id, resource in resources.items():
        properties = resource.get("Properties") or {}
        if resource.get("Type") == API and properties.get("ProtocolType") == "WEBSOCKET":
            return logical_id
    return None


def _discover(
    path: Path,
    raw: Mapping[str, Any],
    resolver: Resolver,
    api_id: str,
    function_names: Mapping[str, str],
    parameter_names: frozenset[str],
) -> StackTemplate:
    resources: Mapping[str, Any] = raw["Resources"]
    active = {
        logical_id: resource for logical_id, resource in resources.items() if resolver.resource_is_active(logical_id)
    }
    base_dir = path.parent
    globals_function = (raw.get("Globals") or {}).get("Function") or {}
    functions = {
        logical_id: _function(logical_id, resource, globals_function, active, resolver, base_dir)
        for logical_id, resource in active.items()
        if resource.get("Type") == SERVERLESS_FUNCTION
    }
    tables = {
        logical_id: _table(logical_id, resource, resolver)
        for logical_id, resource in active.items()
        if resource.get("Type") == DYNAMODB_TABLE
    }
    for table in tables.values():
        resolver.physical_ids[table.logical_id] = table.table_name
    logical_by_name = {name: logical_id for logical_id, name in function_names.items()}
    api = _api(active, resolver, api_id, logical_by_name)
    return StackTemplate(
        path=path,
        resolver=resolver,
        functions=functions,
        tables=tables,
        user_pool=_user_pool(active, resolver),
        api=api,
        parameter_names=parameter_names,
    )


def _merge_globals(globals_value: Any, own_value: Any) -> Any:
    """SAM's rule: maps merge (the function wins), lists add up (Globals first), scalars override."""
    if isinstance(globals_value, Mapping) and isinstance(own_value, Mapping):
        merged = dict(globals_value)
        for key, value in own_value.items():
            merged[key] = _merge_globals(globals_value[key], value) if key in globals_value else value
        return merged
    if isinstance(globals_value, list) and isinstance(own_value, list):
        return [*globals_value, *own_value]
    return own_value


def _function(
    logical_id: str,
    resource: Mapping[str, Any],
    globals_function: Mapping[str, Any],
    resources: Mapping[str, Any],
    resolver: Resolver,
    base_dir: Path,
) -> FunctionDefinition:
    properties = _merge_globals(copy.deepcopy(dict(globals_function)), resource.get("Properties") or {})
    if "InlineCode" in properties:
        raise TemplateError(f"function {logical_id} uses InlineCode, which the local stack does not run")
    code_uri = resolver.resolve(properties.get("CodeUri"))
    handler = resolver.resolve(properties.get("Handler"))
    if not isinstance(code_uri, str) or not isinstance(handler, str):
        raise TemplateError(f"function {logical_id} needs a local CodeUri and a Handler")
    code_dir = (base_dir / code_uri).resolve()
    if not code_dir.is_dir():
        raise TemplateError(f"function {logical_id}: CodeUri {code_uri} is not a directory")
    layer_dirs = tuple(
        layer_dir
        for layer in properties.get("Layers") or []
        if (layer_dir := _layer_dir(layer, resources, resolver, base_dir)) is not None
    )
    _check_handler(logical_id, handler, code_uri, (code_dir, *layer_dirs))
    environment = (properties.get("Environment") or {}).get("Variables") or {}
    return FunctionDefinition(
        logical_id=logical_id,
        handler=handler,
        code_dir=code_dir,
        layer_dirs=layer_dirs,
        timeout_seconds=float(resolver.resolve(properties.get("Timeout", DEFAULT_TIMEOUT_SECONDS))),
        memory_mb=int(resolver.resolve(properties.get("MemorySize", DEFAULT_MEMORY_MB))),
        environment_template=environment,
        schedules=_schedules(logical_id, properties.get("Events") or {}, resolver),
    )


def _check_handler(logical_id: str, handler: str, code_uri: str, directories: tuple[Path, ...]) -> None:
    """A handler whose module is nowhere fails at start, not as a 500 on the first invocation."""
    module_name, _, function_name = handler.rpartition(".")
    if not module_name or not function_name:
        raise TemplateError(f"function {logical_id}: Handler {handler} is not <module>.<function>")
    top_level = module_name.split(".")[0]
    if importlib.machinery.PathFinder.find_spec(top_level, [str(d) for d in directories]) is not None:
        return
    if importlib.util.find_spec(top_level) is not None:  # e.g. a package of the virtualenv
        return
    raise TemplateError(f"function {logical_id}: Handler {handler}: no module {top_level} in CodeUri {code_uri}")


def _layer_dir(layer: Any, resources: Mapping[str, Any], resolver: Resolver, base_dir: Path) -> Path | None:
    """Where a layer's Python packages are importable from, as Lambda mounts them under /opt/python.

    A layer `sam build` builds from a requirements.txt holds third-party packages, which the local
    stack's own environment already has installed: it is not mounted. A layer built with a
    python BuildMethod has its ContentUri copied into python/, so ContentUri is the import root;
    a layer without a build method is zipped as it is, so ContentUri/python is."""
    if not (isinstance(layer, Mapping) and set(layer) == {"Ref"} and layer["Ref"] in resources):
        return None
    resource = resources[layer["Ref"]]
    if resource.get("Type") != SERVERLESS_LAYER:
        return None
    content_uri = resolver.resolve((resource.get("Properties") or {}).get("ContentUri"))
    if not isinstance(content_uri, str):
        return None
    source = (base_dir / content_uri).resolve()
    build_method = str((resource.get("Metadata") or {}).get("BuildMethod") or "")
    if not build_method:
        return source / "python"
    if build_method.startswith("python") and not (source / "requirements.txt").exists():
        return source
    return None


def _schedules(logical_id: str, events: Mapping[str, Any], resolver: Resolver) -> tuple[Schedule, ...]:
    schedules = []
    for event_name, event in events.items():
        if event.get("Type") not in {"Schedule", "ScheduleV2"}:
            continue
        properties = resolver.resolve(event.get("Properties") or {})
        expression = str(properties.get("Schedule") or properties.get("ScheduleExpression") or "")
        disabled = properties.get("Enabled") is False or properties.get("State") == "DISABLED"
        match = _RATE.match(expression.strip())
        if match is None and not disabled:
            logger.warning(
                "%s: schedule %s (%s) is not a rate(...); not run locally", logical_id, event_name, expression
            )
        if disabled or match is None:
            continue
        amount, unit = int(match.group(1)), match.group(2).rstrip("s")
        schedules.append(
            Schedule(
                event_name=event_name,
                period_seconds=float(amount * _RATE_UNIT_SECONDS[unit]),
                rule_name=f"local-{logical_id}{event_name}",
            )
        )
    return tuple(schedules)


def _table(logical_id: str, resource: Mapping[str, Any], resolver: Resolver) -> TableDefinition:
    properties = resolver.resolve(resource.get("Properties") or {})
    return TableDefinition(
        logical_id=logical_id,
        table_name=str(properties.get("TableName") or logical_id),
        properties=properties,
    )


def _user_pool(resources: Mapping[str, Any], resolver: Resolver) -> UserPoolDefinition:
    pool_id = next((lid for lid, r in resources.items() if r.get("Type") == USER_POOL), None)
    client_id = next((lid for lid, r in resources.items() if r.get("Type") == USER_POOL_CLIENT), None)
    pool_properties = dict(resources[pool_id].get("Properties") or {}) if pool_id else {}
    client_properties = dict(resources[client_id].get("Properties") or {}) if client_id else {}
    client_properties.pop("UserPoolId", None)  # a Ref to the pool, unknown until moto creates it
    return UserPoolDefinition(
        pool_logical_id=pool_id,
        client_logical_id=client_id,
        pool_properties=resolver.resolve(pool_properties),
        client_properties=resolver.resolve(client_properties),
    )


def _api(
    resources: Mapping[str, Any], resolver: Resolver, api_id: str, logical_by_name: Mapping[str, str]
) -> WebSocketApi | None:
    api_logical_id = _api_logical_id(resources)
    if api_logical_id is None:
        return None

    def belongs_to_api(resource: Mapping[str, Any], resource_type: str) -> bool:
        properties = resource.get("Properties") or {}
        return resource.get("Type") == resource_type and properties.get("ApiId") == {"Ref": api_logical_id}

    def function_of_uri(uri_owner: str, uri: Any) -> str:
        match = _FUNCTION_IN_ARN.search(str(resolver.resolve(uri)))
        if match is None or match.group(1) not in logical_by_name:
            raise TemplateError(f"{uri_owner} does not invoke a function of this template")
        return logical_by_name[match.group(1)]

    authorizers = {
        logical_id: Authorizer(
            logical_id=logical_id,
            function_id=function_of_uri(logical_id, resource["Properties"].get("AuthorizerUri")),
            identity_sources=tuple(resolver.resolve(resource["Properties"].get("IdentitySource") or [])),
        )
        for logical_id, resource in resources.items()
        if belongs_to_api(resource, AUTHORIZER)
    }
    integrations = {
        logical_id: function_of_uri(logical_id, resource["Properties"].get("IntegrationUri"))
        for logical_id, resource in resources.items()
        if belongs_to_api(resource, INTEGRATION) and resource["Properties"].get("IntegrationType") != "MOCK"
    }
    mocks = {
        logical_id: resolver.resolve(resource["Properties"])
        for logical_id, resource in resources.items()
        if belongs_to_api(resource, INTEGRATION) and resource["Properties"].get("IntegrationType") == "MOCK"
    }
    integration_responses: dict[str, list[Mapping[str, Any]]] = {}
    for resource in resources.values():
        if belongs_to_api(resource, INTEGRATION_RESPONSE):
            properties = resolver.resolve(resource["Properties"])
            integration_responses.setdefault(str(properties["IntegrationId"]), []).append(properties)
    routes_with_response = {
        str(resolver.resolve(resource["Properties"])["RouteId"])
        for resource in resources.values()
        if belongs_to_api(resource, ROUTE_RESPONSE)
    }
    routes: dict[str, Route] = {}
    for logical_id, resource in resources.items():
        if not belongs_to_api(resource, ROUTE):
            continue
        properties = resolver.resolve(resource["Properties"])
        route_key = str(properties["RouteKey"])
        target = str(properties.get("Target") or "")
        integration_id = target.removeprefix("integrations/")
        authorizer_id = properties.get("AuthorizerId")
        authorizer = authorizers.get(str(authorizer_id)) if authorizer_id else None
        if integration_id in mocks:
            mock = _mock_integration(
                route_key,
                mocks[integration_id],
                integration_responses.get(integration_id, []),
                two_way=logical_id in routes_with_response and bool(properties.get("RouteResponseSelectionExpression")),
            )
            routes[route_key] = Route(route_key=route_key, function_id=None, authorizer=authorizer, mock=mock)
            continue
        if integration_id not in integrations:
            raise TemplateError(f"route {logical_id} targets {target!r}, not an integration of the API")
        routes[route_key] = Route(route_key=route_key, function_id=integrations[integration_id], authorizer=authorizer)
    stage_names = [
        str(resolver.resolve(resource["Properties"]["StageName"]))
        for resource in resources.values()
        if belongs_to_api(resource, STAGE)
    ]
    api_properties = resources[api_logical_id]["Properties"]
    return WebSocketApi(
        logical_id=api_logical_id,
        api_id=api_id,
        route_selection_expression=str(
            resolver.resolve(api_properties.get("RouteSelectionExpression") or "$request.body.action")
        ),
        stage_name=stage_names[0] if stage_names else "dev",
        routes=routes,
    )


def _mock_integration(
    route_key: str, integration: Mapping[str, Any], responses: list[Mapping[str, Any]], *, two_way: bool
) -> MockIntegration:
    """A MOCK integration of a message route, its templates checked now (mock_integration.py)."""
    if route_key in {"$connect", "$disconnect"}:
        raise TemplateError(f"route {route_key}: the local stack answers MOCK integrations on message routes only")
    request_template = selected_template(
        route_key, "request", integration.get("TemplateSelectionExpression"), integration.get("RequestTemplates")
    )
    integration_responses = tuple(
        IntegrationResponse(
            key=str(response["IntegrationResponseKey"]),
            template=selected_template(
                route_key,
                f"integration response {response['IntegrationResponseKey']}",
                response.get("TemplateSelectionExpression"),
                response.get("ResponseTemplates"),
            ),
        )
        for response in responses
    )
    if two_way and not integration_responses:
        raise TemplateError(f"route {route_key}: a two-way MOCK route needs an integration response to send back")
    return MockIntegration(route_key, request_template, integration_responses, two_way)
