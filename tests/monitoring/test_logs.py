"""Every log line of a whole scenario (handshakes, create, join, errors, heartbeat, refresh, a
5xx, disconnects, a sweep) carries the fields requirement 17 asks for (docs/monitoring.md), and
none holds a token, an email, a full IP address or a connection id in clear."""

from __future__ import annotations

import logging
import re
from typing import Any

import boto3
import pytest

from tests.monitoring.conftest import CapturedLogs
from tests.unit.harness import websocket_event

SPEAKER = "speaker-sub-1"
SOURCE_IP = "203.0.113.77"
IPV6_SOURCE = "2001:db8:85a3::8a2e:370:7334"
EMAIL = "alice.speaker@example.com"
# Shaped like a Cognito ID token (header.payload.signature); refused, and never to be logged.
TOKEN = (
    "eyJraWQiOiJrZXktMSIsImFsZyI6IlJTMjU2In0"
    ".eyJzdWIiOiJzcGVha2VyLXN1Yi0xIiwiZW1haWwiOiJhbGljZS5zcGVha2VyQGV4YW1wbGUuY29tIn0"
    ".c2lnbmF0dXJlLXRoYXQtZG9lcy1ub3QtdmVyaWZ5"
)
CONNECTIONS = ["speaker-conn=", "listener-1=", "listener-2=", "listener-2-new=", "listener-3="]
ALWAYS = {"timestamp", "level", "message", "service", "location"}


@pytest.fixture
def package_logs():
    """The lines of the package's logger (session-manager and its children), as deployed."""
    from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

    from session_manager.observability import logger

    captured = CapturedLogs()
    handler = logging.StreamHandler(captured.stream)
    formatter = logger.registered_formatter
    handler.setFormatter(formatter if isinstance(formatter, LambdaPowertoolsFormatter) else LambdaPowertoolsFormatter())
    # The package's records only (botocore's own lines are not the functions' log lines).
    handler.addFilter(lambda record: record.name == logger.name or record.name.startswith(f"{logger.name}."))
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield captured
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)


class Scenario:
    """Invokes the functions and keeps, per invocation, the log lines it wrote."""

    def __init__(self, stack, logs: CapturedLogs) -> None:
        self.stack, self.logs = stack, logs
        self.invocations: list[dict[str, Any]] = []

    def run(self, function: str, event: dict[str, Any], *, kind: str) -> Any:
        before = len(self.logs.lines())
        try:
            return self.stack.invoke(function, event)
        except Exception as error:  # the authorizer refuses by raising
            return error
        finally:
            self.invocations.append(
                {
                    "function": function,
                    "kind": kind,
                    "requestId": (event.get("requestContext") or {}).get("requestId"),
                    "lines": self.logs.lines()[before:],
                }
            )

    def message(self, function: str, connection_id: str, route: str, body=None, **event_args) -> Any:
        event = websocket_event(connection_id, route, body, source_ip=SOURCE_IP, **event_args)
        return self.run(function, event, kind="websocket")

    def lifecycle(self, function: str, connection_id: str, route: str, *, user_id=None, query=None) -> Any:
        event = websocket_event(connection_id, route, user_id=user_id, source_ip=SOURCE_IP)
        if query:
            # API Gateway hands $connect the handshake's query string: a speaker's token rides there.
            event["queryStringParameters"] = query
            event["headers"] = {"Host": "abc123.execute-api.us-east-1.amazonaws.com", "User-Agent": EMAIL}
        return self.run(function, event, kind="websocket")

    def authorize(self, token: str, source_ip: str) -> Any:
        event = {
            "type": "REQUEST",
            "methodArn": "arn:aws:execute-api:us-east-1:123456789012:abc123/dev/$connect",
            "queryStringParameters": {"token": token},
            "headers": {"Authorization": f"Bearer {token}"},
            "requestContext": {
                "routeKey": "$connect",
                "eventType": "CONNECT",
                "requestId": "authorizer-request",
                "identity": {"sourceIp": source_ip},
            },
        }
        return self.run("authorizer", event, kind="authorizer")

    @property
    def lines(self) -> list[dict[str, Any]]:
        return [line for invocation in self.invocations for line in invocation["lines"]]


@pytest.fixture
def scenario(stack, package_logs):
    run = Scenario(stack, package_logs)
    join = {"action": "joinSession", "targetLanguage": "es"}

    run.authorize(TOKEN, SOURCE_IP)  # refused: a bad signature
    run.authorize(TOKEN, IPV6_SOURCE)
    run.lifecycle("connect", "speaker-conn=", "$connect", user_id=SPEAKER, query={"token": TOKEN})
    run.message(
        "create_session",
        "speaker-conn=",
        "createSession",
        {"action": "createSession", "sourceLanguage": "en"},
        user_id=SPEAKER,
    )
    session_id = next(m["sessionId"] for m in stack.messages_to("speaker-conn=") if m["type"] == "sessionCreated")
    for listener in ("listener-1=", "listener-2="):
        run.lifecycle("connect", listener, "$connect")
        run.message("join_session", listener, "joinSession", {**join, "sessionId": session_id})
    run.lifecycle("connect", "listener-3=", "$connect")
    run.message("join_session", "listener-3=", "joinSession", {**join, "sessionId": EMAIL})  # typed into the box
    run.message("join_session", "listener-3=", "joinSession", {**join, "sessionId": "quiet-otter-404"})
    run.message("join_session", "listener-3=", "joinSession", {"action": "joinSession", "sessionId": session_id})
    run.message("default_route", "listener-3=", "$default", f"not json {EMAIL}")
    run.message("heartbeat", "listener-1=", "heartbeat", {"action": "heartbeat"})
    run.lifecycle("connect", "listener-2-new=", "$connect")
    run.message(
        "refresh_connection",
        "listener-2-new=",
        "refreshConnection",
        {"action": "refreshConnection", "sessionId": session_id, "role": "listener", "targetLanguage": "es"},
    )
    run.message(
        "get_session_status", "speaker-conn=", "getSessionStatus", {"action": "getSessionStatus"}, user_id=SPEAKER
    )
    run.message("leave_session", "listener-1=", "leaveSession", {"action": "leaveSession"})
    for connection in ("listener-1=", "listener-2=", "listener-3="):
        run.lifecycle("disconnect", connection, "$disconnect")
    run.message("end_session", "speaker-conn=", "endSession", {"action": "endSession"}, user_id=SPEAKER)
    run.lifecycle("disconnect", "speaker-conn=", "$disconnect", user_id=SPEAKER)
    run.run("sweeper", {"source": "aws.events", "detail-type": "Scheduled Event"}, kind="scheduled")
    # A 5xx: the rate-limits table is gone (a misconfigured stack).
    boto3.client("dynamodb", region_name="us-east-1").delete_table(TableName="RateLimitsTable")
    run.lifecycle("connect", "listener-3=", "$connect")
    return run


def test_the_scenario_exercises_every_kind_of_line(scenario):
    messages = {line["message"] for line in scenario.lines}
    expected = {
        "speaker authentication failed",
        "session created",
        "listener joined",
        "request refused",
        "request failed",
        "connection refreshed",
        "listener left",
        "session ended",
        "sweep finished",
    }
    assert expected <= messages, expected - messages
    codes = {line.get("errorCode") for line in scenario.lines}
    assert {
        "INVALID_SESSION_ID",
        "SESSION_NOT_FOUND",
        "INVALID_PARAMETERS",
        "INVALID_ACTION",
        "INTERNAL_ERROR",
    } <= codes


def test_every_line_has_the_base_fields(scenario):
    for line in scenario.lines:
        assert set(line) >= ALWAYS, line
        assert line["service"] == "session-manager"
        assert line["level"] in {"DEBUG", "INFO", "WARNING", "ERROR"}


def test_every_request_line_carries_the_api_gateway_request_id_and_the_connection_fingerprint(scenario):
    from session_manager.observability import fingerprint

    for invocation in scenario.invocations:
        if invocation["kind"] != "websocket":
            continue
        for line in invocation["lines"]:
            assert line.get("correlation_id") == invocation["requestId"], line
            assert re.fullmatch(r"[0-9a-f]{12}", line["connection"]), line
        connection_ids = {fingerprint(c) for c in CONNECTIONS}
        assert all(line["connection"] in connection_ids for line in invocation["lines"])


def test_every_error_line_names_its_code_and_5xx_lines_carry_the_stack_trace(scenario):
    errors = [line for line in scenario.lines if line["message"] in {"request refused", "request failed"}]
    assert errors
    for line in errors:
        assert {"errorCode", "errorMessage", "status"} <= set(line), line
        if line["status"] >= 500:
            assert line["level"] == "ERROR"
            assert "Traceback" in line["exception"] and line["stack_trace"]["frames"], line
        else:
            assert line["level"] == "WARNING"


def test_no_line_holds_a_token_an_email_a_full_ip_or_a_connection_id(scenario):
    text = "\n".join(str(line) for line in scenario.lines)
    token_parts = TOKEN.split(".")
    for secret in (TOKEN, *token_parts, EMAIL, "example.com", SOURCE_IP, IPV6_SOURCE, "8a2e:370:7334"):
        assert secret not in text, secret
    assert "@" not in text
    for connection in CONNECTIONS:
        assert connection not in text, connection
    # The one address-like field is the masked network of a refused handshake.
    sources = {line["source"] for line in scenario.lines if "source" in line}
    assert sources == {"203.0.113.0/24", "2001:db8:85a3::/64"}


INIT_REPORT_ERROR = "INIT_REPORT Init Duration: 812.33 ms\tPhase: init\tStatus: error\tError Type: Runtime.ExitError"
RESTORE_REPORT_ERROR = "RESTORE_REPORT Restore Duration: 120.01 ms\tStatus: error\tError Type: Runtime.Unknown"
SUCCESSFUL_REPORT = (
    "REPORT RequestId: 1 Duration: 3.1 ms Billed Duration: 4 ms Memory Size: 256 MB Init Duration: 800 ms"
)


def _matches(pattern: str, line: str) -> bool:
    """CloudWatch Logs term patterns: every quoted term must occur (case-sensitive)."""
    terms = re.findall(r'"([^"]+)"', pattern)
    assert terms and re.sub(r'"[^"]+"', "", pattern).strip() == "", pattern
    return all(term in line for term in terms)


def test_init_and_restore_failures_feed_the_init_failures_metric_and_nothing_else_does(scenario):
    from cfnlint.decode import decode

    from tests.monitoring.test_metrics import ROOT

    template, _ = decode(str(ROOT / "template.yaml"))
    filters = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::Logs::MetricFilter"]
    assert {f["MetricTransformations"][0]["MetricName"] for f in filters} == {"InitFailures"}
    patterns = [f["FilterPattern"] for f in filters]
    assert any(_matches(p, INIT_REPORT_ERROR) for p in patterns)
    assert any(_matches(p, RESTORE_REPORT_ERROR) for p in patterns)
    assert not any(_matches(p, SUCCESSFUL_REPORT) for p in patterns)
    # Not one application line of a whole scenario (an INTERNAL_ERROR included) counts.
    assert not any(_matches(p, scenario.logs.text) for p in patterns)
