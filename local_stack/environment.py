"""Each function's environment: the template's (Globals merged), pointed at the local endpoints,
then the ENV_VARS file on top, in SAM's `--env-vars` format; and the check that the domain's
settings in each of them are valid, before anything serves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local_stack.errors import EnvVarsError, SettingsError
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


@dataclass(frozen=True)
class LocalRun:
    """What one run of the local stack gives every function besides endpoints."""

    # Stands in for the stack's Secrets Manager secret (the domain reads RATE_LIMIT_KEY_SECRET
    # before RATE_LIMIT_KEY_SECRET_ARN): one per run, shared by every function, since their
    # rate-limit keys must agree.
    rate_limit_key_secret: str
    # Powertools' EMF lines, one JSON blob per invocation, drown the console unless asked for.
    emit_metrics: bool = False


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
    run: LocalRun,
) -> dict[str, str]:
    environment = {
        name: value
        for name, value in _stringify(template.resolver.resolve(dict(function.environment_template))).items()
        if name not in _REPLACED_LOCALLY
    }
    environment.update(_local_overrides(function, endpoints, run))
    for name, value in env_vars.parameters.items():
        if name in environment:
            environment[name] = value
    environment.update(env_vars.per_function.get(function.logical_id, {}))
    inherited = {name: os.environ[name] for name in _INHERITED_VARIABLES if name in os.environ}
    return {**inherited, **environment}


# The template's Secrets Manager ARN names a secret moto does not hold; RATE_LIMIT_KEY_SECRET
# replaces it (an ENV_VARS file may still set it on purpose).
_REPLACED_LOCALLY = frozenset({"RATE_LIMIT_KEY_SECRET_ARN"})
# Powertools warns on every invocation that publishes no metric; locally that is most of them.
_QUIET_WARNINGS = "ignore:No application metrics to publish"


def _local_overrides(function: FunctionDefinition, endpoints: LocalEndpoints, run: LocalRun) -> dict[str, str]:
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
        "POWERTOOLS_METRICS_DISABLED": "false" if run.emit_metrics else "true",
        "PYTHONWARNINGS": _QUIET_WARNINGS,
        "RATE_LIMIT_KEY_SECRET": run.rate_limit_key_secret,
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


# Run with each function's interpreter and environment. Only the domain's settings module (and
# the errors it raises) is imported, not the package: its __init__ pulls in boto3 and Powertools,
# seconds of start-up on a busy machine, and the local stack never imports the functions' code.
_SETTINGS_CHECK = """
import json, sys, types
request = json.loads(sys.stdin.read())
package = types.ModuleType("session_manager")
package.__path__ = [request["packageDir"]]
sys.modules["session_manager"] = package
try:
    from session_manager.config import Settings
    from session_manager.errors import ConfigurationError
except Exception as error:
    print(json.dumps({"importError": f"{type(error).__name__}: {error}"}))
    raise SystemExit(0)
problems = {}
for function_id, environment in request["functions"].items():
    try:
        Settings.from_environment(environment)
    except ConfigurationError as error:
        problems[function_id] = str(error)
print(json.dumps({"problems": problems}))
"""
SETTINGS_MODULE = Path("session_manager") / "config.py"
SETTINGS_CHECK_TIMEOUT_SECONDS = 60.0


def check_function_settings(
    functions: Mapping[str, FunctionDefinition], environments: Mapping[str, Mapping[str, str]]
) -> None:
    """Refuses, in one line, a function environment the domain's Settings would reject: such a
    stack would start and then answer every request with an error."""
    groups: dict[Path, list[str]] = {}
    for function_id, function in functions.items():
        # The first directory of the function's sys.path that holds the module, as Python finds it.
        for directory in (function.code_dir, *function.layer_dirs):
            if (Path(directory) / SETTINGS_MODULE).is_file():
                groups.setdefault((Path(directory) / SETTINGS_MODULE).parent, []).append(function_id)
                break
    for package_dir, function_ids in groups.items():
        request = {
            "packageDir": str(package_dir),
            "functions": {name: dict(environments[name]) for name in function_ids},
        }
        answer = _run_settings_check(request, function_ids[0])
        if "importError" in answer:
            raise SettingsError(f"{function_ids[0]}: {package_dir / 'config.py'} fails: {answer['importError']}")
        problems: dict[str, str] = answer.get("problems", {})
        if problems:
            raise SettingsError(_one_line(problems))


def _run_settings_check(request: dict[str, Any], function_id: str) -> dict[str, Any]:
    environment = dict(next(iter(request["functions"].values())))
    try:
        completed = subprocess.run(
            [sys.executable, "-P", "-c", _SETTINGS_CHECK],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            env=environment,
            timeout=SETTINGS_CHECK_TIMEOUT_SECONDS,
            check=False,
        )
        return json.loads(completed.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, ValueError, IndexError):
        raise SettingsError(f"{function_id}: its settings could not be checked") from None


def _one_line(problems: Mapping[str, str]) -> str:
    """`X=3 must be above Y=30 (in the environment of AFunction and 11 other functions)`."""
    first_message = next(iter(problems.values()))
    sharing = sorted(function_id for function_id, message in problems.items() if message == first_message)
    others = len(sharing) - 1
    where = sharing[0] + (f" and {others} other function{'s' if others > 1 else ''}" if others else "")
    return f"{first_message} (in the environment of {where})"
