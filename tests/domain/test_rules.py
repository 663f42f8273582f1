"""Each rule of session_manager/rules.py paired with the condition the store enforces it with:
for generated states, the DynamoDB adapter (on moto) accepts the write exactly when the rules say
it may happen, and the domain explains a refusal the way the rules do."""

from __future__ import annotations

import itertools
import time
from dataclasses import replace

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from session_manager import rules
from session_manager.models import Connection, Session
from session_manager.outcomes import Refusal, Written
from session_manager.protocol import EndReason, Role
from session_manager.store.connections import DynamoDBConnectionStore
from session_manager.store.dynamodb import DynamoDB, to_attribute_values
from session_manager.store.sessions import DynamoDBSessionStore
from tests.conftest import create_tables

NOW_MS = int(time.time() * 1000)
_ids = itertools.count(1)
EXAMPLES = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def adapters():
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_tables(client)
        db = DynamoDB(client)
        yield (
            client,
            DynamoDBSessionStore("SessionsTable", "ConnectionsTable", db),
            DynamoDBConnectionStore("ConnectionsTable", db),
        )


sessions_states = st.fixed_dictionaries(
    {
        "is_active": st.booleans(),
        "expires_in": st.integers(min_value=-5, max_value=5),
        "listener_count": st.integers(min_value=0, max_value=4),
        "speaker_user_id": st.sampled_from(["u1", "u2"]),
        "speaker_away_since": st.sampled_from([None, NOW_MS - 1000]),
    }
)
connection_states = st.sampled_from(["missing", "free", "listener", "speaker"])


def _put_session(client, state) -> Session:
    session = Session(
        session_id=f"rule-lamb-{next(_ids)}",
        speaker_connection_id="speaker-conn=",
        speaker_user_id=state["speaker_user_id"],
        source_language="en",
        quality_tier="standard",
        created_at=NOW_MS,
        expires_at=NOW_MS // 1000 + state["expires_in"],
        is_active=state["is_active"],
        listener_count=state["listener_count"],
        speaker_away_since=state["speaker_away_since"],
    )
    item = session.to_item()
    if session.speaker_away_since is not None:
        item["speakerAwaySince"] = session.speaker_away_since
    client.put_item(TableName="SessionsTable", Item=to_attribute_values(item))
    return session


def _put_connection(client, state: str) -> tuple[str, Connection | None]:
    connection_id = f"rule-conn-{next(_ids)}="
    if state == "missing":
        return connection_id, None
    connection = Connection(connection_id, NOW_MS, NOW_MS, NOW_MS // 1000 + 3600)
    if state != "free":
        role = Role.LISTENER if state == "listener" else Role.SPEAKER
        connection = replace(connection, session_id="elsewhere-lamb-100", role=role)
    item = {"connectionId": connection_id, "connectedAt": NOW_MS, "lastSeenAt": NOW_MS, "ttl": connection.ttl}
    if connection.session_id:
        item.update(sessionId=connection.session_id, role=connection.role.value)
    client.put_item(TableName="ConnectionsTable", Item=to_attribute_values(item))
    return connection_id, connection


@EXAMPLES
@given(state=sessions_states, connection_state=connection_states, capacity=st.integers(min_value=1, max_value=4))
def test_a_seat_is_taken_exactly_when_the_session_is_live_has_room_and_the_connection_is_free(
    adapters, state, connection_state, capacity
):
    client, sessions, _ = adapters
    session = _put_session(client, state)
    connection_id, connection = _put_connection(client, connection_state)

    result = sessions.add_listener(session.session_id, connection_id, "es", NOW_MS, capacity)

    allowed = (
        rules.is_live(session, NOW_MS / 1000)
        and rules.has_seat_for_one_more(session, capacity)
        and rules.is_free(connection)
    )
    assert isinstance(result, Written) is allowed
    if isinstance(result, Refusal):
        assert result.connection_failed is (not rules.is_free(connection))
        assert result.session_failed is not (
            rules.is_live(session, NOW_MS / 1000) and rules.has_seat_for_one_more(session, capacity)
        )


@EXAMPLES
@given(state=sessions_states, connection_state=connection_states, user=st.sampled_from(["u1", "u2"]))
def test_a_session_moves_exactly_when_it_is_live_the_user_is_its_speaker_and_the_connection_is_free(
    adapters, state, connection_state, user
):
    client, sessions, _ = adapters
    session = _put_session(client, state)
    connection_id, connection = _put_connection(client, connection_state)

    result = sessions.move_speaker(
        session.session_id, user, connection_id, NOW_MS, NOW_MS // 1000 + 60, away_since=session.speaker_away_since
    )

    allowed = rules.is_live(session, NOW_MS / 1000) and rules.may_take_over(session, user) and rules.is_free(connection)
    assert isinstance(result, Written) is allowed


@EXAMPLES
@given(state=sessions_states, by_the_speaker=st.booleans())
def test_a_session_is_ended_by_a_connection_exactly_when_it_is_active_and_that_connection_is_its_speaker(
    adapters, state, by_the_speaker
):
    client, sessions, _ = adapters
    session = _put_session(client, state)
    caller = session.speaker_connection_id if by_the_speaker else "someone-else="

    result = sessions.end(session.session_id, EndReason.SPEAKER_ENDED, NOW_MS, speaker_connection_id=caller)

    assert isinstance(result, Written) is (session.is_active and rules.is_current_speaker(session, caller))


@EXAMPLES
@given(state=sessions_states, waited=st.integers(min_value=0, max_value=60), grace=st.sampled_from([0.0, 30.0]))
def test_an_away_session_ends_unreclaimed_exactly_when_its_grace_is_over_and_the_mark_is_unchanged(
    adapters, state, waited, grace
):
    client, sessions, _ = adapters
    session = _put_session(client, state)
    now = NOW_MS + waited * 1000

    over = rules.grace_is_over(session, now, grace)
    if over:
        result = sessions.end(
            session.session_id, EndReason.SPEAKER_DISCONNECTED, now, away_since=session.speaker_away_since
        )
        assert isinstance(result, Written) is session.is_active
    assert over is (session.speaker_away_since is not None and session.speaker_away_since + grace * 1000 <= now)


@pytest.mark.parametrize("state", ["missing", "free", "listener", "speaker"])
def test_one_role_per_connection(state):
    connection = None if state == "missing" else Connection("c=", 0, 0, 0)
    if state in ("listener", "speaker"):
        connection = replace(connection, session_id="s", role=Role(state))

    assert rules.is_free(connection) is (state == "free")
