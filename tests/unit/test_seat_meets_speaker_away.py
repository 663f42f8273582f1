"""A listener's seat taken (join or refresh) while the speaker drops or comes back: the notice's
listener query can run before the new seat exists, so the notice reaches only the old connection
(a refresh, which the client closes as soon as it has the answer) or nobody (a join). The answer
must then say how the speaker is (decision 79). Each test runs the speaker's $disconnect or
reclaim in the gap between the seat's read-free checks and its transaction, the worst order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from session_manager.protocol import JoinSessionRequest, RefreshConnectionRequest, Role
from tests.unit.harness import SerializedClient, build, connect, create_session, join


class BeforeNextTransaction:
    """A DynamoDB client that runs `step` once, just before the next TransactWriteItems."""

    def __init__(self, client) -> None:
        self._client = client
        self.step: Callable[[], Any] | None = None

    def __getattr__(self, name: str):
        attribute = getattr(self._client, name)
        if name != "transact_write_items":
            return attribute

        def call(*args, **kwargs):
            step, self.step = self.step, None
            if step is not None:
                step()
            return attribute(*args, **kwargs)

        return call


@pytest.fixture
def hooked(dynamodb_client):
    return BeforeNextTransaction(SerializedClient(dynamodb_client))


@pytest.fixture
def world(hooked, management_api):
    return build(hooked, management_api, speaker_reconnect_grace_seconds=30.0)


def seat(world, kind: str, session_id: str, new) -> dict[str, Any]:
    if kind == "join":
        return world.sessions.join_session(new.caller, JoinSessionRequest(session_id, "es"))
    return world.sessions.refresh_connection(new.caller, RefreshConnectionRequest(session_id, Role.LISTENER, "es"))


@pytest.mark.parametrize("kind", ["join", "refresh"])
def test_a_seat_taken_as_the_speaker_drops_is_told_the_speaker_is_away(world, hooked, management_api, kind):
    # GIVEN a session with a listener, and a new connection about to take a seat
    speaker, session_id = create_session(world, user_id="speaker-1")
    old = join(world, session_id)
    new = connect(world)

    # WHEN the speaker's connection drops just before the seat's transaction
    hooked.step = lambda: world.connections.disconnect(speaker.connection_id)
    answer = seat(world, kind, session_id, new)

    # THEN the speakerAway went out before the seat existed (so not to the new connection)
    told = [connection for connection, body in management_api.posts if body["type"] == "speakerAway"]
    assert told == [old.connection_id]
    # AND the answer says the speaker is away
    assert answer["speakerAway"] is True


@pytest.mark.parametrize("kind", ["join", "refresh"])
def test_a_seat_taken_as_the_speaker_comes_back_is_not_told_the_speaker_is_away(world, hooked, management_api, kind):
    # GIVEN a session whose speaker is away, with a listener that heard it
    speaker, session_id = create_session(world, user_id="speaker-1")
    join(world, session_id)
    world.connections.disconnect(speaker.connection_id)
    new = connect(world)
    back = connect(world, user_id="speaker-1")

    # WHEN the speaker reclaims the session just before the seat's transaction
    hooked.step = lambda: world.sessions.refresh_connection(
        back.caller, RefreshConnectionRequest(session_id, Role.SPEAKER, None)
    )
    answer = seat(world, kind, session_id, new)

    # THEN the speakerReturned went out before the seat existed, and the answer does not say
    # the speaker is away (a refreshing client that had heard speakerAway learns it is over)
    assert new.connection_id not in {c for c, body in management_api.posts if body["type"] == "speakerReturned"}
    assert "speakerAway" not in answer
