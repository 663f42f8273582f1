"""HeartbeatAnsweredBy (decision 44): function by default; gateway answers with a MOCK route that
has everything a WebSocket MOCK needs to send a reply back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cfnlint.decode import decode

from local_stack.template import load_template
from session_manager.config import Settings

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
MOCK_PARTS = ("HeartbeatMockIntegration", "HeartbeatIntegrationResponse", "HeartbeatRouteResponse")
FUNCTION_PARTS = ("HeartbeatIntegration", "HeartbeatPermission")


@pytest.fixture(scope="module")
def template():
    parsed, matches = decode(str(TEMPLATE))
    assert not matches, matches
    return parsed


def active(mode: str):
    """The template as CloudFormation would create it in that mode (conditions resolved)."""
    return load_template(TEMPLATE, {"HeartbeatAnsweredBy": mode}, api_id="abcdefghij")


def test_the_parameter_defaults_to_the_function_and_allows_only_the_two_modes(template):
    parameter = template["Parameters"]["HeartbeatAnsweredBy"]
    assert parameter["Default"] == "function" == Settings().heartbeat_answered_by
    assert parameter["AllowedValues"] == ["function", "gateway"]


@pytest.mark.parametrize("mode", ["function", "gateway"])
def test_each_mode_creates_only_its_own_heartbeat_parts(mode):
    loaded = active(mode)
    created = {name for name in (*MOCK_PARTS, *FUNCTION_PARTS) if loaded.resolver.resource_is_active(name)}
    assert created == set(MOCK_PARTS if mode == "gateway" else FUNCTION_PARTS)
    route = loaded.require_api().routes["heartbeat"]
    if mode == "function":
        assert (route.function_id, route.mock) == ("HeartbeatFunction", None)
    else:
        assert route.function_id is None and route.mock is not None and route.mock.two_way


def test_the_mock_route_has_the_request_template_the_integration_response_and_the_route_response(template):
    resources = template["Resources"]
    route = resources["HeartbeatRoute"]["Properties"]
    assert route["RouteResponseSelectionExpression"]["Fn::If"][:2] == ["HeartbeatAnsweredByGateway", "$default"]
    assert route["Target"]["Fn::If"][1] == {"Fn::Sub": "integrations/${HeartbeatMockIntegration}"}
    integration = resources["HeartbeatMockIntegration"]["Properties"]
    assert integration["IntegrationType"] == "MOCK"
    # "\$default" is the literal key; a bare "$default" would be evaluated as a variable.
    assert integration["TemplateSelectionExpression"] == "\\$default"
    assert integration["RequestTemplates"] == {"$default": '{"statusCode": 200}'}
    response = resources["HeartbeatIntegrationResponse"]["Properties"]
    assert response["IntegrationId"] == {"Ref": "HeartbeatMockIntegration"}
    assert response["IntegrationResponseKey"] == "$default"
    assert response["TemplateSelectionExpression"] == "\\$default"
    assert response["ResponseTemplates"] == {
        "$default": '{"type":"heartbeatAck","timestamp":$context.requestTimeEpoch}'
    }
    route_response = resources["HeartbeatRouteResponse"]["Properties"]
    assert route_response == {
        "ApiId": {"Ref": "WebSocketApi"},
        "RouteId": {"Ref": "HeartbeatRoute"},
        "RouteResponseKey": "$default",
    }
    for name in MOCK_PARTS:
        assert resources[name]["Condition"] == "HeartbeatAnsweredByGateway"


def test_the_stage_is_created_after_the_mock_responses_and_still_auto_deploys(template):
    """No Deployment resource (it would not redeploy on route changes); AutoDeploy publishes the
    switch between modes. The stage's tag refers to the responses, which a DependsOn cannot
    (they do not exist in function mode)."""
    stage = template["Resources"]["WebSocketStage"]
    assert stage["Properties"]["AutoDeploy"] is True
    assert "HeartbeatRoute" in stage["DependsOn"]
    condition, gateway_value, function_value = stage["Properties"]["Tags"]["heartbeatAnsweredBy"]["Fn::If"]
    assert condition == "HeartbeatAnsweredByGateway" and function_value == "function"
    assert "${HeartbeatIntegrationResponse}" in gateway_value["Fn::Sub"]
    assert "${HeartbeatRouteResponse}" in gateway_value["Fn::Sub"]


def test_the_sweeper_learns_the_mode_under_the_variable_the_settings_read(template):
    variables = template["Resources"]["SweeperFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["HEARTBEAT_ANSWERED_BY"] == {"Ref": "HeartbeatAnsweredBy"}
    assert Settings.from_environment({"HEARTBEAT_ANSWERED_BY": "gateway"}).heartbeats_answered_by_gateway


def test_the_sweeper_may_get_connections(template):
    """GetConnection is a GET on @connections; the sweeper's policy must allow every method."""
    policies = template["Resources"]["SweeperFunction"]["Properties"]["Policies"]
    resources = [
        statement["Resource"]["Fn::Sub"]
        for policy in policies
        for statement in (policy.get("Statement", []) if isinstance(policy, dict) else [])
        if statement["Action"] == "execute-api:ManageConnections"
    ]
    assert resources == [
        "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${WebSocketApi}/${StageName}/*/@connections/*"
    ]


def test_cfn_lint_is_clean_in_gateway_mode_too():
    """`make cfn-lint` lints the defaults; the other mode's resources must lint as well."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), str(TEMPLATE), "--parameters", "HeartbeatAnsweredBy=gateway"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_switching_to_gateway_moves_the_route_only_after_the_sweepers_alias(template):
    """A function-mode sweeper over the MOCK route would close every connection: the route names
    the sweeper's alias in gateway mode, so CloudFormation updates it after the alias (and its
    canary) is done."""
    condition, gateway_value, function_value = template["Resources"]["HeartbeatRoute"]["Properties"]["OperationName"][
        "Fn::If"
    ]
    assert (condition, function_value) == ("HeartbeatAnsweredByGateway", {"Ref": "AWS::NoValue"})
    assert gateway_value["Fn::Sub"][1] == {"Alias": {"Ref": "SweeperFunction.Alias"}}
