"""Fuzzing through the real Lambda handlers (functions/*/app.py) over moto, as the unit suite
runs them: whatever a client sends, the function answers 200 to API Gateway, every reply is a
known message that is no 5xx and leaks nothing, and a rejected request leaves the tables as
they were."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from session_manager import handler as handler_module
from tests.unit.harness import LambdaContext, build, connect, create_session, join, load_function, websocket_event

from .checks import Tables, assert_invariants, items_of, unit_tables
from .fuzz_inputs import ACTIONS, assert_safe_reply, deeply_nested, frames, fuzz_settings

# Hypothesis warns that a 100 KB example is expensive to print: it is, and it is the point.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

FUNCTION_OF = {
    "createSession": "create_session",
    "joinSession": "join_session",
    "heartbeat": "heartbeat",
    "refreshConnection": "refresh_connection",
    "getSessionStatus": "get_session_status",
    "endSession": "end_session",
    "leaveSession": "leave_session",
}
HANDLERS = {action: load_function(name).handler for action, name in FUNCTION_OF.items()}
DEFAULT_HANDLER = load_function("default_route").handler
ROLES = ("anonymous", "speaker", "listener", "signed-in-anonymous")


def route_of(frame: str) -> Any:
    """The gateway's route selection on `$request.body.action`, $default when it does not apply."""
    try:
        body = json.loads(frame)
    except (ValueError, RecursionError):
        return DEFAULT_HANDLER
    action = body.get("action") if isinstance(body, dict) else None
    return HANDLERS.get(action, DEFAULT_HANDLER) if isinstance(action, str) else DEFAULT_HANDLER


class FuzzWorld:
    """The domain over moto, and clients in every role, made anew only after a request that was
    accepted (a rejected one leaves them as they were, which each example checks)."""

    def __init__(self, services, management_api, tables: Tables) -> None:
        self.services, self.management_api, self.tables = services, management_api, tables
        self._clients: dict[str, Any] | None = None

    def clients(self) -> dict[str, Any]:
        if self._clients is None:
            self._clients = _fresh_clients(self.services)
        return self._clients

    def spent(self) -> None:
        self._clients = None

    def __iter__(self):
        return iter((self.services, self.management_api, self.tables))


@pytest.fixture
def world(dynamodb_client, management_api, monkeypatch):
    built = build(dynamodb_client, management_api)
    monkeypatch.setattr(handler_module, "get_services", lambda: built.services)
    tables = unit_tables(dynamodb_client)
    yield FuzzWorld(built, management_api, tables)
    # Once per test rather than per example: a full scan of a table every example has filled
    # would cost more than the examples.
    assert_invariants(tables)


_speakers = itertools.count(1)


def _fresh_clients(services) -> dict[str, Any]:
    # A speaker per example: one user's 50 sessions an hour would run out.
    speaker, session_id = create_session(services, user_id=f"fuzz-speaker-{next(_speakers)}")
    listener = join(services, session_id, source_ip="198.51.100.20")
    return {
        "session_id": session_id,
        "speaker": (speaker.connection_id, speaker.caller.user_id),
        "listener": (listener.connection_id, None),
        "anonymous": (connect(services, source_ip="198.51.100.21").connection_id, None),
        "signed-in-anonymous": (connect(services, user_id="fuzz-other-user").connection_id, "fuzz-other-user"),
    }


def _send(management_api, connection_id: str, user_id: str | None, frame: str) -> list[dict[str, Any]]:
    before = len(management_api.messages_to(connection_id))
    event = websocket_event(connection_id, "$default", frame, user_id=user_id, source_ip="198.51.100.22")
    response = route_of(frame)(event, LambdaContext())
    assert response == {"statusCode": 200}, response
    return management_api.messages_to(connection_id)[before:]


def _check_one(world, role: str, frame: str) -> None:
    clients = world.clients()
    connection_id, user_id = clients[role]
    before = _state(world.tables, clients)
    replies = _send(world.management_api, connection_id, user_id, frame)
    assert replies, f"no reply to {frame[:200]!r}"
    for reply in replies:
        assert_safe_reply(reply, frame)
    if all(reply["type"] == "error" for reply in replies):
        assert _state(world.tables, clients) == before, f"rejected {frame[:200]!r} changed state"
    else:
        world.spent()


def _state(tables: Tables, clients: dict[str, Any]) -> dict[str, Any]:
    connection_ids = {clients[role][0] for role in ROLES}
    return items_of(tables, {clients["session_id"]}, connection_ids)


@fuzz_settings(examples=60)
@given(role=st.sampled_from(ROLES), data=st.data())
def test_any_frame_through_the_handlers_gets_a_safe_reply_and_a_rejection_changes_nothing(world, role, data):
    known_ids = [f"{word}-{number}" for word, number in (("faithful-shepherd", 427), ("grace-harbor", 101))]
    _check_one(world, role, data.draw(frames(known_ids)))


@pytest.mark.parametrize("action", ACTIONS)
@fuzz_settings(examples=8)
@given(data=st.data())
def test_every_action_with_fields_of_every_type(world, action, data):
    from .fuzz_inputs import field_values

    clients = world.clients()
    values = field_values([clients["session_id"]])
    body = data.draw(
        st.fixed_dictionaries(
            {"action": st.just(action)},
            optional={
                name: values for name in ("sessionId", "targetLanguage", "sourceLanguage", "qualityTier", "role")
            },
        )
    )
    role = data.draw(st.sampled_from(ROLES))
    frame = json.dumps(body)
    connection_id, user_id = clients[role]
    before = _state(world.tables, clients)
    replies = _send(world.management_api, connection_id, user_id, frame)
    for reply in replies:
        assert_safe_reply(reply, frame)
    if all(reply["type"] == "error" for reply in replies):
        assert _state(world.tables, clients) == before
    else:
        world.spent()


@pytest.mark.parametrize("depth", [50, 900])
def test_nesting_within_the_recursion_limit_gets_a_safe_reply(world, depth):
    for frame in deeply_nested(depth):
        _check_one(world, "listener", frame)


@pytest.mark.parametrize("frame", deeply_nested(10_000), ids=["array", "in-a-field", "in-an-extra-field"])
def test_nesting_past_the_recursion_limit_gets_a_safe_reply(world, frame):
    _check_one(world, "listener", frame)


def test_the_fuzzers_reach_success_too(world):
    """Guard against a fuzzer that only ever sends garbage: near-valid input gets through."""
    services, management_api, _ = world
    clients = _fresh_clients(services)
    frame = json.dumps(
        {"action": "joinSession", "sessionId": f"  {clients['session_id'].upper()} ", "targetLanguage": "fr"}
    )
    (reply,) = _send(management_api, clients["anonymous"][0], None, frame)
    assert reply["type"] == "sessionJoined" and re.fullmatch(r"[a-z]+-[a-z]+-\d{3}", reply["sessionId"]), reply
