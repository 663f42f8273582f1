"""Idle and hard connection limits, schedules and the ENV_VARS file, on a stack started with tiny
limits so that they show within seconds."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import pytest
from conftest import FIXTURE_TEMPLATE, echo, open_socket, receive_json
from websockets.exceptions import ConnectionClosed

from local_stack.testing import running_stack

IDLE_TIMEOUT_SECONDS = 2.0
MAX_CONNECTION_SECONDS = 4.0
SCHEDULE_SECONDS = 0.5
ENV_VARS = {
    "Parameters": {"Greeting": "bonjour", "FLAVOUR": "spicy"},
    "EchoFunction": {"EXTRA": "only-echo", "CONNECTION_REFRESH_MINUTES": "0.05", "ROLE": "overridden"},
}


@pytest.fixture(scope="module")
def stack():
    with running_stack(
        template=FIXTURE_TEMPLATE,
        env_vars=ENV_VARS,
        schedule_seconds=SCHEDULE_SECONDS,
        idle_timeout_seconds=IDLE_TIMEOUT_SECONDS,
        max_connection_seconds=MAX_CONNECTION_SECONDS,
        metrics=True,
        warm_environments=1,
    ) as ready:
        # A cold start would eat into the tiny idle timeout: warm the functions first. On a busy
        # machine a cold start alone can outlast it, so the socket may close under the warm-up.
        for _ in range(5):
            with contextlib.suppress(ConnectionClosed), open_socket(ready) as socket:
                echo(socket)
                socket.send("to the default route")
                socket.recv(timeout=10)
                break
        yield ready


def test_idle_connection_is_closed_with_1001_and_runs_disconnect(stack, wait_for_record):
    with open_socket(stack) as socket:
        connection_id = echo(socket)["event"]["requestContext"]["connectionId"]
        started = time.monotonic()
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=10)
        silent_for = time.monotonic() - started
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1001, "Going away")
    assert silent_for < IDLE_TIMEOUT_SECONDS + 0.8
    context = wait_for_record("disconnect", connection_id)["requestContext"]
    assert (context["disconnectStatusCode"], context["disconnectReason"]) == (1001, "Going away")


def test_messages_reset_the_idle_timer_but_not_the_hard_limit(stack, wait_for_record):
    # The stack's clock starts somewhere in the handshake, which a busy machine stretches: the
    # lower bound counts from before it, the upper bound from after it.
    opening = time.monotonic()
    with open_socket(stack) as socket:
        connected = time.monotonic()
        connection_id = echo(socket)["event"]["requestContext"]["connectionId"]
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                # Not waiting for the replies: a message resets the idle timer when it arrives,
                # and a function slowed by a busy machine must not stretch the gaps past it.
                socket.send(json.dumps({"action": "echo"}))
                time.sleep(IDLE_TIMEOUT_SECONDS / 3)
        closed_at = time.monotonic()
    assert closed.value.rcvd.code == 1001
    assert closed_at - opening >= MAX_CONNECTION_SECONDS - 0.3
    assert closed_at - connected < MAX_CONNECTION_SECONDS + 1.0
    context = wait_for_record("disconnect", connection_id)["requestContext"]
    assert context["disconnectStatusCode"] == 1001


def test_env_vars_override_parameters_and_function_variables(stack):
    # A slow reply on a busy machine may outlast the 2 s idle timeout: ask again on a new socket.
    for _ in range(5):
        with contextlib.suppress(ConnectionClosed), open_socket(stack) as socket:
            echo_environment = echo(socket)["environment"]
            socket.send("to the default route")
            default_environment = socket.recv(timeout=10)
            break
    else:
        pytest.fail("every socket closed before both functions answered")
    assert echo_environment["GREETING"] == "bonjour"  # a template parameter
    assert echo_environment["FLAVOUR"] == "spicy"  # a variable of every function
    assert echo_environment["EXTRA"] == "only-echo"
    assert echo_environment["ROLE"] == "overridden"
    assert echo_environment["CONNECTION_REFRESH_MINUTES"] == "0.05"
    assert '"GREETING": "bonjour"' in default_environment
    assert '"ROLE": "default"' in default_environment
    assert "EXTRA" not in default_environment


def test_scheduled_function_runs_at_schedule_seconds(stack, wait_for_record):
    dynamodb, table = wait_for_record.dynamodb, wait_for_record.table
    deadline = time.monotonic() + 10
    events = []
    while time.monotonic() < deadline and len(events) < 2:
        items = dynamodb.scan(
            TableName=table,
            ScanFilter={"kind": {"AttributeValueList": [{"S": "schedule"}], "ComparisonOperator": "EQ"}},
        )["Items"]
        events = [item for item in items]
        time.sleep(0.2)
    assert len(events) >= 2
    event = wait_for_record("schedule", events[0]["pk"]["S"].split("#", 1)[1])
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert event["account"] == "123456789012"
    assert event["region"] == "us-east-1"
    assert event["detail"] == {}
    assert event["resources"][0].startswith("arn:aws:events:us-east-1:123456789012:rule/")


def test_metrics_flag_prints_the_emf_lines_and_still_no_empty_metrics_warning(stack):
    # MisbehaveFunction's cold start may outlast this stack's 2 s idle timeout on a busy machine.
    for _ in range(5):
        with contextlib.suppress(ConnectionClosed), open_socket(stack) as socket:
            socket.send(json.dumps({"action": "misbehave", "do": "metrics"}))
            assert receive_json(socket) == {"metrics": "published"}
            break
    else:
        pytest.fail("every socket closed before the function answered")
    log = Path(stack["logFile"]).read_text()
    # A try whose socket closed before the answer may have published too: one line per try.
    emf_lines = [line for line in log.splitlines() if "ProbeMetric" in line]
    assert emf_lines, log
    emf = json.loads(emf_lines[-1].split("] ", 1)[1])
    assert emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Probe"
    assert emf["ProbeMetric"] == [1.0]
    assert any("ProbeSingleMetric" in line for line in log.splitlines())
    assert "No application metrics to publish" not in log
