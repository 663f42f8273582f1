"""MOCK integrations: the local gateway answers them itself, as API Gateway does, rendering only
the `$context` variables it knows (local_stack/mock_integration.py) and refusing the rest at load."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from websockets.sync.client import connect

from local_stack.errors import TemplateError
from local_stack.mock_integration import IntegrationResponse, MockIntegration, check, render
from local_stack.template import load_template
from local_stack.testing import running_stack

REPO_ROOT = Path(__file__).resolve().parents[2]
ACK_TEMPLATE = '{"type":"heartbeatAck","timestamp":$context.requestTimeEpoch}'


# ---------------------------------------------------------------- rendering


def test_context_variables_are_substituted_bare_and_formal():
    context = {"requestTimeEpoch": 1767600060000, "connectionId": "L1=", "identity": {"sourceIp": "127.0.0.1"}}

    assert render(ACK_TEMPLATE, context, "heartbeat") == '{"type":"heartbeatAck","timestamp":1767600060000}'
    assert render("${context.connectionId}|$context.identity.sourceIp.", context, "r") == "L1=|127.0.0.1."
    assert render("costs $5 and $!", context, "r") == "costs $5 and $!"


def test_a_missing_authorizer_key_renders_empty_as_api_gateway_does():
    assert render("[$context.authorizer.userId]", {"authorizer": {"principalId": "p"}}, "r") == "[]"
    assert render("[$context.authorizer.principalId]", {"authorizer": {"principalId": "p"}}, "r") == "[p]"


@pytest.mark.parametrize(
    "template, construct",
    [
        ('{"body": $input.body}', "$input.body"),
        ("$util.escapeJavaScript($context.requestId)", "$util.escapeJavaScript"),
        ("$context.messageId", "$context.messageId"),  # documented, but the local gateway has none
        ("$stageVariables.name", "$stageVariables.name"),
        ("$context.requestId.length()", "$context.requestId.length"),
        ("#set($x = 1)$x", "#set"),
        ("## a comment", "##"),
    ],
)
def test_anything_but_known_context_variables_is_refused_naming_the_route_and_the_construct(template, construct):
    with pytest.raises(TemplateError) as refused:
        check(template, "heartbeat")
    assert "route heartbeat" in str(refused.value)
    assert construct in str(refused.value)


def test_the_status_code_of_the_request_template_picks_the_integration_response():
    mock = MockIntegration(
        route_key="ping",
        request_template='{"statusCode": 404}',
        responses=(IntegrationResponse("/4\\d\\d/", '{"missing":true}'), IntegrationResponse("$default", "{}")),
        two_way=True,
    )
    assert mock.answer({}) == '{"missing":true}'
    one_way = MockIntegration("ping", '{"statusCode": 200}', (IntegrationResponse("$default", "{}"),), two_way=False)
    assert one_way.answer({}) is None


def _template_with_mock(tmp_path: Path, integration: dict[str, Any], response: dict[str, Any]) -> Path:
    resources = {
        "Api": {"Type": "AWS::ApiGatewayV2::Api", "Properties": {"Name": "m", "ProtocolType": "WEBSOCKET"}},
        "PingRoute": {
            "Type": "AWS::ApiGatewayV2::Route",
            "Properties": {
                "ApiId": {"Ref": "Api"},
                "RouteKey": "ping",
                "RouteResponseSelectionExpression": "$default",
                "Target": {"Fn::Sub": "integrations/${PingIntegration}"},
            },
        },
        "PingIntegration": {
            "Type": "AWS::ApiGatewayV2::Integration",
            "Properties": {"ApiId": {"Ref": "Api"}, "IntegrationType": "MOCK", **integration},
        },
        "PingIntegrationResponse": {
            "Type": "AWS::ApiGatewayV2::IntegrationResponse",
            "Properties": {
                "ApiId": {"Ref": "Api"},
                "IntegrationId": {"Ref": "PingIntegration"},
                "IntegrationResponseKey": "$default",
                **response,
            },
        },
        "PingRouteResponse": {
            "Type": "AWS::ApiGatewayV2::RouteResponse",
            "Properties": {"ApiId": {"Ref": "Api"}, "RouteId": {"Ref": "PingRoute"}, "RouteResponseKey": "$default"},
        },
    }
    path = tmp_path / "template.yaml"
    path.write_text(json.dumps({"AWSTemplateFormatVersion": "2010-09-09", "Resources": resources}))
    return path


def test_a_template_the_local_stack_cannot_render_fails_at_load(tmp_path):
    path = _template_with_mock(
        tmp_path,
        {"TemplateSelectionExpression": "\\$default", "RequestTemplates": {"$default": '{"statusCode": 200}'}},
        {"TemplateSelectionExpression": "\\$default", "ResponseTemplates": {"$default": "$input.json('$')"}},
    )
    with pytest.raises(TemplateError, match=r"route ping: .*\$input\.json"):
        load_template(path, {}, api_id="abcdefghij")


def test_a_per_request_template_selection_expression_fails_at_load(tmp_path):
    path = _template_with_mock(
        tmp_path,
        {"TemplateSelectionExpression": "$request.body.kind", "RequestTemplates": {"a": '{"statusCode": 200}'}},
        {"ResponseTemplates": {"$default": "{}"}},
    )
    with pytest.raises(TemplateError, match=r"route ping: request TemplateSelectionExpression '\$request\.body\.kind'"):
        load_template(path, {}, api_id="abcdefghij")


def test_a_well_formed_mock_route_loads_without_a_function(tmp_path):
    path = _template_with_mock(
        tmp_path,
        {"TemplateSelectionExpression": "\\$default", "RequestTemplates": {"$default": '{"statusCode": 200}'}},
        {"TemplateSelectionExpression": "\\$default", "ResponseTemplates": {"$default": ACK_TEMPLATE}},
    )
    route = load_template(path, {}, api_id="abcdefghij").require_api().routes["ping"]
    assert route.function_id is None and route.mock is not None and route.mock.two_way


# ---------------------------------------------------------------- over a real socket


@pytest.fixture(scope="module")
def gateway_stack() -> Iterator[dict[str, Any]]:
    """The real template in gateway mode; no sweep during the test (it would read the tables)."""
    env_vars = {"Parameters": {"HeartbeatAnsweredBy": "gateway"}}
    with running_stack(REPO_ROOT / "template.yaml", env_vars=env_vars, schedule_seconds=3600) as ready:
        yield ready


def _aws(stack: dict[str, Any], service: str, endpoint: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=stack[endpoint],
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def _dynamodb_requests(stack: dict[str, Any]) -> dict[str, int]:
    with urllib.request.urlopen(stack["motoEndpoint"] + "/_local/dynamodb-requests", timeout=10) as answer:
        return json.loads(answer.read())


def _connection_id(stack: dict[str, Any], known: set[str]) -> str:
    """The connection $connect just recorded (the client is never told its own id)."""
    dynamodb = _aws(stack, "dynamodb", "motoEndpoint")
    items = dynamodb.scan(TableName=stack["tables"]["ConnectionsTable"])["Items"]
    (new,) = {item["connectionId"]["S"] for item in items} - known
    return new


def test_the_mock_heartbeat_answers_heartbeat_ack_without_running_a_function_and_moves_last_active_at(
    gateway_stack,
):
    management = _aws(gateway_stack, "apigatewaymanagementapi", "managementEndpoint")
    with connect(gateway_stack["websocketUrl"], open_timeout=15) as socket:
        connection_id = _connection_id(gateway_stack, set())
        connected = management.get_connection(ConnectionId=connection_id)["LastActiveAt"]
        before = _dynamodb_requests(gateway_stack)
        acks = []
        time.sleep(0.01)  # lastActiveAt has millisecond resolution: the heartbeats must come later
        for _ in range(5):
            sent_ms = int(time.time() * 1000)
            socket.send(json.dumps({"action": "heartbeat"}))
            ack = json.loads(socket.recv(timeout=10))
            acks.append((sent_ms, ack, int(time.time() * 1000)))
        after = _dynamodb_requests(gateway_stack)
        last_active = management.get_connection(ConnectionId=connection_id)["LastActiveAt"]

    for sent_ms, ack, received_ms in acks:
        assert set(ack) == {"type", "timestamp"} and ack["type"] == "heartbeatAck"
        assert sent_ms <= ack["timestamp"] <= received_ms
    # HeartbeatFunction would have made one UpdateItem per beat (test_requests_per_operation).
    assert after == before
    assert last_active > connected
    assert int(last_active.timestamp() * 1000) >= acks[-1][0]
