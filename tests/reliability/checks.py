"""What every reliability test ends with: the invariant check over the stack's tables, and
before/after snapshots that show a rejected request changed nothing."""

from __future__ import annotations

import importlib
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from tests.e2e.client import Stack

from .wire import scan

# Attributes that change without any request being accepted: heartbeats mark liveness and
# count themselves per minute (`hb<minute>`, decision 7).
_VOLATILE = ("lastSeenAt",)
_deserializer = TypeDeserializer()


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {
        key: _deserializer.deserialize(value)
        for key, value in item.items()
        if key not in _VOLATILE and not (key.startswith("hb") and key[2:].isdigit())
    }


def assert_invariants(stack: Stack) -> None:
    """Every violation the checker (local_stack/invariants.py) finds in the stack's tables."""
    violations = _violations(stack)
    assert not violations, "invariants violated:\n" + "\n".join(map(str, violations))


def _violations(stack: Stack) -> list[Any]:
    try:
        invariants = importlib.import_module("local_stack.invariants")
    except ModuleNotFoundError:
        return _interim_violations(stack)
    return list(invariants.check_stack(stack.info))


def _interim_violations(stack: Stack) -> list[str]:
    """Until local_stack/invariants.py lands: the counting invariants only."""
    now = __import__("time").time()
    sessions = [_plain(item) for item in scan(stack, "SessionsTable")]
    connections = [_plain(item) for item in scan(stack, "ConnectionsTable")]
    listeners: dict[str, int] = {}
    for connection in connections:
        if connection.get("role") == "listener" and connection.get("sessionId") and connection["ttl"] > now:
            listeners[connection["sessionId"]] = listeners.get(connection["sessionId"], 0) + 1
    violations = []
    for session in sessions:
        count = int(session.get("listenerCount", 0))
        if count < 0:
            violations.append(f"{session['sessionId']}: listenerCount {count} < 0")
        if session.get("isActive") and count != listeners.get(session["sessionId"], 0):
            violations.append(
                f"{session['sessionId']}: listenerCount {count} != {listeners.get(session['sessionId'], 0)} listeners"
            )
    return violations


def snapshot(stack: Stack, session_ids: set[str], since_ms: int) -> dict[str, Any]:
    """The test's own state: its sessions' items, and every connection item made since the test
    began (older items belong to other tests, which the sweeper may still be tidying)."""
    sessions = {
        item["sessionId"]: item
        for item in map(_plain, scan(stack, "SessionsTable"))
        if item["sessionId"] in session_ids
    }
    connections = {
        item["connectionId"]: item
        for item in map(_plain, scan(stack, "ConnectionsTable"))
        if int(item.get("connectedAt", 0)) >= since_ms
    }
    return {"sessions": sessions, "connections": connections}
