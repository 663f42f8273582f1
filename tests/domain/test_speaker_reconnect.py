"""A speaker's Wi-Fi blip does not end the service: the reconnect grace (decision 37)."""

from __future__ import annotations

import threading

import pytest

from session_manager.errors import ForbiddenError, SessionNotFoundError
from session_manager.protocol import JoinSessionRequest, RefreshConnectionRequest, Role
from tests.domain.conftest import build_domain


def test_a_dropped_speaker_leaves_the_session_joinable_and_listeners_are_told_it_is_away(domain):
    speaker, session_id = domain.create()
    listener = domain.join(session_id)

    assert domain.disconnect(speaker) == "speaker-away"

    session = domain.session(session_id)
    assert session.is_active and session.speaker_away_since == int(domain.clock.now * 1000)
    (away,) = domain.notifier.messages_to(listener.connection_id)
    assert away["type"] == "speakerAway"
    assert (away["sessionId"], away["reconnectGraceSeconds"]) == (session_id, 30.0)
    late = domain.connect()
    joined = domain.services.listener.join_session(late, JoinSessionRequest(session_id, "fr")).first
    assert joined["type"] == "sessionJoined" and joined["speakerAway"] is True


def test_the_same_user_reclaims_the_session_and_listeners_hear_the_speaker_is_back(domain):
    speaker, session_id = domain.create()
    listeners = [domain.join(session_id), domain.join(session_id, "fr")]
    domain.disconnect(speaker)
    domain.clock.advance(10)

    new_speaker, decision = domain.reclaim(session_id)

    reply = decision.first
    assert (reply["type"], reply["role"], reply["sessionId"]) == ("connectionRefreshComplete", "speaker", session_id)
    session = domain.session(session_id)
    assert session.speaker_connection_id == new_speaker.connection_id
    assert session.speaker_away_since is None and session.is_active
    for listener in listeners:
        assert domain.notifier.types_to(listener.connection_id) == ["speakerAway", "speakerReturned"]
    # and the reclaimed session is the speaker's in every way
    status = domain.services.speaker.session_status(new_speaker).first
    assert status["listenerCount"] == 2 and "speakerAway" not in status


def test_an_unreclaimed_session_ends_within_one_sweep_after_the_grace(domain):
    speaker, session_id = domain.create()
    listener = domain.join(session_id)
    domain.disconnect(speaker)

    domain.clock.advance(29)
    assert domain.sweep().ended_speaker_gone == 0
    assert domain.session(session_id).is_active

    domain.clock.advance(2)
    assert domain.sweep().ended_speaker_gone == 1

    session = domain.session(session_id)
    assert not session.is_active and session.end_reason.value == "speakerDisconnected"
    ended = domain.notifier.messages_to(listener.connection_id)[-1]
    assert (ended["type"], ended["reason"]) == ("sessionEnded", "speakerDisconnected")
    assert domain.tables.connections[listener.connection_id].session_id is None  # free to join another


def test_a_zero_grace_ends_the_session_when_the_speaker_drops():
    domain = build_domain(speaker_reconnect_grace_seconds=0.0)
    speaker, session_id = domain.create()
    listener = domain.join(session_id)

    assert domain.disconnect(speaker) == "speaker"

    assert not domain.session(session_id).is_active
    assert domain.notifier.types_to(listener.connection_id) == ["sessionEnded"]


def test_end_session_still_ends_at_once(domain):
    speaker, session_id = domain.create()
    listener = domain.join(session_id)

    domain.carry_out(domain.services.speaker.end_session(speaker))

    assert not domain.session(session_id).is_active
    assert domain.notifier.types_to(listener.connection_id) == ["sessionEnded"]


def test_another_user_cannot_reclaim_an_away_session(domain):
    speaker, session_id = domain.create(user_id="speaker-a")
    domain.disconnect(speaker)

    with pytest.raises(ForbiddenError):
        domain.reclaim(session_id, user_id="speaker-b")

    session = domain.session(session_id)
    assert session.speaker_away_since is not None and session.speaker_user_id == "speaker-a"


def test_a_listener_cannot_reclaim_a_session_as_its_speaker(domain):
    speaker, session_id = domain.create()
    domain.disconnect(speaker)
    listener = domain.connect()

    from session_manager.errors import UnauthorizedError

    with pytest.raises(UnauthorizedError):
        domain.services.speaker.refresh_connection(listener, RefreshConnectionRequest(session_id, Role.SPEAKER, None))


def test_a_reclaim_after_the_sweep_ended_the_session_is_not_found(domain):
    speaker, session_id = domain.create()
    domain.disconnect(speaker)
    domain.clock.advance(31)
    domain.sweep()

    with pytest.raises(SessionNotFoundError):
        domain.reclaim(session_id)


def test_a_sweep_that_read_the_session_before_a_reclaim_does_not_end_it(domain):
    # GIVEN a sweep that saw the session away past its grace, and a reclaim landing before its write
    speaker, session_id = domain.create()
    listener = domain.join(session_id)
    domain.disconnect(speaker)
    domain.clock.advance(31)
    seen_by_the_sweep = domain.session(session_id)
    domain.reclaim(session_id)

    # WHEN the sweep's end lands
    notices = domain.services.ending.end_unreclaimed(seen_by_the_sweep)

    # THEN it is refused (it was conditional on the away mark it saw), and the service goes on
    assert notices is None
    assert domain.session(session_id).is_active
    assert "sessionEnded" not in domain.notifier.types_to(listener.connection_id)


def test_two_reclaims_at_once_leave_one_speaker_and_tell_listeners_once(domain):
    speaker, session_id = domain.create()
    listener = domain.join(session_id)
    domain.disconnect(speaker)
    callers = [domain.connect(user_id="speaker-1") for _ in range(2)]
    barrier = threading.Barrier(2)
    results: list = []

    def reclaim(caller):
        barrier.wait()
        request = RefreshConnectionRequest(session_id, Role.SPEAKER, None)
        results.append(domain.carry_out(domain.services.speaker.refresh_connection(caller, request)))

    threads = [threading.Thread(target=reclaim, args=(caller,)) for caller in callers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [decision.first["type"] for decision in results] == ["connectionRefreshComplete"] * 2
    assert domain.notifier.types_to(listener.connection_id) == ["speakerAway", "speakerReturned"]
    session = domain.session(session_id)
    assert session.speaker_connection_id in {caller.connection_id for caller in callers}
    assert session.speaker_away_since is None


def test_the_old_connection_closing_after_a_reclaim_changes_nothing(domain):
    speaker, session_id = domain.create()
    listener = domain.join(session_id)
    domain.disconnect(speaker)
    domain.reclaim(session_id)

    assert domain.disconnect(speaker) == "unknown"  # a duplicate $disconnect of the dropped one

    assert domain.session(session_id).speaker_away_since is None
    assert domain.notifier.types_to(listener.connection_id) == ["speakerAway", "speakerReturned"]


def test_a_reclaimed_speaker_dropping_again_starts_a_new_grace(domain):
    speaker, session_id = domain.create()
    listener = domain.join(session_id)
    domain.disconnect(speaker)
    domain.clock.advance(20)
    second, _ = domain.reclaim(session_id)
    domain.clock.advance(20)

    domain.disconnect(second)
    domain.clock.advance(20)
    domain.sweep()

    assert domain.session(session_id).is_active  # 20 s into the second grace
    assert domain.notifier.types_to(listener.connection_id) == ["speakerAway", "speakerReturned", "speakerAway"]
