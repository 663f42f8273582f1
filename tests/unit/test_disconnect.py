"""$disconnect and $connect (requirements 4, 5 and 16; tasks.md 9.4)."""

from __future__ import annotations

import time

import pytest

from session_manager.errors import SessionNotFoundError
from session_manager.protocol import JoinSessionRequest
from tests.unit.harness import (
    connect,
    connection_item,
    create_session,
    join,
    run_in_threads,
    session_item,
    set_listener_count,
)


def test_a_speaker_disconnect_ends_the_session(services, dynamodb_client):
    speaker, session_id = create_session(services)

    assert services.connections.disconnect(speaker.connection_id) == "speaker"

    item = session_item(dynamodb_client, session_id)
    assert (item["isActive"], item["endReason"]) == (False, "speakerDisconnected")
    assert abs(int(item["endedAt"]) - time.time() * 1000) < 5000
    assert connection_item(dynamodb_client, speaker.connection_id) is None


def test_a_speaker_disconnect_tells_every_listener_and_detaches_them(services, management_api, dynamodb_client):
    speaker, session_id = create_session(services)
    listeners = [join(services, session_id, language) for language in ("es", "fr", "de", "es")]

    services.connections.disconnect(speaker.connection_id)

    for listener in listeners:
        (ended,) = management_api.messages_to(listener.connection_id)
        assert (ended["type"], ended["sessionId"], ended["reason"]) == (
            "sessionEnded",
            session_id,
            "speakerDisconnected",
        )
        assert ended["message"]
        assert "sessionId" not in connection_item(dynamodb_client, listener.connection_id)  # detached, socket may stay


def test_a_speaker_disconnect_logs_the_session_and_its_duration(services, logs):
    speaker, session_id = create_session(services)
    join(services, session_id)

    services.connections.disconnect(speaker.connection_id)

    (ended,) = [line for line in logs.lines if line["message"] == "session ended"]
    assert (ended["sessionId"], ended["reason"], ended["listeners"]) == (session_id, "speakerDisconnected", 1)
    assert isinstance(ended["durationSeconds"], int)
    (told,) = [line for line in logs.lines if line["message"] == "notices delivered"]
    assert (told["notices"], told["delivered"], told["failed"]) == (["sessionEnded"], 1, 0)


def test_an_ended_session_can_no_longer_be_joined(services):
    speaker, session_id = create_session(services)
    services.connections.disconnect(speaker.connection_id)

    with pytest.raises(SessionNotFoundError):
        services.sessions.join_session(connect(services).caller, JoinSessionRequest(session_id, "es"))


def test_a_listener_disconnect_frees_its_seat(services, dynamodb_client, logs):
    _, session_id = create_session(services)
    listener = join(services, session_id)
    join(services, session_id)

    assert services.connections.disconnect(listener.connection_id) == "listener"

    assert session_item(dynamodb_client, session_id)["listenerCount"] == 1
    assert connection_item(dynamodb_client, listener.connection_id) is None
    assert "listener disconnected" in logs.messages("INFO")


def test_a_duplicate_listener_disconnect_changes_the_count_once(services, dynamodb_client, logs):
    _, session_id = create_session(services)
    listener = join(services, session_id)
    join(services, session_id)

    first = services.connections.disconnect(listener.connection_id)
    second = services.connections.disconnect(listener.connection_id)

    assert (first, second) == ("listener", "unknown")
    assert session_item(dynamodb_client, session_id)["listenerCount"] == 1
    assert "duplicate or unknown $disconnect ignored" in logs.messages("INFO")


def test_two_simultaneous_disconnects_of_a_listener_change_the_count_once(services, dynamodb_client):
    _, session_id = create_session(services)
    listener = join(services, session_id)
    join(services, session_id)

    outcomes = run_in_threads(services.connections.disconnect, [listener.connection_id] * 2)

    assert "listener" in outcomes
    assert set(outcomes) <= {"listener", "duplicate", "unknown"}
    assert outcomes.count("listener") == 1
    assert session_item(dynamodb_client, session_id)["listenerCount"] == 1


def test_a_duplicate_speaker_disconnect_ends_the_session_once(services, management_api):
    speaker, session_id = create_session(services)
    listener = join(services, session_id)

    outcomes = run_in_threads(services.connections.disconnect, [speaker.connection_id] * 2)

    assert outcomes.count("speaker") == 1
    assert management_api.types_to(listener.connection_id) == ["sessionEnded"]


def test_a_listener_disconnect_never_takes_the_count_below_zero(services, dynamodb_client):
    # GIVEN a listener of a session whose count has drifted to 0
    _, session_id = create_session(services)
    listener = join(services, session_id)
    set_listener_count(dynamodb_client, session_id, 0)

    # WHEN the listener disconnects
    services.connections.disconnect(listener.connection_id)

    # THEN the count stays 0 and the item is gone
    assert session_item(dynamodb_client, session_id)["listenerCount"] == 0
    assert connection_item(dynamodb_client, listener.connection_id) is None


def test_a_disconnect_of_a_connection_that_never_joined_removes_its_item(services, dynamodb_client):
    idle = connect(services)

    assert services.connections.disconnect(idle.connection_id) == "idle"

    assert connection_item(dynamodb_client, idle.connection_id) is None


def test_a_duplicate_connect_is_harmless(services, dynamodb_client, logs):
    # GIVEN a connection that connected and joined a session
    _, session_id = create_session(services)
    listener = join(services, session_id)

    # WHEN API Gateway delivers its $connect again
    services.connections.connect(listener.caller)

    # THEN there is still one item, still in the session, and the duplicate was logged
    items = dynamodb_client.scan(TableName="ConnectionsTable")["Items"]
    assert [i["connectionId"]["S"] for i in items].count(listener.connection_id) == 1
    assert connection_item(dynamodb_client, listener.connection_id)["sessionId"] == session_id
    assert "duplicate $connect ignored" in logs.messages("WARNING")


def test_gone_listeners_do_not_stop_the_others_from_being_told(services, management_api, dynamodb_client):
    # GIVEN a session with six listeners, two of whose connections are already gone (410)
    speaker, session_id = create_session(services)
    listeners = [join(services, session_id) for _ in range(6)]
    gone = {listeners[1].connection_id, listeners[4].connection_id}
    management_api.gone.update(gone)

    # WHEN the speaker disconnects
    services.connections.disconnect(speaker.connection_id)

    # THEN every other listener was told, and every listener is detached from the session
    for listener in listeners:
        expected = [] if listener.connection_id in gone else ["sessionEnded"]
        assert management_api.types_to(listener.connection_id) == expected
        assert "sessionId" not in connection_item(dynamodb_client, listener.connection_id)  # detached, socket may stay


def test_a_listener_disconnect_after_its_session_item_vanished_removes_its_item(services, dynamodb_client):
    # GIVEN a listener whose session item TTL deletion already removed
    _, session_id = create_session(services)
    listener = join(services, session_id)
    dynamodb_client.delete_item(TableName="SessionsTable", Key={"sessionId": {"S": session_id}})

    # WHEN it disconnects
    outcome = services.connections.disconnect(listener.connection_id)

    # THEN its item is removed and no session item is conjured up
    assert outcome == "listener"
    assert connection_item(dynamodb_client, listener.connection_id) is None
    assert session_item(dynamodb_client, session_id) is None
