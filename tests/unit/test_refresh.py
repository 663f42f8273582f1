"""Connection refresh (requirement 11, tasks.md 7.4): sessions outlive the 2-hour connection cap."""

from __future__ import annotations

import time

import pytest

from session_manager.errors import (
    ForbiddenError,
    RateLimitExceededError,
    SessionFullError,
    SessionNotFoundError,
    UnauthorizedError,
)
from session_manager.protocol import RefreshConnectionRequest, Role
from tests.unit.harness import (
    FakeClock,
    SerializedClient,
    build,
    connect,
    create_session,
    join,
    run_in_threads,
    session_item,
    use_clock,
)


def speaker_refresh(session_id: str) -> RefreshConnectionRequest:
    return RefreshConnectionRequest(session_id, Role.SPEAKER, None)


def listener_refresh(session_id: str, language: str = "es") -> RefreshConnectionRequest:
    return RefreshConnectionRequest(session_id, Role.LISTENER, language)


# ---------------------------------------------------------------- speaker


def test_a_speaker_refresh_moves_the_session_to_the_new_connection(services):
    # GIVEN a session created 100 minutes ago
    clock = FakeClock()
    use_clock(services, clock)
    _, session_id = create_session(services, user_id="speaker-1")
    clock.advance(100 * 60)
    new = connect(services, user_id="speaker-1")

    # WHEN the speaker's new connection refreshes
    reply = services.sessions.refresh_connection(new.caller, speaker_refresh(session_id))

    # THEN the new connection is the speaker's and the session lives 2 h from now
    assert (reply["type"], reply["sessionId"], reply["role"]) == ("connectionRefreshComplete", session_id, "speaker")
    assert "targetLanguage" not in reply
    session = services.stores.sessions.get(session_id)
    assert session.speaker_connection_id == new.connection_id
    assert session.expires_at == int(clock.now) + 7200
    assert services.stores.connections.get(new.connection_id).role is Role.SPEAKER


def test_a_speaker_refresh_by_another_user_is_forbidden(services):
    old, session_id = create_session(services, user_id="speaker-1")
    intruder = connect(services, user_id="speaker-2")

    with pytest.raises(ForbiddenError) as raised:
        services.sessions.refresh_connection(intruder.caller, speaker_refresh(session_id))

    assert raised.value.session_id == session_id
    assert services.stores.sessions.get(session_id).speaker_connection_id == old.connection_id
    assert services.stores.connections.get(intruder.connection_id).session_id is None


def test_a_speaker_refresh_without_a_token_is_unauthorized(services):
    old, session_id = create_session(services, user_id="speaker-1")
    anonymous = connect(services)

    with pytest.raises(UnauthorizedError) as raised:
        services.sessions.refresh_connection(anonymous.caller, speaker_refresh(session_id))

    assert raised.value.session_id == session_id
    assert services.stores.sessions.get(session_id).speaker_connection_id == old.connection_id


def test_a_speaker_refresh_of_an_unknown_session_is_session_not_found(services):
    new = connect(services, user_id="speaker-1")

    with pytest.raises(SessionNotFoundError) as raised:
        services.sessions.refresh_connection(new.caller, speaker_refresh("holy-lamb-123"))

    assert raised.value.session_id == "holy-lamb-123"


def test_a_speaker_refresh_of_an_ended_session_is_session_not_found(services):
    old, session_id = create_session(services, user_id="speaker-1")
    services.sessions.end_session(old.caller)
    new = connect(services, user_id="speaker-1")

    with pytest.raises(SessionNotFoundError):
        services.sessions.refresh_connection(new.caller, speaker_refresh(session_id))


def test_after_a_speaker_refresh_closing_the_old_connection_keeps_the_session(services, management_api):
    old, session_id = create_session(services, user_id="speaker-1")
    listener = join(services, session_id)
    new = connect(services, user_id="speaker-1")
    services.sessions.refresh_connection(new.caller, speaker_refresh(session_id))

    outcome = services.connections.disconnect(old.connection_id)

    assert outcome == "stale-speaker"
    assert services.stores.sessions.get(session_id).is_active
    assert management_api.types_to(listener.connection_id) == []
    assert services.stores.connections.get(old.connection_id) is None


def test_after_a_speaker_refresh_closing_the_new_connection_ends_the_session(services, management_api):
    old, session_id = create_session(services, user_id="speaker-1")
    listener = join(services, session_id)
    new = connect(services, user_id="speaker-1")
    services.sessions.refresh_connection(new.caller, speaker_refresh(session_id))
    services.connections.disconnect(old.connection_id)

    services.connections.disconnect(new.connection_id)

    session = services.stores.sessions.get(session_id)
    assert (session.is_active, session.end_reason.value) == (False, "speakerDisconnected")
    assert management_api.types_to(listener.connection_id) == ["sessionEnded"]


def test_after_a_speaker_refresh_the_old_connection_may_not_end_the_session(services):
    old, session_id = create_session(services, user_id="speaker-1")
    new = connect(services, user_id="speaker-1")
    services.sessions.refresh_connection(new.caller, speaker_refresh(session_id))

    with pytest.raises(ForbiddenError):
        services.sessions.end_session(old.caller)

    assert services.stores.sessions.get(session_id).is_active


# ---------------------------------------------------------------- listener


def test_a_listener_refresh_takes_a_new_seat_for_the_new_connection(services):
    _, session_id = create_session(services)
    join(services, session_id, "fr")
    new = connect(services)

    reply = services.sessions.refresh_connection(new.caller, listener_refresh(session_id, "fr"))

    assert {k: v for k, v in reply.items() if k != "timestamp"} == {
        "type": "connectionRefreshComplete",
        "sessionId": session_id,
        "role": "listener",
        "targetLanguage": "fr",
    }
    assert services.stores.sessions.get(session_id).listener_count == 2
    assert services.stores.connections.get(new.connection_id).target_language == "fr"


def test_a_listener_refresh_may_briefly_exceed_the_capacity(dynamodb_client, management_api):
    # GIVEN a full 2-seat session
    services = build(SerializedClient(dynamodb_client), management_api, max_listeners_per_session=2)
    _, session_id = create_session(services)
    old = join(services, session_id)
    join(services, session_id)
    new = connect(services)

    # WHEN one listener refreshes onto a new connection
    services.sessions.refresh_connection(new.caller, listener_refresh(session_id))

    # THEN it is seated, the count is 3 for now, and the old connection's close brings it back to 2
    assert session_item(dynamodb_client, session_id)["listenerCount"] == 3
    services.connections.disconnect(old.connection_id)
    assert session_item(dynamodb_client, session_id)["listenerCount"] == 2


def test_listener_refreshes_cannot_grow_a_session_past_one_refresh_per_seat(dynamodb_client, management_api):
    # GIVEN a full 1-seat session whose listener already refreshed once
    services = build(SerializedClient(dynamodb_client), management_api, max_listeners_per_session=1)
    _, session_id = create_session(services)
    join(services, session_id)
    services.sessions.refresh_connection(connect(services).caller, listener_refresh(session_id))

    # WHEN yet another connection refreshes into it THEN it is full
    with pytest.raises(SessionFullError):
        services.sessions.refresh_connection(connect(services).caller, listener_refresh(session_id))
    assert session_item(dynamodb_client, session_id)["listenerCount"] == 2


def test_a_listener_refresh_of_an_unknown_session_is_session_not_found(services):
    with pytest.raises(SessionNotFoundError) as raised:
        services.sessions.refresh_connection(connect(services).caller, listener_refresh("holy-lamb-123"))

    assert raised.value.session_id == "holy-lamb-123"


def test_listener_refreshes_guessing_session_ids_are_slowed_down_like_failed_joins(services):
    # GIVEN an IP that guessed RATE_LIMIT_FAILED_JOINS_PER_MIN unknown ids through refreshConnection
    use_clock(services, FakeClock(time.time() // 60 * 60 + 1))
    for number in range(100, 160):
        with pytest.raises(SessionNotFoundError):
            services.sessions.refresh_connection(
                connect(services, source_ip="198.51.100.23").caller, listener_refresh(f"guess-lamb-{number}")
            )

    # WHEN it guesses once more THEN it is rate limited as a failed join would be
    with pytest.raises(RateLimitExceededError):
        services.sessions.refresh_connection(
            connect(services, source_ip="198.51.100.23").caller, listener_refresh("guess-lamb-160")
        )


# ---------------------------------------------------------------- refresh racing the old speaker's close


def test_a_refresh_after_the_speaker_disconnect_ended_the_session_is_session_not_found(services):
    old, session_id = create_session(services, user_id="speaker-1")
    new = connect(services, user_id="speaker-1")
    services.connections.disconnect(old.connection_id)

    with pytest.raises(SessionNotFoundError):
        services.sessions.refresh_connection(new.caller, speaker_refresh(session_id))

    assert not services.stores.sessions.get(session_id).is_active
    assert services.stores.connections.get(new.connection_id).session_id is None


def test_a_refresh_before_the_old_connection_closes_keeps_the_session(services):
    old, session_id = create_session(services, user_id="speaker-1")
    new = connect(services, user_id="speaker-1")
    services.sessions.refresh_connection(new.caller, speaker_refresh(session_id))

    services.connections.disconnect(old.connection_id)

    session = services.stores.sessions.get(session_id)
    assert (session.is_active, session.speaker_connection_id) == (True, new.connection_id)


@pytest.mark.parametrize("round_", range(6))
def test_a_refresh_racing_the_old_connection_close_ends_consistently(services, round_):
    # GIVEN a session with a listener, and the speaker's new connection
    old, session_id = create_session(services, user_id="speaker-1")
    listener = join(services, session_id)
    new = connect(services, user_id="speaker-1")

    # WHEN the refresh and the old connection's $disconnect run at the same time
    refresh, _ = run_in_threads(
        lambda step: step(),
        [
            lambda: services.sessions.refresh_connection(new.caller, speaker_refresh(session_id)),
            lambda: services.connections.disconnect(old.connection_id),
        ],
    )

    # THEN either the session ended and the refresh failed, or it lives on with the new speaker
    session = services.stores.sessions.get(session_id)
    if session.is_active:
        assert refresh["type"] == "connectionRefreshComplete"
        assert session.speaker_connection_id == new.connection_id
        assert services.stores.connections.get(listener.connection_id).session_id == session_id
    else:
        assert isinstance(refresh, SessionNotFoundError)
        assert session.end_reason.value == "speakerDisconnected"
        assert services.stores.connections.get(new.connection_id).session_id is None
        assert services.stores.connections.get(listener.connection_id).session_id is None
