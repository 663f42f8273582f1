"""Who may do what, over sockets: a listener cannot act as the speaker, one user cannot take
another user's session, and a refused attempt changes nothing."""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.client import Stack, assert_error, assert_message, now_ms

from .checks import assert_invariants, snapshot
from .sessions import listener_in, speaker_with_session
from .wire import connect_from, new_address

pytestmark = pytest.mark.e2e


async def test_a_listener_cannot_end_query_or_refresh_as_the_speaker(stack: Stack):
    # GIVEN a session with a listener
    speaker, created = await speaker_with_session(stack)
    session_id = created["sessionId"]
    listener, _ = await listener_in(stack, session_id)
    since = created["timestamp"] - 1000
    before = snapshot(stack, {session_id}, since)
    # WHEN the listener tries every speaker action, and a fresh anonymous connection claims the
    # speaker's seat by refresh
    assert_error(await listener.request("endSession"), "FORBIDDEN", 403)
    assert_error(await listener.request("getSessionStatus"), "FORBIDDEN", 403)
    reply = await listener.request("refreshConnection", sessionId=session_id, role="speaker")
    assert_error(reply, "UNAUTHORIZED", 401, session_id=session_id)
    impostor = await connect_from(stack, new_address())
    reply = await impostor.request("refreshConnection", sessionId=session_id, role="speaker")
    assert_error(reply, "UNAUTHORIZED", 401, session_id=session_id)
    # THEN nothing changed: the speaker still holds the session, the listener heard nothing
    await listener.silent_for(0.5)
    after = snapshot(stack, {session_id}, since)
    after["connections"].pop(next(iter(set(after["connections"]) - set(before["connections"]))), None)
    assert after == before
    status = await speaker.request("getSessionStatus")
    assert_message(
        status,
        "sessionStatus",
        sessionId=session_id,
        listenerCount=1,
        languageDistribution={"es": 1},
        sessionDurationSeconds=...,
    )
    assert_invariants(stack)


async def test_a_speaker_token_joined_as_listener_gains_nothing(stack: Stack):
    # GIVEN another signed-in user who joins A's session as a listener
    speaker, created = await speaker_with_session(stack)
    session_id = created["sessionId"]
    other = await connect_from(stack, new_address(), stack.new_speaker_token())
    joined = await other.request("joinSession", sessionId=session_id, targetLanguage="fr")
    assert joined["type"] == "sessionJoined", joined
    # WHEN it tries the speaker's actions THEN it is a listener like any other
    assert_error(await other.request("endSession"), "FORBIDDEN", 403)
    assert_error(await other.request("getSessionStatus"), "FORBIDDEN", 403)
    assert (await speaker.request("getSessionStatus"))["listenerCount"] == 1
    assert_invariants(stack)


async def test_user_b_cannot_take_user_a_session_by_refresh(stack: Stack):
    # GIVEN A's session with a listener
    speaker_a, created = await speaker_with_session(stack)
    session_id = created["sessionId"]
    listener, _ = await listener_in(stack, session_id)
    since = created["timestamp"] - 1000
    before = snapshot(stack, {session_id}, since)
    # WHEN user B, signed in, sends refreshConnection as speaker of A's session
    user_b = await connect_from(stack, new_address(), stack.new_speaker_token())
    reply = await user_b.request("refreshConnection", sessionId=session_id, role="speaker")
    # THEN it is FORBIDDEN, and A's session, speaker and listener are as they were
    assert_error(reply, "FORBIDDEN", 403, session_id=session_id)
    assert_error(await user_b.request("getSessionStatus"), "FORBIDDEN", 403)
    assert_error(await user_b.request("endSession"), "FORBIDDEN", 403)
    after = snapshot(stack, {session_id}, since)
    new_connections = set(after["connections"]) - set(before["connections"])
    assert len(new_connections) == 1, new_connections  # B's own idle connection
    assert "sessionId" not in after["connections"][new_connections.pop()]
    assert after["sessions"] == before["sessions"]
    assert (await speaker_a.request("getSessionStatus"))["listenerCount"] == 1
    await listener.silent_for(0.3)
    assert_invariants(stack)


async def test_user_b_cannot_reclaim_user_a_session_while_a_is_away(stack: Stack):
    # GIVEN A's speaker connection dropped: the session waits SPEAKER_RECONNECT_GRACE_SECONDS
    # (5 on this stack) for A to come back
    token_a = stack.new_speaker_token()
    speaker_a, created = await speaker_with_session(stack, token_a)
    session_id = created["sessionId"]
    listener, _ = await listener_in(stack, session_id)
    await speaker_a.close()
    await asyncio.sleep(0.5)
    # WHEN user B claims the speaker's seat by refresh
    user_b = await connect_from(stack, new_address(), stack.new_speaker_token())
    reply = await user_b.request("refreshConnection", sessionId=session_id, role="speaker")
    # THEN B is FORBIDDEN, and A can still reclaim the session
    assert_error(reply, "FORBIDDEN", 403, session_id=session_id)
    returning_a = await connect_from(stack, new_address(), token_a)
    reclaimed = await returning_a.request("refreshConnection", sessionId=session_id, role="speaker")
    assert reclaimed["type"] == "connectionRefreshComplete", reclaimed
    assert (await returning_a.request("getSessionStatus"))["listenerCount"] == 1
    messages = await listener.drain(0.5)
    assert "sessionEnded" not in [message["type"] for message in messages], messages
    assert_invariants(stack)


async def test_a_listener_cannot_leave_for_someone_else_or_end_by_leaving(stack: Stack):
    speaker, created = await speaker_with_session(stack)
    session_id = created["sessionId"]
    first, _ = await listener_in(stack, session_id)
    second, _ = await listener_in(stack, session_id)
    left = await first.request("leaveSession")
    assert_message(left, "sessionLeft", sessionId=session_id)
    assert_error(await first.request("leaveSession"), "INVALID_ACTION", 400)
    assert (await speaker.request("getSessionStatus"))["listenerCount"] == 1
    await second.silent_for(0.3)
    assert_invariants(stack)


async def test_an_idle_connection_is_refused_every_session_action(stack: Stack):
    since = now_ms()
    idle = await connect_from(stack, new_address())
    assert_error(await idle.request("createSession", sourceLanguage="en"), "UNAUTHORIZED", 401)
    assert_error(await idle.request("endSession"), "FORBIDDEN", 403)
    assert_error(await idle.request("getSessionStatus"), "FORBIDDEN", 403)
    assert_error(await idle.request("leaveSession"), "INVALID_ACTION", 400)
    state = snapshot(stack, set(), since)
    assert len(state["connections"]) == 1 and "sessionId" not in next(iter(state["connections"].values()))
    assert_invariants(stack)
