"""DynamoDB requests per operation, at the data model's minimum (docs/benchmarks.md, "Requests
per operation" says why each is needed). A regression that adds a read fails here."""

from __future__ import annotations

from collections import Counter

import pytest

from session_manager.errors import RateLimitExceededError, SessionFullError, SessionNotFoundError
from session_manager.protocol import JoinSessionRequest, RefreshConnectionRequest, Role
from tests.unit.harness import SerializedClient, build, connect, create_session, join


class CountingClient:
    """Counts the DynamoDB API calls made through it, by operation."""

    def __init__(self, client) -> None:
        self._client = client
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str):
        attribute = getattr(self._client, name)
        if not callable(attribute) or name.startswith("_") or name in ("meta", "exceptions", "get_paginator"):
            return attribute

        def call(*args, **kwargs):
            self.calls[name] += 1
            return attribute(*args, **kwargs)

        return call

    def counted(self, action) -> dict[str, int]:
        self.calls.clear()
        action()
        return dict(self.calls)


@pytest.fixture
def counting(dynamodb_client):
    return CountingClient(SerializedClient(dynamodb_client))


@pytest.fixture
def world(counting, management_api):
    return build(counting, management_api, speaker_reconnect_grace_seconds=30.0)


def test_a_connect_is_its_rate_limit_and_the_connection_item(world, counting):
    assert counting.counted(lambda: connect(world)) == {"update_item": 1, "put_item": 1}


def test_a_creation_is_its_rate_limit_and_one_transaction(world, counting):
    assert counting.counted(lambda: create_session(world)) == {
        "update_item": 2,  # the speaker's $connect limit, then the hourly creation limit
        "put_item": 1,  # the speaker's $connect
        "transact_write_items": 1,
    }


def test_a_join_is_its_rate_limit_one_transaction_and_a_read_after_it(world, counting):
    _, session_id = create_session(world)
    listener = connect(world)

    counted = counting.counted(
        lambda: world.sessions.join_session(listener.caller, JoinSessionRequest(session_id, "es"))
    )

    assert counted == {"update_item": 1, "get_item": 1, "transact_write_items": 1}


def test_a_join_refused_for_a_full_session_reads_nothing_back(world, counting, management_api):
    full = build(counting, management_api, max_listeners_per_session=1)
    _, session_id = create_session(full)
    join(full, session_id)
    late = connect(full)

    def refused():
        with pytest.raises(SessionFullError):
            full.sessions.join_session(late.caller, JoinSessionRequest(session_id, "es"))

    assert counting.counted(refused) == {"update_item": 1, "transact_write_items": 1}


def test_a_join_of_an_unknown_id_is_its_rate_limit_the_refused_transaction_and_the_failed_count(world, counting):
    listener = connect(world)

    def refused():
        with pytest.raises(SessionNotFoundError):
            world.sessions.join_session(listener.caller, JoinSessionRequest("lost-lamb-123", "es"))

    assert counting.counted(refused) == {"update_item": 2, "transact_write_items": 1}


def test_a_refused_rate_limit_is_one_request(world, counting, management_api):
    limited = build(counting, management_api, rate_limit_connection_attempts_per_min=1)
    connect(limited)

    def refused():
        with pytest.raises(RateLimitExceededError):
            connect(limited)

    assert counting.counted(refused) == {"update_item": 1}


def test_a_heartbeat_is_one_write(world, counting):
    listener = connect(world)

    assert counting.counted(lambda: world.connections.heartbeat(listener.caller)) == {"update_item": 1}


def test_a_listener_refresh_is_its_rate_limit_one_transaction_and_a_read_after_it(world, counting):
    _, session_id = create_session(world)
    new = connect(world)
    request = RefreshConnectionRequest(session_id, Role.LISTENER, "es")

    assert counting.counted(lambda: world.sessions.refresh_connection(new.caller, request)) == {
        "update_item": 1,
        "transact_write_items": 1,
        "get_item": 1,  # the speaker's away mark as it is once the seat exists (decision 79)
    }


def test_a_speaker_refresh_is_a_read_for_the_away_mark_and_one_transaction(world, counting):
    _, session_id = create_session(world)
    new = connect(world, user_id="speaker-1")
    request = RefreshConnectionRequest(session_id, Role.SPEAKER, None)

    assert counting.counted(lambda: world.sessions.refresh_connection(new.caller, request)) == {
        "get_item": 1,
        "transact_write_items": 1,
    }


def test_a_status_is_two_reads_and_one_query_page(world, counting):
    speaker, session_id = create_session(world)
    join(world, session_id)

    assert counting.counted(lambda: world.sessions.session_status(speaker.caller)) == {"get_item": 2, "query": 1}


def test_a_leave_is_a_read_and_one_transaction(world, counting):
    _, session_id = create_session(world)
    listener = join(world, session_id)

    assert counting.counted(lambda: world.sessions.leave_session(listener.caller)) == {
        "get_item": 1,
        "transact_write_items": 1,
    }


def test_ending_is_a_read_the_end_the_speakers_release_a_query_and_one_claim_per_listener(world, counting):
    speaker, session_id = create_session(world)
    for _ in range(3):
        join(world, session_id)

    assert counting.counted(lambda: world.sessions.end_session(speaker.caller)) == {
        "get_item": 1,
        "update_item": 2 + 3,
        "query": 1,
    }


def test_an_idle_disconnect_is_one_conditional_delete(world, counting):
    idle = connect(world)

    assert counting.counted(lambda: world.connections.disconnect(idle.connection_id)) == {"delete_item": 1}


def test_a_listener_disconnect_is_the_refused_delete_and_one_transaction(world, counting):
    _, session_id = create_session(world)
    listener = join(world, session_id)

    assert counting.counted(lambda: world.connections.disconnect(listener.connection_id)) == {
        "delete_item": 1,
        "transact_write_items": 1,
    }


def test_a_speaker_drop_is_the_refused_delete_the_away_mark_a_query_and_the_delete(world, counting):
    speaker, session_id = create_session(world)
    join(world, session_id)

    assert counting.counted(lambda: world.connections.disconnect(speaker.connection_id)) == {
        "delete_item": 2,
        "update_item": 1,
        "query": 1,
    }
