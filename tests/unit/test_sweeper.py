"""The scheduled sweeper: silent connections, expired sessions, missed broadcasts, count drift."""

from __future__ import annotations

import time

import pytest

from session_manager.protocol import EndReason, RefreshConnectionRequest, Role
from session_manager.sweeper import BROADCAST_GRACE_MS
from tests.unit.harness import (
    FakeClock,
    SerializedClient,
    build,
    connect,
    connection_item,
    create_session,
    join,
    run_in_threads,
    session_item,
    set_listener_count,
    use_clock,
)


@pytest.fixture
def clock(services):
    clock = FakeClock(time.time())
    use_clock(services, clock)
    return clock


def keep_alive(services, *clients) -> None:
    """Each client heartbeats now (by the services' clock)."""
    for client in clients:
        services.connections.heartbeat(client.caller)


def expire(services, clock, session_id, *clients):
    """Move past the session's expiresAt, the clients having heartbeated just before."""
    clock.now = services.stores.sessions.get(session_id).expires_at - 10
    keep_alive(services, *clients)
    clock.advance(11)


# ---------------------------------------------------------------- silent connections


def test_a_connection_silent_past_the_heartbeat_timeout_is_closed(services, clock, management_api):
    silent = connect(services)
    chatty = connect(services)
    clock.advance(91)
    keep_alive(services, chatty)

    report = services.sweeper.sweep()

    assert management_api.deleted == [silent.connection_id]
    assert report.closed_silent == 1


def test_a_connection_heard_within_the_timeout_is_left_open(services, clock, management_api):
    connect(services)
    clock.advance(89)

    report = services.sweeper.sweep()

    assert management_api.deleted == []
    assert report.closed_silent == 0


def test_a_silent_connection_already_gone_is_cleaned_up_by_the_sweeper(
    services, clock, management_api, dynamodb_client
):
    # GIVEN a listener whose connection vanished without a $disconnect
    speaker, session_id = create_session(services)
    gone = join(services, session_id)
    management_api.gone.add(gone.connection_id)
    clock.advance(91)
    keep_alive(services, speaker)

    # WHEN the sweeper runs
    report = services.sweeper.sweep()

    # THEN it did the disconnect cleanup itself
    assert report.cleaned_gone == 1
    assert connection_item(dynamodb_client, gone.connection_id) is None
    assert session_item(dynamodb_client, session_id)["listenerCount"] == 0


def test_a_silent_speaker_already_gone_ends_its_session(services, clock, management_api):
    speaker, session_id = create_session(services)
    listener = join(services, session_id)
    management_api.gone.add(speaker.connection_id)
    clock.advance(91)
    keep_alive(services, listener)

    services.sweeper.sweep()

    assert services.stores.sessions.get(session_id).end_reason.value == "speakerDisconnected"
    assert management_api.types_to(listener.connection_id) == ["sessionEnded"]


# ---------------------------------------------------------------- expired sessions


def test_an_expired_session_is_ended_and_its_listeners_told(services, clock, management_api, dynamodb_client):
    speaker, session_id = create_session(services)
    listeners = [join(services, session_id) for _ in range(3)]
    expire(services, clock, session_id, speaker, *listeners)

    report = services.sweeper.sweep()

    assert report.ended_expired == 1
    item = session_item(dynamodb_client, session_id)
    assert (item["isActive"], item["endReason"]) == (False, "expired")
    for listener in listeners:
        (ended,) = management_api.messages_to(listener.connection_id)
        assert (ended["type"], ended["sessionId"], ended["reason"]) == ("sessionEnded", session_id, "expired")
        assert "sessionId" not in connection_item(dynamodb_client, listener.connection_id)  # detached, socket may stay


def test_a_live_session_is_left_alone(services, clock, management_api, dynamodb_client):
    speaker, session_id = create_session(services)
    listener = join(services, session_id)
    clock.advance(60)
    keep_alive(services, speaker, listener)

    report = services.sweeper.sweep()

    assert (report.ended_expired, report.orphans_told, report.counts_repaired) == (0, 0, 0)
    assert (report.active_sessions, report.total_listeners) == (1, 1)
    assert session_item(dynamodb_client, session_id)["isActive"] is True
    assert management_api.posts == []
    assert management_api.deleted == []


def test_a_session_refreshed_past_its_first_expiry_is_left_alone(services, clock):
    _, session_id = create_session(services, user_id="speaker-1")
    clock.advance(100 * 60)
    new = connect(services, user_id="speaker-1")
    services.sessions.refresh_connection(new.caller, RefreshConnectionRequest(session_id, Role.SPEAKER, None))
    clock.advance(21 * 60)
    keep_alive(services, new)

    report = services.sweeper.sweep()

    assert report.ended_expired == 0
    assert services.stores.sessions.get(session_id).is_active


def test_running_the_sweeper_twice_ends_an_expired_session_once(services, clock, management_api):
    speaker, session_id = create_session(services)
    listeners = [join(services, session_id) for _ in range(3)]
    expire(services, clock, session_id, speaker, *listeners)

    first = services.sweeper.sweep()
    second = services.sweeper.sweep()

    assert (first.ended_expired, second.ended_expired) == (1, 0)
    for listener in listeners:
        assert management_api.types_to(listener.connection_id) == ["sessionEnded"]


def test_two_sweeps_at_once_end_an_expired_session_once(services, clock, management_api, dynamodb_client):
    speaker, session_id = create_session(services)
    listeners = [join(services, session_id) for _ in range(5)]
    expire(services, clock, session_id, speaker, *listeners)

    reports = run_in_threads(lambda _: services.sweeper.sweep(), [1, 2])

    assert sorted(r.ended_expired for r in reports) == [0, 1]
    assert session_item(dynamodb_client, session_id)["endReason"] == "expired"
    for listener in listeners:
        assert "sessionEnded" in management_api.types_to(listener.connection_id)
        assert "sessionId" not in connection_item(dynamodb_client, listener.connection_id)  # detached, socket may stay


def test_a_sweep_overlapping_another_sweeps_broadcast_tells_each_listener_once(
    services, clock, management_api, monkeypatch, dynamodb_client
):
    # GIVEN an expired session with listeners, and a second sweeper that runs exactly while the
    # first one is broadcasting sessionEnded (after it ended the session, before it deleted
    # the listener items): the overlap two scheduled runs, or a run and a $disconnect, can have
    speaker, session_id = create_session(services)
    listeners = [join(services, session_id) for _ in range(3)]
    expire(services, clock, session_id, speaker, *listeners)
    other = build(SerializedClient(dynamodb_client), management_api)
    use_clock(other, clock)
    carry_out = services.delivery.carry_out
    overlapped = []

    def deliver_after_the_other_sweep(notices):
        if not overlapped:
            overlapped.append(other.sweeper.sweep())
        return carry_out(notices)

    monkeypatch.setattr(services.delivery, "carry_out", deliver_after_the_other_sweep)

    # WHEN the first sweeper runs
    services.sweeper.sweep()

    # THEN each listener was told once
    assert overlapped
    for listener in listeners:
        assert management_api.types_to(listener.connection_id) == ["sessionEnded"]


# ---------------------------------------------------------------- missed broadcasts


def test_a_listener_of_a_session_that_ended_without_telling_it_is_told(
    services, clock, management_api, dynamodb_client
):
    # GIVEN a session marked ended whose listener never got sessionEnded
    _, session_id = create_session(services)
    listener = join(services, session_id)
    services.stores.sessions.end(session_id, EndReason.SPEAKER_ENDED, int(clock.now * 1000))

    # WHEN the sweeper runs after the ending process had its grace period to tell listeners
    clock.advance(BROADCAST_GRACE_MS / 1000 + 1)
    report = services.sweeper.sweep()

    # THEN the listener is told, with the session's reason, and its item removed
    assert report.orphans_told == 1
    (ended,) = management_api.messages_to(listener.connection_id)
    assert (ended["type"], ended["sessionId"], ended["reason"]) == ("sessionEnded", session_id, "speakerEnded")
    assert "sessionId" not in connection_item(dynamodb_client, listener.connection_id)  # detached, socket may stay


def test_a_listener_of_a_vanished_session_is_told_it_expired(services, clock, management_api, dynamodb_client):
    _, session_id = create_session(services)
    listener = join(services, session_id)
    dynamodb_client.delete_item(TableName="SessionsTable", Key={"sessionId": {"S": session_id}})

    services.sweeper.sweep()

    (ended,) = management_api.messages_to(listener.connection_id)
    assert (ended["sessionId"], ended["reason"]) == (session_id, "expired")


# ---------------------------------------------------------------- listener count drift


def test_listener_count_drift_is_repaired_once_the_last_change_has_settled(services, clock, dynamodb_client, logs):
    # GIVEN a session with 2 listeners whose count says 5, last changed a minute ago
    _, session_id = create_session(services)
    join(services, session_id)
    join(services, session_id)
    set_listener_count(dynamodb_client, session_id, 5)
    clock.advance(61)

    # WHEN the sweeper runs
    report = services.sweeper.sweep()

    # THEN the count is the number of listeners, and the repair was logged
    assert report.counts_repaired == 1
    assert session_item(dynamodb_client, session_id)["listenerCount"] == 2
    (repair,) = [line for line in logs.at("WARNING") if line["message"] == "listener count repaired"]
    assert (repair["was"], repair["now"]) == (5, 2)


def test_listener_count_drift_is_left_while_the_last_change_is_recent(services, clock, dynamodb_client):
    _, session_id = create_session(services)
    join(services, session_id)
    set_listener_count(dynamodb_client, session_id, 5)
    clock.advance(30)

    report = services.sweeper.sweep()

    assert report.counts_repaired == 0
    assert session_item(dynamodb_client, session_id)["listenerCount"] == 5


def test_the_sweeper_reports_what_it_found(services, clock):
    _, first = create_session(services, user_id="a")
    _, second = create_session(services, user_id="b")
    for session_id, count in ((first, 2), (second, 3)):
        for _ in range(count):
            join(services, session_id)

    report = services.sweeper.sweep()

    assert (report.active_sessions, report.total_listeners, report.errors) == (2, 5, [])
