"""Each function's environment: the template's (Globals merged), pointed at the local endpoints,
then the ENV_VARS file on top, in SAM's `--env-vars` format."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local_stack.errors import EnvVarsError
from local_stack.intrinsics import REGION
from local_stack.template import FunctionDefinition, StackTemplate

PARAMETERS_KEY = "Parameters"

# Variables every worker inherits from the local stack's own process; everything else a
# function sees comes from the template, like in Lambda.
_INHERITED_VARIABLES = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")


@dataclass(frozen=True)
class EnvVars:
    """The parsed ENV_VARS file: variables for every function, and per function."""

    parameters: Mapping[str, str]
    per_function: Mapping[str, Mapping[str, str]]

    @classmethod
    def empty(cls) -> EnvVars:
        return cls(parameters={}, per_function={})


@dataclass(frozen=True)
class LocalEndpoints:
    management_api: str
    moto: str
    user_pool_id: str
    user_pool_client_id: str


def load_env_vars(path: Path | None) -> EnvVars:
    if path is None:
        return EnvVars.empty()
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EnvVarsError(f"ENV_VARS file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise EnvVarsError(f"ENV_VARS file {path} cannot be read: {error.strerror or error}") from None
    except json.JSONDecodeError as error:
        raise EnvVarsError(f"ENV_VARS file {path} is not JSON: {error.msg} at line {error.lineno}") from None
    if not isinstance(document, dict) or not all(isinstance(v, dict) for v in document.values()):
        raise EnvVarsError(f"ENV_VARS file {path} must map Parameters or function ids to objects")
    return EnvVars(
        parameters=_stringify(document.get(PARAMETERS_KEY, {})),
        per_function={name: _stringify(variables) for name, variables in document.items() if name != PARAMETERS_KEY},
    )


def check_env_vars_against(env_vars: EnvVars, template: StackTemplate, source: Path | None) -> None:
    for function_id in env_vars.per_function:
        if function_id not in template.functions:
            raise EnvVarsError(f"ENV_VARS file {source} names function {function_id}, which the template lacks")


def function_environment(
    function: FunctionDefinition,
    template: StackTemplate,
    endpoints: LocalEndpoints,
    env_vars: EnvVars,
) -> dict[str, str]:
    environment = {
        name: value
        for name, value in _stringify(template.resolver.resolve(dict(function.environment_template))).items()
    }
    environment.update(_local_overrides(function, endpoints))
    for name, value in env_vars.parameters.items():
        if name in environment:
            environment[name] = value
    environment.update(env_vars.per_function.get(function.logical_id, {}))
    inherited = {name: os.environ[name] for name in _INHERITED_VARIABLES if name in os.environ}
    return {**inherited, **environment}


def _local_overrides(function: FunctionDefinition, endpoints: LocalEndpoints) -> dict[str, str]:
    return {
        "MANAGEMENT_API_ENDPOINT": endpoints.management_api,
        "AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI": endpoints.management_api,
        "USER_POOL_ID": endpoints.user_pool_id,
        "USER_POOL_CLIENT_ID": endpoints.user_pool_client_id,
        "LOCAL_JWKS_URL": f"{endpoints.moto}/{endpoints.user_pool_id}/.well-known/jwks.json",
        "AWS_ENDPOINT_URL": endpoints.moto,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_SESSION_TOKEN": "local",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_LAMBDA_FUNCTION_NAME": function.logical_id,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
        "AWS_LAMBDA_FUNCTION_TIMEOUT": _seconds_text(function.timeout_seconds),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.logical_id}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "local",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "TZ": "UTC",
    }


def _seconds_text(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


def _stringify(variables: Mapping[str, Any]) -> dict[str, str]:
    """Lambda environment values are strings; JSON booleans read the way CloudFormation writes them."""
    return {str(name): _text(value) for name, value in variables.items()}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_text(item) for item in value)
    return str(value)
