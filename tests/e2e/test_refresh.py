"""refreshConnection: a speaker or listener moves onto a new connection, then closes the old one."""

from __future__ import annotations

import asyncio

import pytest

from .client import Stack, assert_error, assert_message, status_when, unknown_session_id

pytestmark = pytest.mark.e2e


async def test_speaker_refresh_then_old_close_keeps_session_alive(stack: Stack):
    # GIVEN a session with a listener
    token = stack.new_speaker_token()
    old, created = await stack.speaker_with_session(token)
    session_id = created["sessionId"]
    listener = await stack.listener_in(session_id, "es")
    # WHEN the speaker opens a new connection with the same token and refreshes onto it
    new = await stack.connect(token)
    refreshed = await new.request("refreshConnection", sessionId=session_id, role="speaker")
    assert (refreshed["type"], refreshed["sessionId"], refreshed["role"]) == (
        "connectionRefreshComplete",
        session_id,
        "speaker",
    ), refreshed
    # AND closes the old connection
    await old.close()
    # THEN the listener hears nothing, the session stays joinable and the new connection speaks for it
    await listener.silent_for(1.5)
    await stack.listener_in(session_id, "fr")
    status = await new.request("getSessionStatus")
    assert (status["listenerCount"], status["languageDistribution"]) == (2, {"es": 1, "fr": 1}), status


async def test_speaker_refresh_complete_names_the_session_role_and_new_expiry(stack: Stack):
    token = stack.new_speaker_token()
    _, created = await stack.speaker_with_session(token)
    new = await stack.connect(token)
    refreshed = await new.request("refreshConnection", sessionId=created["sessionId"], role="speaker")
    # expiresAt is this project's documented addition (docs/protocol.md, decision 27)
    assert_message(
        refreshed, "connectionRefreshComplete", sessionId=created["sessionId"], role="speaker", expiresAt=...
    )
    assert refreshed["expiresAt"] >= created["expiresAt"]


async def refreshed_speaker_with_a_listener(stack: Stack):
    """A session with one listener whose speaker refreshed onto a new connection:
    (old connection, new connection, session id, listener)."""
    token = stack.new_speaker_token()
    old, created = await stack.speaker_with_session(token)
    session_id = created["sessionId"]
    listener = await stack.listener_in(session_id)
    new = await stack.connect(token)
    refreshed = await new.request("refreshConnection", sessionId=session_id, role="speaker")
    assert refreshed["type"] == "connectionRefreshComplete", refreshed
    return old, new, session_id, listener


async def test_closing_the_refreshed_speaker_connection_ends_the_session(stack: Stack):
    old, new, session_id, listener = await refreshed_speaker_with_a_listener(stack)
    await old.close()
    # WHEN the current (new) speaker connection closes
    await new.close()
    # THEN the session ends for its listeners
    ended = await listener.receive()
    assert_message(ended, "sessionEnded", sessionId=session_id, reason="speakerDisconnected", message=...)


async def test_old_speaker_connection_may_no_longer_act_for_the_session(stack: Stack):
    old, new, _, listener = await refreshed_speaker_with_a_listener(stack)
    # WHEN the old connection asks for the status or tries to end the session THEN it is forbidden
    assert_error(await old.request("getSessionStatus"), "FORBIDDEN", 403)
    assert_error(await old.request("endSession"), "FORBIDDEN", 403)
    await listener.silent_for(0.5)
    # AND the new one may end it
    assert (await new.request("endSession"))["reason"] == "speakerEnded"
    assert (await listener.receive())["reason"] == "speakerEnded"


async def test_speaker_refresh_by_another_user_is_forbidden(stack: Stack):
    _, created = await stack.speaker_with_session(stack.new_speaker_token())
    intruder = await stack.connect(stack.token_for("other@example.org"))
    reply = await intruder.request("refreshConnection", sessionId=created["sessionId"], role="speaker")
    assert_error(reply, "FORBIDDEN", 403, session_id=created["sessionId"])


async def test_speaker_refresh_from_anonymous_connection_is_unauthorized(stack: Stack):
    _, created = await stack.speaker_with_session()
    anonymous = await stack.connect()
    reply = await anonymous.request("refreshConnection", sessionId=created["sessionId"], role="speaker")
    assert_error(reply, "UNAUTHORIZED", 401, session_id=created["sessionId"])


@pytest.mark.parametrize("role", ["speaker", "listener"])
async def test_refresh_for_the_seat_a_connection_already_holds_is_told_it_holds_it(stack: Stack, role: str):
    # GIVEN the old connection itself (it still holds its role): what a repeated request looks like
    speaker, created = await stack.speaker_with_session()
    session_id = created["sessionId"]
    if role == "speaker":
        client, fields = speaker, {}
    else:
        client, fields = await stack.listener_in(session_id, "es"), {"targetLanguage": "es"}
    # WHEN it sends refreshConnection for that very seat
    reply = await client.request("refreshConnection", sessionId=session_id, role=role, **fields)
    # THEN it is told the truth (it holds it), and no second seat was counted
    assert (reply["type"], reply["sessionId"], reply["role"]) == ("connectionRefreshComplete", session_id, role)
    status = await speaker.request("getSessionStatus")
    assert status["listenerCount"] == (1 if role == "listener" else 0)


@pytest.mark.parametrize("role", ["speaker", "listener"])
async def test_refresh_on_a_connection_that_holds_another_seat_is_invalid_action(stack: Stack, role: str):
    # GIVEN a connection that holds a role in one session, and a second session of the same speaker
    token = stack.new_speaker_token()
    first_speaker, first = await stack.speaker_with_session(token)
    _, second = await stack.speaker_with_session(token)
    if role == "speaker":
        client, fields = first_speaker, {}
    else:
        client, fields = await stack.listener_in(first["sessionId"], "es"), {"targetLanguage": "es"}
    # WHEN it sends refreshConnection for the other session
    reply = await client.request("refreshConnection", sessionId=second["sessionId"], role=role, **fields)
    # THEN that is not an action it may take now
    assert_error(reply, "INVALID_ACTION", 400, session_id=second["sessionId"])


async def test_refresh_of_unknown_session_is_session_not_found(stack: Stack):
    session_id = unknown_session_id()
    speaker = await stack.connect(stack.demo_token)
    reply = await speaker.request("refreshConnection", sessionId=session_id, role="speaker")
    assert_error(reply, "SESSION_NOT_FOUND", 404, session_id=session_id)
    listener = await stack.connect()
    reply = await listener.request("refreshConnection", sessionId=session_id, role="listener", targetLanguage="es")
    assert_error(reply, "SESSION_NOT_FOUND", 404, session_id=session_id)


@pytest.mark.parametrize(
    ("fields", "code", "field"),
    [
        ({"role": "organist"}, "INVALID_PARAMETERS", "role"),
        ({}, "INVALID_PARAMETERS", "role"),
        ({"role": "listener"}, "INVALID_PARAMETERS", "targetLanguage"),
        ({"role": "listener", "targetLanguage": "ES"}, "INVALID_LANGUAGE", "targetLanguage"),
        ({"role": "listener", "targetLanguage": "sw"}, "UNSUPPORTED_LANGUAGE", "targetLanguage"),
    ],
    ids=["unknown-role", "no-role", "listener-without-language", "malformed-language", "unsupported-language"],
)
async def test_refresh_with_bad_fields_is_refused_naming_the_field(stack: Stack, fields: dict, code: str, field: str):
    _, created = await stack.speaker_with_session()
    client = await stack.connect()
    reply = await client.request("refreshConnection", sessionId=created["sessionId"], **fields)
    assert_error(reply, code, 400, session_id=created["sessionId"], field=field)


async def test_listener_refresh_then_old_close_keeps_one_seat(stack: Stack):
    # GIVEN a Spanish listener
    speaker, created = await stack.speaker_with_session()
    session_id = created["sessionId"]
    old = await stack.listener_in(session_id, "es")
    # WHEN it refreshes onto a new connection
    new = await stack.connect()
    refreshed = await new.request("refreshConnection", sessionId=session_id, role="listener", targetLanguage="es")
    assert_message(refreshed, "connectionRefreshComplete", sessionId=session_id, role="listener", targetLanguage="es")
    # AND closes the old one
    await old.close()
    # THEN the count returns to one listener
    status = await status_when(speaker, lambda status: status["listenerCount"] == 1)
    assert status["languageDistribution"] == {"es": 1}, status
    # AND the new connection is the one that hears the session end
    assert (await speaker.request("endSession"))["type"] == "sessionEnded"
    assert_message(await new.receive(), "sessionEnded", sessionId=session_id, reason="speakerEnded", message=...)


async def test_listener_refresh_into_ended_session_is_session_not_found(stack: Stack):
    speaker, created = await stack.speaker_with_session()
    session_id = created["sessionId"]
    await speaker.request("endSession")
    client = await stack.connect()
    reply = await client.request("refreshConnection", sessionId=session_id, role="listener", targetLanguage="es")
    assert_error(reply, "SESSION_NOT_FOUND", 404, session_id=session_id)


async def test_speaker_refresh_into_ended_session_is_session_not_found(stack: Stack):
    token = stack.new_speaker_token()
    speaker, created = await stack.speaker_with_session(token)
    session_id = created["sessionId"]
    await speaker.request("endSession")
    new = await stack.connect(token)
    reply = await new.request("refreshConnection", sessionId=session_id, role="speaker")
    assert_error(reply, "SESSION_NOT_FOUND", 404, session_id=session_id)


@pytest.mark.parametrize("attempt", range(3))
async def test_speaker_refresh_racing_old_close_never_leaves_half_a_session(stack: Stack, attempt: int):
    # GIVEN a session with a listener, and the speaker's new connection
    token = stack.new_speaker_token()
    old, created = await stack.speaker_with_session(token)
    session_id = created["sessionId"]
    listener = await stack.listener_in(session_id)
    new = await stack.connect(token)
    # WHEN the refresh and the old connection's close cross
    await asyncio.sleep(0.02 * attempt)  # vary the interleaving a little between runs
    _, reply = await asyncio.gather(old.close(), new.request("refreshConnection", sessionId=session_id, role="speaker"))
    late = await stack.connect()
    if reply["type"] == "connectionRefreshComplete":
        # THEN either the session lives on with the new speaker and nobody was told it ended...
        await listener.silent_for(1.0)
        assert (await late.request("joinSession", sessionId=session_id, targetLanguage="es"))["type"] == "sessionJoined"
        assert (await new.request("getSessionStatus"))["listenerCount"] == 2
    else:
        # ...or it ended: the refresh was refused, listeners were told, and nobody can join
        assert_error(reply, "SESSION_NOT_FOUND", 404, session_id=session_id)
        assert (await listener.receive())["reason"] == "speakerDisconnected"
        reply = await late.request("joinSession", sessionId=session_id, targetLanguage="es")
        assert_error(reply, "SESSION_NOT_FOUND", 404, session_id=session_id)
