"""Every sample event in events/ runs through `python -m local_stack invoke` against the REAL
template (the Docker-free `sam local invoke`), and its function posts the replies it should to the
event's connection; next to a running stack, invocations share its tables."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO_ROOT

from local_stack.template import load_template
from local_stack.testing import running_stack

EVENTS_DIR = REPO_ROOT / "events"
EVENTS = sorted(EVENTS_DIR.glob("*.json"))
ENVIRONMENT = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
REPLY_LINE = re.compile(r"^local_stack: posted to the event's connection: (?P<data>.*)$")
SESSION_ID = re.compile(r"^[a-z]+-[a-z]+-[1-9][0-9]{2}$")

# What each function posts to the event's connection when invoked on fresh, empty tables (no
# `make run` beside it): (type, error code). Events that reach no connection post nothing.
EXPECTED_REPLIES: dict[str, list[tuple[str, str | None]]] = {
    "authorizer.json": [],
    "connect.json": [],
    "connect_speaker.json": [],
    "disconnect.json": [],
    "sweeper.json": [],
    # The connection was never registered by $connect, so it is not free to hold a session.
    "create_session.json": [("error", "INVALID_ACTION")],
    "default_route.json": [("error", "INVALID_ACTION")],
    "end_session.json": [("error", "FORBIDDEN")],
    "get_session_status.json": [("error", "FORBIDDEN")],
    # The event's connectedAt is long past, so the connection is told to refresh as well.
    "heartbeat.json": [("heartbeatAck", None), ("connectionWarning", None)],
    "join_session.json": [("error", "SESSION_NOT_FOUND")],
    "leave_session.json": [("error", "INVALID_ACTION")],
    "refresh_connection.json": [("error", "SESSION_NOT_FOUND")],
    # The connection was never registered, so it speaks for no session.
    "send_caption.json": [("error", "FORBIDDEN")],
    # A page of a queued fan-out: it posts to the page's listeners, not to an event's connection.
    "caption_fan_out.json": [],
}


def function_for(event: dict[str, Any], routes: dict[str, str]) -> str:
    """The function API Gateway (or EventBridge) would send this event to."""
    if event.get("type") == "REQUEST":
        return "AuthorizerFunction"
    if event.get("source") == "aws.events":
        return "SweeperFunction"
    if (event.get("Records") or [{}])[0].get("eventSource") == "aws:sqs":
        return "CaptionFanOutFunction"
    return routes[event["requestContext"]["routeKey"]]


def invoke(function_id: str, event_file: Path, port: int = 0) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "local_stack", "invoke", "--template", "template.yaml"]
    command += ["--function", function_id, "--event", str(event_file), "--port", str(port)]
    return subprocess.run(command, cwd=REPO_ROOT, env=ENVIRONMENT, capture_output=True, text=True, timeout=180)


def replies_of(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    """What `make invoke` printed on stderr as posted to the event's connection."""
    return [json.loads(match["data"]) for line in result.stderr.splitlines() if (match := REPLY_LINE.match(line))]


def result_of(result: subprocess.CompletedProcess[str]) -> Any:
    """stdout is the function's result and nothing else: one JSON line, for jq."""
    (line,) = result.stdout.splitlines()
    return json.loads(line)


@pytest.fixture(scope="module")
def routes() -> dict[str, str]:
    template = load_template(REPO_ROOT / "template.yaml", {}, api_id="abcdefghij")
    return {key: route.function_id for key, route in template.require_api().routes.items()}


@pytest.fixture(scope="module")
def results(routes) -> dict[str, tuple[str, subprocess.CompletedProcess[str]]]:
    """Each invocation starts moto and a worker (about 4 s of CPU), so they run side by side, one
    per core: twice that starved the timed tests of the other workers on a 2-core machine."""
    targets = {path.name: function_for(json.loads(path.read_text()), routes) for path in EVENTS}
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {name: pool.submit(invoke, targets[name], EVENTS_DIR / name) for name in targets}
        return {name: (targets[name], future.result()) for name, future in futures.items()}


def test_every_sample_event_has_its_expected_replies():
    assert sorted(EXPECTED_REPLIES) == [path.name for path in EVENTS]


@pytest.mark.parametrize("event_file", [path.name for path in EVENTS])
def test_sample_event_invokes_its_function(results, event_file):
    function_id, result = results[event_file]
    assert result.returncode == 0, f"{function_id} with {event_file}:\n{result.stdout}\n{result.stderr[-3000:]}"
    value = result_of(result)
    if function_id == "AuthorizerFunction":
        assert value["principalId"]
        (statement,) = value["policyDocument"]["Statement"]
        assert statement["Effect"] == "Allow"
        assert statement["Action"] == "execute-api:Invoke"
    elif function_id == "SweeperFunction":
        assert isinstance(value, dict) and value
        assert all(isinstance(count, int) for key, count in value.items() if key not in ("errors", "notices"))
        assert value.get("errors", []) == []
        assert all(isinstance(count, int) for count in value["notices"].values())
    elif function_id == "CaptionFanOutFunction":
        assert value == {"batchItemFailures": []}, f"{function_id} with {event_file}"
    else:
        assert value == {"statusCode": 200}, f"{function_id} with {event_file}"
    assert "using fresh, empty tables" in result.stderr


@pytest.mark.parametrize("event_file", [path.name for path in EVENTS])
def test_sample_event_posts_its_replies_to_the_events_connection(results, event_file):
    _, result = results[event_file]
    event = json.loads((EVENTS_DIR / event_file).read_text())
    replies = replies_of(result)
    assert [(reply["type"], reply.get("code")) for reply in replies] == EXPECTED_REPLIES[event_file], result.stderr
    for reply in replies:
        if reply["type"] == "error":  # an error names the request it answers
            assert reply["requestId"] == event["requestContext"]["requestId"]


def fresh_copy(event_file: str, directory: Path) -> Path:
    """The sample event as if it happened now: its connection connected a moment ago (the shipped
    one connected long ago, so its connection item would read as expired)."""
    event = json.loads((EVENTS_DIR / event_file).read_text())
    now_ms = int(time.time() * 1000)
    event["requestContext"].update(connectedAt=now_ms, requestTimeEpoch=now_ms)
    copy = directory / event_file
    copy.write_text(json.dumps(event))
    return copy


def test_invocations_next_to_a_running_stack_share_its_tables(routes, tmp_path):
    # GIVEN `make run` is up (its sweeper idle, so that nothing but these invocations writes)
    with running_stack(template=REPO_ROOT / "template.yaml", schedule_seconds=3600) as stack:
        port = stack["port"]
        # WHEN the speaker's $connect, then createSession, then getSessionStatus are invoked one by one
        connected = invoke("ConnectFunction", fresh_copy("connect_speaker.json", tmp_path), port)
        created = invoke(routes["createSession"], fresh_copy("create_session.json", tmp_path), port)
        status = invoke(routes["getSessionStatus"], fresh_copy("get_session_status.json", tmp_path), port)
    # THEN each one says whose tables it used, and each sees what the one before it wrote
    for result in (connected, created, status):
        assert result.returncode == 0, result.stderr
        assert f"using the tables, user pool and connections of the local stack on port {port}" in result.stderr
    assert result_of(connected) == {"statusCode": 200}
    (session_created,) = replies_of(created)
    assert session_created["type"] == "sessionCreated"
    assert SESSION_ID.match(session_created["sessionId"])
    (session_status,) = replies_of(status)
    assert session_status["type"] == "sessionStatus", session_status
    assert session_status["sessionId"] == session_created["sessionId"]
