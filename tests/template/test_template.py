"""template.yaml is the one source of the deployed shape: these tests pin what must hold."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cfnlint.decode import decode

from session_manager.config import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def template():
    parsed, matches = decode(str(ROOT / "template.yaml"))
    assert not matches, matches
    return parsed


def resources_of(template, resource_type):
    return {name: r for name, r in template["Resources"].items() if r["Type"] == resource_type}


def test_every_setting_of_requirements_is_a_parameter_with_its_default(template):
    defaults = Settings()
    expected = {
        "MaxListenersPerSession": defaults.max_listeners_per_session,
        "SessionMaxDurationHours": defaults.session_max_duration_hours,
        "ConnectionRefreshMinutes": defaults.connection_refresh_minutes,
        "ConnectionWarningMinutes": defaults.connection_warning_minutes,
        "HeartbeatIntervalSeconds": defaults.heartbeat_interval_seconds,
        "HeartbeatTimeoutSeconds": defaults.heartbeat_timeout_seconds,
        "RateLimitSessionsPerHour": defaults.rate_limit_sessions_per_hour,
        "RateLimitListenerJoinsPerMin": defaults.rate_limit_listener_joins_per_min,
        "RateLimitFailedJoinsPerMin": defaults.rate_limit_failed_joins_per_min,
        "RateLimitConnectionAttemptsPerMin": defaults.rate_limit_connection_attempts_per_min,
        "RateLimitHeartbeatsPerMin": defaults.rate_limit_heartbeats_per_min,
        "SessionIdMaxAttempts": defaults.session_id_max_attempts,
        "SpeakerReconnectGraceSeconds": defaults.speaker_reconnect_grace_seconds,
    }
    parameters = template["Parameters"]
    for name, default in expected.items():
        assert float(parameters[name]["Default"]) == float(default), name
    for name in ("LogLevel", "EnvironmentName", "ExistingUserPoolId", "ExistingUserPoolClientId"):
        assert name in parameters


def test_every_parameter_reaches_the_functions_under_the_variable_the_settings_read(template):
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    for variable, value in variables.items():
        if isinstance(value, dict) and "Ref" in value and value["Ref"] in template["Parameters"]:
            snake = re.sub(r"(?<!^)(?=[A-Z])", "_", value["Ref"]).upper()
            assert variable in (snake, "ENVIRONMENT_NAME", "LOG_LEVEL"), (variable, value)


def test_tables_are_on_demand_with_ttl_and_the_listener_index(template):
    tables = resources_of(template, "AWS::DynamoDB::Table")
    assert set(tables) == {"SessionsTable", "ConnectionsTable", "RateLimitsTable", "CaptionsTable"}
    ttl = {name: t["Properties"]["TimeToLiveSpecification"] for name, t in tables.items()}
    assert ttl == {
        "SessionsTable": {"AttributeName": "expiresAt", "Enabled": True},
        "ConnectionsTable": {"AttributeName": "ttl", "Enabled": True},
        "RateLimitsTable": {"AttributeName": "expiresAt", "Enabled": True},
        "CaptionsTable": {"AttributeName": "ttl", "Enabled": True},
    }
    assert all(t["Properties"]["BillingMode"] == "PAY_PER_REQUEST" for t in tables.values())
    keys = {name: t["Properties"]["KeySchema"][0]["AttributeName"] for name, t in tables.items()}
    assert keys == {
        "SessionsTable": "sessionId",
        "ConnectionsTable": "connectionId",
        "RateLimitsTable": "identifier",
        "CaptionsTable": "stream",
    }
    assert tables["CaptionsTable"]["Properties"]["KeySchema"][1] == {"AttributeName": "seq", "KeyType": "RANGE"}
    (index,) = tables["ConnectionsTable"]["Properties"]["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "sessionId-targetLanguage-index"
    assert [(k["AttributeName"], k["KeyType"]) for k in index["KeySchema"]] == [
        ("sessionId", "HASH"),
        ("targetLanguage", "RANGE"),
    ]


def test_websocket_api_routes_every_protocol_action(template):
    (api,) = resources_of(template, "AWS::ApiGatewayV2::Api").values()
    assert api["Properties"]["ProtocolType"] == "WEBSOCKET"
    assert api["Properties"]["RouteSelectionExpression"] == "$request.body.action"
    route_keys = {r["Properties"]["RouteKey"] for r in resources_of(template, "AWS::ApiGatewayV2::Route").values()}
    assert route_keys == {
        "$connect",
        "$disconnect",
        "$default",
        "createSession",
        "joinSession",
        "heartbeat",
        "refreshConnection",
        "getSessionStatus",
        "endSession",
        "leaveSession",
        "sendCaption",
    }


def test_only_connect_has_the_authorizer_and_it_lists_no_identity_source(template):
    (authorizer,) = resources_of(template, "AWS::ApiGatewayV2::Authorizer").values()
    assert authorizer["Properties"]["AuthorizerType"] == "REQUEST"
    assert "IdentitySource" not in authorizer["Properties"]
    for route in resources_of(template, "AWS::ApiGatewayV2::Route").values():
        props = route["Properties"]
        assert ("AuthorizerId" in props) == (props["RouteKey"] == "$connect")


def _alias_of(value) -> str:
    """The function whose alias an AuthorizerUri/IntegrationUri or a FunctionName names."""
    if isinstance(value, dict) and "Fn::Sub" in value:
        text, variables = value["Fn::Sub"]
        assert "${Alias}" in text and ".Arn" not in text, text
        value = variables["Alias"]
    (reference,) = value.values()
    function, qualifier = reference.split(".")
    assert qualifier == "Alias", reference
    return function


def test_integrations_the_authorizer_and_permissions_invoke_the_alias_not_latest(template):
    permissions = resources_of(template, "AWS::Lambda::Permission")
    permitted = {_alias_of(p["Properties"]["FunctionName"]) for p in permissions.values()}
    integrations = resources_of(template, "AWS::ApiGatewayV2::Integration")
    invoked = {
        _alias_of(i["Properties"]["IntegrationUri"])
        for i in integrations.values()
        if i["Properties"]["IntegrationType"] != "MOCK"
    }
    (authorizer,) = resources_of(template, "AWS::ApiGatewayV2::Authorizer").values()
    invoked.add(_alias_of(authorizer["Properties"]["AuthorizerUri"]))
    assert invoked == permitted
    assert {"AuthorizerFunction", "ConnectFunction", "JoinSessionFunction"} <= invoked
    for permission in permissions.values():
        assert "SourceArn" in permission["Properties"]


def test_manage_connections_is_scoped_to_this_api(template):
    for name, function in resources_of(template, "AWS::Serverless::Function").items():
        for policy in function["Properties"].get("Policies", []):
            for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
                if statement["Action"] == "execute-api:ManageConnections":
                    assert "${WebSocketApi}/${StageName}/" in statement["Resource"]["Fn::Sub"], name


def test_stage_auto_deploys_so_route_changes_go_live(template):
    (stage,) = resources_of(template, "AWS::ApiGatewayV2::Stage").values()
    assert stage["Properties"]["AutoDeploy"] is True
    assert not resources_of(template, "AWS::ApiGatewayV2::Deployment")


def test_functions_are_python313_on_arm64_with_one_day_logs(template):
    globals_ = template["Globals"]["Function"]
    assert globals_["Runtime"] == "python3.13"
    assert globals_["Architectures"] == ["arm64"]
    for layer in resources_of(template, "AWS::Serverless::LayerVersion").values():
        assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
        assert layer["Metadata"]["BuildMethod"] == "python3.13"
    log_groups = resources_of(template, "AWS::Logs::LogGroup")
    assert set(log_groups) == {"FunctionLogGroup", "AccessLogGroup"}
    assert all(group["Properties"]["RetentionInDays"] == 1 for group in log_groups.values())


def test_the_functions_that_fan_out_get_one_full_vcpu_and_the_others_the_default(template):
    # Lambda gives one vCPU at 1,769 MB; a fan-out is botocore's CPU per post on one core (decision 69).
    assert template["Parameters"]["FanOutMemorySize"]["Default"] == 1769
    fan_outs = {"SendCaptionFunction", "EndSessionFunction", "CaptionFanOutFunction"}
    functions = resources_of(template, "AWS::Serverless::Function")
    for name, function in functions.items():
        memory = function["Properties"].get("MemorySize")
        if name in fan_outs:
            assert memory == {"Ref": "FanOutMemorySize"}, name
        else:
            assert memory != {"Ref": "FanOutMemorySize"}, name
    assert template["Globals"]["Function"]["MemorySize"] == 256


def test_sweeper_runs_every_minute(template):
    sweeper = template["Resources"]["SweeperFunction"]["Properties"]
    (event,) = sweeper["Events"].values()
    assert event == {"Type": "Schedule", "Properties": {"Schedule": "rate(1 minute)"}}


def test_the_template_never_sets_the_local_jwks_override(template):
    assert "LOCAL_JWKS_URL" not in (ROOT / "template.yaml").read_text()


def _policy_tables(function) -> set[str]:
    tables = set()
    for policy in function["Properties"].get("Policies", []):
        for name, value in policy.items() if isinstance(policy, dict) else []:
            if name.startswith("DynamoDB"):
                tables.add(value["TableName"]["Ref"])
    return tables


@pytest.mark.parametrize(
    "function",
    # Every function whose route goes through RateLimiter (connect attempts, session creation,
    # joins, listener refreshes and captions per second). Without the policy the limiter would
    # fail open everywhere.
    [
        "ConnectFunction",
        "CreateSessionFunction",
        "JoinSessionFunction",
        "RefreshConnectionFunction",
        "SendCaptionFunction",
    ],
)
def test_functions_that_rate_limit_may_write_the_rate_limits_table(template, function):
    assert "RateLimitsTable" in _policy_tables(template["Resources"][function])


@pytest.mark.parametrize(
    "function",
    [
        "CreateSessionFunction",
        "JoinSessionFunction",
        "RefreshConnectionFunction",
        "EndSessionFunction",
        "LeaveSessionFunction",
        "DisconnectFunction",
        "SweeperFunction",
    ],
)
def test_functions_that_change_membership_may_write_both_session_tables(template, function):
    assert {"SessionsTable", "ConnectionsTable"} <= _policy_tables(template["Resources"][function])


def test_the_functions_layer_pins_what_the_tests_run():
    """layers/dependencies/requirements.txt (deployed) and requirements/dev.txt (tested) agree on
    every package the layer ships."""
    root = Path(__file__).resolve().parents[2]

    def pins(path: Path) -> dict[str, str]:
        found = {}
        for line in path.read_text().splitlines():
            line = line.split("#")[0].strip()
            if "==" in line:
                name, version = line.split("==")
                found[name.split("[")[0].lower().replace("_", "-")] = version
        return found

    layer, tested = pins(root / "layers/dependencies/requirements.txt"), pins(root / "requirements/dev.txt")
    assert "aiohttp" in layer
    assert {name: tested.get(name) for name in layer} == layer
