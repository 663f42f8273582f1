"""getSessionStatus, endSession and the speaker's disconnect, as listeners and speakers see them."""

from __future__ import annotations

import asyncio

import pytest

from .client import Stack, assert_error, assert_message, status_when, unknown_session_id

pytestmark = pytest.mark.e2e


async def test_status_counts_listeners_per_language(stack: Stack):
    # GIVEN two Spanish listeners and one French listener
    speaker, created = await stack.speaker_with_session()
    session_id = created["sessionId"]
    for language in ("es", "fr", "es"):
        await stack.listener_in(session_id, language)
    # WHEN the speaker asks for the status
    status = await speaker.request("getSessionStatus")
    # THEN it counts them, per language, leaving out languages without listeners
    assert_message(
        status,
        "sessionStatus",
        sessionId=session_id,
        listenerCount=3,
        languageDistribution={"es": 2, "fr": 1},
        sessionDurationSeconds=...,
    )
    assert type(status["sessionDurationSeconds"]) is int and 0 <= status["sessionDurationSeconds"] < 60, status


async def test_status_of_session_without_listeners(stack: Stack):
    speaker, _ = await stack.speaker_with_session()
    status = await speaker.request("getSessionStatus")
    assert (status["type"], status["listenerCount"], status["languageDistribution"]) == ("sessionStatus", 0, {})


async def test_status_follows_a_listener_disconnect(stack: Stack):
    speaker, created = await stack.speaker_with_session()
    staying = await stack.listener_in(created["sessionId"], "es")
    leaving = await stack.listener_in(created["sessionId"], "fr")
    await leaving.close()
    status = await status_when(speaker, lambda status: status["listenerCount"] == 1)
    assert status["languageDistribution"] == {"es": 1}, status
    assert_message(await staying.request("heartbeat"), "heartbeatAck")


async def test_leave_racing_close_frees_the_seat_once(stack: Stack):
    # GIVEN two listeners; one sends leaveSession and closes at once ($disconnect races the leave)
    speaker, created = await stack.speaker_with_session()
    await stack.listener_in(created["sessionId"], "es")
    leaving = await stack.listener_in(created["sessionId"], "es")
    await leaving.send("leaveSession")
    await leaving.close()
    # THEN exactly one seat is freed: the count settles at 1, never 0
    status = await status_when(speaker, lambda status: status["listenerCount"] <= 1)
    await asyncio.sleep(1.0)
    status = await speaker.request("getSessionStatus")
    assert (status["listenerCount"], status["languageDistribution"]) == (1, {"es": 1}), status


@pytest.mark.parametrize("who", ["listener", "anonymous", "speaker-without-session"])
async def test_status_from_anyone_but_the_speaker_is_forbidden(stack: Stack, who: str):
    _, created = await stack.speaker_with_session()
    if who == "listener":
        client = await stack.listener_in(created["sessionId"])
    elif who == "anonymous":
        client = await stack.connect()
    else:
        client = await stack.connect(stack.new_speaker_token())
    assert_error(await client.request("getSessionStatus"), "FORBIDDEN", 403)


async def test_end_session_tells_speaker_and_every_listener(stack: Stack):
    # GIVEN a session with three listeners
    speaker, created = await stack.speaker_with_session()
    session_id = created["sessionId"]
    listeners = [await stack.listener_in(session_id, language) for language in ("es", "fr", "de")]
    # WHEN the speaker ends it
    ended = await speaker.request("endSession")
    # THEN the speaker and every listener get sessionEnded with reason speakerEnded
    assert_message(ended, "sessionEnded", sessionId=session_id, reason="speakerEnded", message=...)
    for listener in listeners:
        assert_message(
            await listener.receive(), "sessionEnded", sessionId=session_id, reason="speakerEnded", message=...
        )
    # AND the session can no longer be joined
    late = await stack.connect()
    reply = await late.request("joinSession", sessionId=session_id, targetLanguage="es")
    assert_error(reply, "SESSION_NOT_FOUND", 404, session_id=session_id)


async def test_end_session_twice_is_forbidden(stack: Stack):
    speaker, _ = await stack.speaker_with_session()
    assert (await speaker.request("endSession"))["type"] == "sessionEnded"
    assert_error(await speaker.request("endSession"), "FORBIDDEN", 403)


@pytest.mark.parametrize("who", ["listener", "anonymous", "speaker-without-session"])
async def test_end_session_from_anyone_but_the_speaker_is_forbidden(stack: Stack, who: str):
    speaker, created = await stack.speaker_with_session()
    listener = await stack.listener_in(created["sessionId"])
    if who == "listener":
        client = listener
    elif who == "anonymous":
        client = await stack.connect()
    else:
        client = await stack.connect(stack.new_speaker_token())
    assert_error(await client.request("endSession"), "FORBIDDEN", 403)
    # AND the session goes on
    await listener.silent_for(0.3)
    assert (await speaker.request("getSessionStatus"))["listenerCount"] == 1


async def test_speaker_disconnect_ends_session_for_every_listener(stack: Stack):
    # GIVEN a session with listeners in two languages
    speaker, created = await stack.speaker_with_session()
    session_id = created["sessionId"]
    listeners = [await stack.listener_in(session_id, language) for language in ("es", "es", "pt")]
    # WHEN the speaker's socket closes
    await speaker.close()
    # THEN every listener gets sessionEnded with reason speakerDisconnected
    for listener in listeners:
        ended = await listener.receive()
        assert_message(ended, "sessionEnded", sessionId=session_id, reason="speakerDisconnected", message=...)
    # AND the session can no longer be joined
    late = await stack.connect()
    reply = await late.request("joinSession", sessionId=session_id, targetLanguage="es")
    assert_error(reply, "SESSION_NOT_FOUND", 404, session_id=session_id)


async def test_join_of_unknown_session_does_not_touch_others(stack: Stack):
    speaker, created = await stack.speaker_with_session()
    await stack.listener_in(created["sessionId"])
    stranger = await stack.connect()
    reply = await stranger.request("joinSession", sessionId=unknown_session_id(), targetLanguage="es")
    assert reply["code"] == "SESSION_NOT_FOUND", reply
    assert (await speaker.request("getSessionStatus"))["listenerCount"] == 1
