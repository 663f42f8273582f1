"""Reading templates: the project's real template.yaml is discovered completely, and the pieces
the gateway decides with (route selection, authorizer policies) behave like API Gateway."""

from __future__ import annotations

import pytest
from conftest import REPO_ROOT

from local_stack.gateway import HandshakeRefusedError, authorizer_context, choose_route, select_route_key
from local_stack.template import Route, WebSocketApi, load_template

REAL_TEMPLATE = REPO_ROOT / "template.yaml"
ARN = "arn:aws:execute-api:us-east-1:123456789012:abc/dev/$connect"


@pytest.fixture(scope="module")
def real():
    return load_template(REAL_TEMPLATE, {}, api_id="abcdefghij")


def test_real_template_routes_are_all_discovered(real):
    assert set(real.api.routes) == {
        "$connect", "$disconnect", "$default", "createSession", "joinSession", "heartbeat",
        "refreshConnection", "getSessionStatus", "endSession", "leaveSession", "sendCaption",
    }  # fmt: skip
    assert real.api.routes["sendCaption"].function_id == "SendCaptionFunction"
    assert real.api.routes["getSessionStatus"].function_id == "GetSessionStatusFunction"
    assert real.api.routes["$default"].function_id == "DefaultRouteFunction"
    assert real.api.route_selection_expression == "$request.body.action"
    assert real.api.stage_name == "dev"


def test_real_template_authorizer_guards_connect_only(real):
    connect = real.api.routes["$connect"]
    assert connect.authorizer is not None
    assert connect.authorizer.function_id == "AuthorizerFunction"
    assert [key for key, route in real.api.routes.items() if route.authorizer] == ["$connect"]


def test_real_template_functions_have_code_layers_and_timeouts(real):
    assert len(real.functions) == 14
    sweeper = real.functions["SweeperFunction"]
    assert sweeper.handler == "app.handler"
    assert sweeper.code_dir == REPO_ROOT / "functions" / "sweeper"
    assert sweeper.layer_dirs == (REPO_ROOT / "layers" / "session_manager" / "python",)
    assert sweeper.timeout_seconds == 55
    assert real.functions["ConnectFunction"].timeout_seconds == 10
    assert [(s.event_name, s.period_seconds) for s in sweeper.schedules] == [("EveryMinute", 60.0)]


def test_real_template_tables_keep_their_schema(real):
    assert set(real.tables) == {"SessionsTable", "ConnectionsTable", "RateLimitsTable", "CaptionsTable"}
    (index,) = real.tables["ConnectionsTable"].properties["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "sessionId-targetLanguage-index"
    assert [key["AttributeName"] for key in index["KeySchema"]] == ["sessionId", "targetLanguage"]


def test_real_template_environment_resolves_globals(real):
    environment = real.resolver.resolve(dict(real.functions["HeartbeatFunction"].environment_template))
    assert environment["SESSIONS_TABLE"] == "SessionsTable"
    assert environment["MANAGEMENT_API_ENDPOINT"] == "https://abcdefghij.execute-api.us-east-1.amazonaws.com/dev"
    assert environment["USER_POOL_ID"] == "SpeakerUserPool"  # the moto pool id once it exists
    assert environment["POWERTOOLS_METRICS_NAMESPACE"] == "LiveTranslation/dev"


def test_parameters_override_template_parameters():
    template = load_template(REAL_TEMPLATE, {"EnvironmentName": "staging"}, api_id="abcdefghij")
    environment = template.resolver.resolve(dict(template.functions["ConnectFunction"].environment_template))
    assert environment["ENVIRONMENT_NAME"] == "staging"


@pytest.mark.parametrize(
    ("body", "route_key"),
    [
        ('{"action": "joinSession"}', "joinSession"),
        ('{"action": 5}', None),
        ('{"action": "$connect"}', None),
        ('{"nested": {"action": "x"}}', None),
        ("[]", None),
        ("plain text", None),
    ],
)
def test_route_selection_expression_reads_the_body(body, route_key):
    assert select_route_key("$request.body.action", body) == route_key


def test_without_a_matching_route_or_default_there_is_no_route():
    api = WebSocketApi("Api", "abc", "$request.body.action", "dev", {"echo": Route("echo", "EchoFunction")})
    assert choose_route(api, '{"action": "other"}') is None
    assert choose_route(api, '{"action": "echo"}') == Route("echo", "EchoFunction")


def policy(effect: str, resource: str = ARN) -> dict:
    statement = {"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}
    return {"principalId": "p", "policyDocument": {"Version": "2012-10-17", "Statement": [statement]}}


def test_allow_policy_with_wildcard_resource_is_allowed():
    assert authorizer_context(policy("Allow", "arn:aws:execute-api:*"), ARN, 3)["principalId"] == "p"


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        (policy("Deny"), 403),
        (policy("Allow", "arn:aws:execute-api:us-east-1:123456789012:other/*"), 403),
        ({"principalId": "p"}, 500),
        ({**policy("Allow"), "context": {"nested": {"a": 1}}}, 500),
    ],
)
def test_authorizer_answers_that_refuse(answer, status):
    with pytest.raises(HandshakeRefusedError) as refused:
        authorizer_context(answer, ARN, 3)
    assert refused.value.status == status
