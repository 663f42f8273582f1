"""Each metric the dashboard and the alarms read is emitted, with its dimensions, by the code
path that should emit it: the Lambda entry points over moto, their EMF lines parsed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
from cfnlint.decode import decode

from tests.monitoring.conftest import EmittedMetric

ROOT = Path(__file__).resolve().parents[2]
SERVICE = {"service": "session-manager"}
SPEAKER = "speaker-sub-1"


def named(metrics: list[EmittedMetric], name: str) -> list[EmittedMetric]:
    return [metric for metric in metrics if metric.name == name]


def only(metrics: list[EmittedMetric], name: str, dimensions: dict[str, str]) -> EmittedMetric:
    matching = [m for m in named(metrics, name) if m.dimensions == dimensions]
    assert len(matching) == 1, (name, dimensions, metrics)
    return matching[0]


def the_namespace() -> str:
    from session_manager.observability import NAMESPACE

    return NAMESPACE


def connect(stack, connection_id: str, *, user_id: str | None = None, source_ip: str = "203.0.113.7") -> None:
    assert stack.send("connect", connection_id, "$connect", user_id=user_id, source_ip=source_ip) == {"statusCode": 200}


def create_session(stack, speaker: str = "speaker-conn=") -> str:
    connect(stack, speaker, user_id=SPEAKER)
    stack.send(
        "create_session", speaker, "createSession", {"action": "createSession", "sourceLanguage": "en"}, user_id=SPEAKER
    )
    (created,) = [m for m in stack.messages_to(speaker) if m["type"] == "sessionCreated"]
    return created["sessionId"]


def join(stack, session_id: str, listener: str, language: str = "es") -> None:
    connect(stack, listener)
    stack.send(
        "join_session",
        listener,
        "joinSession",
        {"action": "joinSession", "sessionId": session_id, "targetLanguage": language},
    )


def test_session_creation_latency_comes_from_create_session_in_milliseconds(stack):
    create_session(stack)
    metric = only(stack.metrics_of_last(), "SessionCreationLatency", SERVICE)
    assert metric.unit == "Milliseconds"
    assert metric.namespace == the_namespace()
    assert metric.values and all(value > 0 for value in metric.values)


def test_listener_join_latency_comes_from_join_session_in_milliseconds(stack):
    session_id = create_session(stack)
    join(stack, session_id, "listener-1=")
    metric = only(stack.metrics_of_last(), "ListenerJoinLatency", SERVICE)
    assert (metric.unit, metric.namespace) == ("Milliseconds", the_namespace())


def test_an_error_counts_once_in_total_and_once_under_its_code(stack):
    connect(stack, "listener-1=")
    stack.send(
        "join_session",
        "listener-1=",
        "joinSession",
        {"action": "joinSession", "sessionId": "brave-otter-123", "targetLanguage": "es"},
    )
    emitted = stack.metrics_of_last()
    assert only(emitted, "ConnectionErrors", SERVICE).total == 1
    by_code = only(emitted, "ConnectionErrors", {**SERVICE, "ErrorCode": "SESSION_NOT_FOUND"})
    assert (by_code.unit, by_code.total, by_code.namespace) == ("Count", 1, the_namespace())


def test_a_connection_over_the_attempt_limit_counts_a_rate_limit_refusal(stack, monkeypatch):
    monkeypatch.setenv("RATE_LIMIT_CONNECTION_ATTEMPTS_PER_MIN", "2")
    from session_manager.config import get_settings
    from session_manager.services import get_services

    get_settings.cache_clear()
    get_services.cache_clear()
    for attempt in range(3):
        # The limit counts per clock minute: three handshakes must fall in the same one.
        minute, source_ip = int(time.time() // 60), f"198.51.100.{attempt + 1}"
        connect(stack, f"c1-{attempt}=", source_ip=source_ip)
        connect(stack, f"c2-{attempt}=", source_ip=source_ip)
        answer = stack.send("connect", f"c3-{attempt}=", "$connect", source_ip=source_ip)
        if int(time.time() // 60) == minute:
            break
    assert answer == {"statusCode": 429}
    emitted = stack.metrics_of_last()
    assert only(emitted, "RateLimitExceeded", SERVICE).total == 1
    assert only(emitted, "ConnectionErrors", {**SERVICE, "ErrorCode": "RATE_LIMIT_EXCEEDED"}).total == 1


def test_a_refused_speaker_token_counts_an_authentication_failure(stack):
    from session_manager.auth import Unauthorized

    event = {
        "type": "REQUEST",
        "methodArn": "arn:aws:execute-api:us-east-1:123456789012:abc123/dev/$connect",
        "queryStringParameters": {"token": "not.a.jwt"},
        "requestContext": {"routeKey": "$connect", "eventType": "CONNECT", "identity": {"sourceIp": "203.0.113.7"}},
    }
    with pytest.raises(Unauthorized):
        stack.invoke("authorizer", event)
    metric = only(stack.metrics_of_last(), "AuthenticationFailures", SERVICE)
    assert (metric.unit, metric.total, metric.namespace) == ("Count", 1, the_namespace())


def test_the_sweeper_samples_sessions_and_listeners(stack):
    session_id = create_session(stack)
    join(stack, session_id, "listener-1=")
    join(stack, session_id, "listener-2=", "fr")
    stack.invoke("sweeper", {"source": "aws.events", "detail-type": "Scheduled Event"})
    emitted = stack.metrics_of_last()
    assert only(emitted, "ActiveSessions", SERVICE).total == 1
    assert only(emitted, "TotalListeners", SERVICE).total == 2


def test_ending_a_session_times_its_fan_out_and_counts_gone_listeners(stack):
    session_id = create_session(stack)
    join(stack, session_id, "listener-1=")
    join(stack, session_id, "listener-2=")
    stack.gone.add("listener-2=")  # its socket closed without a $disconnect yet
    stack.send("end_session", "speaker-conn=", "endSession", {"action": "endSession"}, user_id=SPEAKER)
    emitted = stack.metrics_of_last()
    duration = only(emitted, "FanOutDuration", SERVICE)
    assert (duration.unit, duration.namespace) == ("Milliseconds", the_namespace())
    assert only(emitted, "GoneConnections", SERVICE).total == 1
    assert [m["type"] for m in stack.messages_to("listener-1=")][-1] == "sessionEnded"


def test_a_missing_table_counts_as_misconfiguration_not_an_outage(stack):
    boto3.client("dynamodb", region_name="us-east-1").delete_table(TableName="RateLimitsTable")
    assert stack.send("connect", "c1=", "$connect") == {"statusCode": 500}
    emitted = stack.metrics_of_last()
    metric = only(emitted, "MisconfigurationErrors", SERVICE)
    assert (metric.unit, metric.total, metric.namespace) == ("Count", 1, the_namespace())
    assert only(emitted, "ConnectionErrors", {**SERVICE, "ErrorCode": "INTERNAL_ERROR"}).total == 1


def test_the_namespace_is_the_one_the_template_gives_the_functions():
    """POWERTOOLS_METRICS_NAMESPACE (template Globals) names the metrics of a fresh process."""
    code = "from session_manager.observability import NAMESPACE, metrics; print(NAMESPACE)"
    environment = {**os.environ, "POWERTOOLS_METRICS_NAMESPACE": "LiveTranslation/prod"}
    environment["PYTHONPATH"] = f"{ROOT / 'layers/session_manager/python'}:{ROOT}"
    printed = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True)
    assert printed.stdout.strip() == "LiveTranslation/prod"
    template, _ = decode(str(ROOT / "template.yaml"))
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == {"Fn::Sub": "LiveTranslation/${EnvironmentName}"}


# Which test above proves each custom metric of the dashboard and the alarms.
EMITTED_BY_TESTS = {
    "SessionCreationLatency",
    "ListenerJoinLatency",
    "ConnectionErrors",
    "RateLimitExceeded",
    "AuthenticationFailures",
    "ActiveSessions",
    "TotalListeners",
    "FanOutDuration",
    "GoneConnections",
    "MisconfigurationErrors",
}
# Written by a CloudWatch Logs metric filter, not by the code (tests/monitoring/test_logs.py).
FROM_METRIC_FILTERS = {"InitFailures"}


def _custom_metrics_in(value, namespace_marker="LiveTranslation/${EnvironmentName}") -> set[str]:
    found = set()
    if isinstance(value, dict):
        if value.get("Namespace") == {"Fn::Sub": namespace_marker}:
            found.add(value["MetricName"])
        for item in value.values():
            found |= _custom_metrics_in(item, namespace_marker)
    elif isinstance(value, list):
        if len(value) >= 2 and value[0] == namespace_marker:
            found.add(value[1])
        for item in value:
            found |= _custom_metrics_in(item, namespace_marker)
    return found


def test_every_custom_metric_of_the_dashboard_and_the_alarms_is_proven_emitted():
    template, _ = decode(str(ROOT / "template.yaml"))
    resources = template["Resources"]
    alarms = {r["Properties"].get("MetricName") for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"}
    alarmed = _custom_metrics_in({name: r for name, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"})
    body = json.loads(resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"])
    charted = _custom_metrics_in(body)
    assert alarmed <= alarms
    assert alarmed | charted == EMITTED_BY_TESTS | FROM_METRIC_FILTERS
