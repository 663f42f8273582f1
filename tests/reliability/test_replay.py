"""Duplicate $connect and $disconnect events (requirement 16), replayed through the function
entry points: the local stack delivers each event once and cannot re-deliver one, API Gateway
may. The replayed run must end in the state of the single one."""

from __future__ import annotations

import pytest

from session_manager import handler as handler_module
from tests.unit.harness import LambdaContext, build, load_function, websocket_event

from .checks import assert_invariants, items_of, unit_tables

CONNECT = load_function("connect").handler
DISCONNECT = load_function("disconnect").handler
CREATE = load_function("create_session").handler
JOIN = load_function("join_session").handler
STATUS = load_function("get_session_status").handler


@pytest.fixture
def world(dynamodb_client, management_api, monkeypatch):
    built = build(dynamodb_client, management_api)
    monkeypatch.setattr(handler_module, "get_services", lambda: built.services)
    tables = unit_tables(dynamodb_client)
    yield management_api, tables
    assert_invariants(tables)


def _run(handler, connection_id: str, route: str, body=None, *, user_id=None, connected_at=None) -> dict:
    event = websocket_event(connection_id, route, body, user_id=user_id, connected_at=connected_at)
    return handler(event, LambdaContext())


def _lifecycle(management_api, suffix: str, *, replay: int) -> tuple[str, list[str]]:
    """Speaker and three listeners; every $connect and listener $disconnect delivered `replay` times."""
    speaker = f"speaker-{suffix}="
    listeners = [f"listener-{suffix}-{n}=" for n in range(3)]
    connected_at = {cid: 1_700_000_000_000 + n for n, cid in enumerate([speaker, *listeners])}
    for _ in range(replay):
        assert _run(CONNECT, speaker, "$connect", user_id=f"user-{suffix}", connected_at=connected_at[speaker]) == {
            "statusCode": 200
        }
    _run(
        CREATE, speaker, "createSession", {"action": "createSession", "sourceLanguage": "en"}, user_id=f"user-{suffix}"
    )
    session_id = management_api.messages_to(speaker)[-1]["sessionId"]
    for listener in listeners:
        for _ in range(replay):
            assert _run(CONNECT, listener, "$connect", connected_at=connected_at[listener]) == {"statusCode": 200}
        body = {"action": "joinSession", "sessionId": session_id, "targetLanguage": "es"}
        _run(JOIN, listener, "joinSession", body)
    for listener in listeners[:2]:
        for _ in range(replay):
            assert _run(DISCONNECT, listener, "$disconnect") == {"statusCode": 200}
    return session_id, [speaker, *listeners]


def test_replayed_connects_and_disconnects_end_in_the_state_of_a_single_delivery(world):
    management_api, tables = world
    once_session, once_ids = _lifecycle(management_api, "once", replay=1)
    twice_session, twice_ids = _lifecycle(management_api, "twice", replay=3)
    once = items_of(tables, {once_session}, set(once_ids))
    twice = items_of(tables, {twice_session}, set(twice_ids))
    # Same shape: one listener seated, two gone, the speaker's connection recorded once.
    for state, session_id, ids in ((once, once_session, once_ids), (twice, twice_session, twice_ids)):
        assert state["sessions"][session_id]["listenerCount"] == 1
        assert [state["connections"][cid] is None for cid in ids] == [False, True, True, False]
    # And the same values, but for the names and times that differ by construction.
    assert _strip(once, once_session, once_ids) == _strip(twice, twice_session, twice_ids)
    # The speaker was told once per event, not once per delivery.
    assert [m["type"] for m in management_api.messages_to(once_ids[0])] == [
        m["type"] for m in management_api.messages_to(twice_ids[0])
    ]


def _strip(state: dict, session_id: str, ids: list[str]) -> list:
    volatile = {
        "sessionId",
        "connectionId",
        "speakerConnectionId",
        "speakerUserId",
        "userId",
        "createdAt",
        "expiresAt",
        "ttl",
        "connectedAt",
        "lastChangeAt",
        "updatedAt",
        "joinedAt",
    }

    def keep(item):
        # Times differ between two runs: every `...At` attribute, `leftAt_<language>` included.
        return (
            None
            if item is None
            else {
                k: v
                for k, v in item.items()
                if k not in volatile and not k.endswith("At") and not k.startswith("leftAt_")
            }
        )

    return [keep(state["sessions"][session_id])] + [keep(state["connections"][cid]) for cid in ids]


def test_a_replayed_speaker_disconnect_acts_once(world):
    management_api, tables = world
    _, ids = _lifecycle(management_api, "speaker", replay=1)
    speaker, last_listener = ids[0], ids[3]
    before = len(management_api.messages_to(last_listener))
    for _ in range(3):
        assert _run(DISCONNECT, speaker, "$disconnect") == {"statusCode": 200}
    told = [m["type"] for m in management_api.messages_to(last_listener)[before:]]
    # Ended at once (no grace) or away (grace): either way, told once.
    assert len(told) == 1 and told[0] in {"sessionEnded", "speakerAway"}, told
    assert items_of(tables, set(), {speaker})["connections"][speaker] is None
