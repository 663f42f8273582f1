"""joinSession and leaveSession over the wire: shapes, normalisation, every refusal, retries."""

from __future__ import annotations

import json

import pytest

from .client import Stack, assert_error, assert_message, unknown_session_id

pytestmark = pytest.mark.e2e


async def test_listener_joins_with_session_and_target_language(stack: Stack):
    # GIVEN a session in English
    _, created = await stack.speaker_with_session(source_language="en")
    listener = await stack.connect()
    # WHEN a listener joins it in Spanish
    joined = await listener.request("joinSession", sessionId=created["sessionId"], targetLanguage="es")
    # THEN sessionJoined names the session, both languages and the listener's connection
    assert_message(
        joined,
        "sessionJoined",
        sessionId=created["sessionId"],
        targetLanguage="es",
        sourceLanguage="en",
        connectionId=...,
    )
    assert isinstance(joined["connectionId"], str) and joined["connectionId"]
    assert joined["connectionId"] != created["connectionId"]


async def test_session_id_is_trimmed_and_lower_cased(stack: Stack):
    _, created = await stack.speaker_with_session()
    listener = await stack.connect()
    typed = f"  {created['sessionId'].upper()}  "
    joined = await listener.request("joinSession", sessionId=typed, targetLanguage="fr")
    assert joined["type"] == "sessionJoined", joined
    assert joined["sessionId"] == created["sessionId"]


async def test_unknown_session_is_session_not_found(stack: Stack):
    listener = await stack.connect()
    session_id = unknown_session_id()
    reply = await listener.request("joinSession", sessionId=session_id, targetLanguage="es")
    assert_error(reply, "SESSION_NOT_FOUND", 404, session_id=session_id)


async def test_malformed_session_id_is_invalid_session_id(stack: Stack):
    listener = await stack.connect()
    reply = await listener.request("joinSession", sessionId="hello", targetLanguage="es")
    assert_error(reply, "INVALID_SESSION_ID", 400, session_id="hello", field="sessionId")


async def test_malformed_target_language_is_invalid_language(stack: Stack):
    _, created = await stack.speaker_with_session()
    listener = await stack.connect()
    reply = await listener.request("joinSession", sessionId=created["sessionId"], targetLanguage="EN")
    assert_error(reply, "INVALID_LANGUAGE", 400, session_id=created["sessionId"], field="targetLanguage")


async def test_target_language_without_neural_voice_is_unsupported_language(stack: Stack):
    # GIVEN 'sw': Translate supports Swahili, but Polly has no neural voice for it
    _, created = await stack.speaker_with_session()
    listener = await stack.connect()
    reply = await listener.request("joinSession", sessionId=created["sessionId"], targetLanguage="sw")
    assert_error(reply, "UNSUPPORTED_LANGUAGE", 400, session_id=created["sessionId"], field="targetLanguage")


@pytest.mark.parametrize("missing", ["sessionId", "targetLanguage"])
async def test_missing_join_field_is_invalid_parameters(stack: Stack, missing: str):
    fields = {"sessionId": unknown_session_id(), "targetLanguage": "es"}
    del fields[missing]
    listener = await stack.connect()
    assert_error(await listener.request("joinSession", **fields), "INVALID_PARAMETERS", 400, field=missing)


@pytest.mark.parametrize("field", ["sessionId", "targetLanguage"])
async def test_ill_typed_join_field_is_invalid_parameters(stack: Stack, field: str):
    fields = {"sessionId": unknown_session_id(), "targetLanguage": "es", field: ["es"]}
    listener = await stack.connect()
    assert_error(await listener.request("joinSession", **fields), "INVALID_PARAMETERS", 400, field=field)


async def test_very_long_session_id_is_invalid_session_id(stack: Stack):
    listener = await stack.connect()
    frame = json.dumps({"action": "joinSession", "sessionId": "x-" * 35_000, "targetLanguage": "es"})
    await listener.send_raw([frame[i : i + 16 * 1024] for i in range(0, len(frame), 16 * 1024)])
    assert_error(await listener.receive(), "INVALID_SESSION_ID", 400, field="sessionId")


async def test_second_join_on_same_connection_is_invalid_action(stack: Stack):
    _, created = await stack.speaker_with_session()
    listener = await stack.listener_in(created["sessionId"], "es")
    reply = await listener.request("joinSession", sessionId=created["sessionId"], targetLanguage="fr")
    assert_error(reply, "INVALID_ACTION", 400, session_id=created["sessionId"])


async def test_speaker_connection_cannot_also_join(stack: Stack):
    speaker, created = await stack.speaker_with_session()
    reply = await speaker.request("joinSession", sessionId=created["sessionId"], targetLanguage="es")
    assert_error(reply, "INVALID_ACTION", 400)


async def test_connection_with_a_speaker_token_may_join_as_a_listener(stack: Stack):
    _, created = await stack.speaker_with_session()
    speaker_without_session = await stack.connect(stack.new_speaker_token())
    joined = await speaker_without_session.request("joinSession", sessionId=created["sessionId"], targetLanguage="es")
    assert joined["type"] == "sessionJoined", joined


async def test_failed_join_may_be_retried_on_same_connection(stack: Stack):
    _, created = await stack.speaker_with_session()
    listener = await stack.connect()
    assert_error(
        await listener.request("joinSession", sessionId="hello", targetLanguage="es"), "INVALID_SESSION_ID", 400
    )
    assert_error(
        await listener.request("joinSession", sessionId=created["sessionId"], targetLanguage="sw"),
        "UNSUPPORTED_LANGUAGE",
        400,
    )
    joined = await listener.request("joinSession", sessionId=created["sessionId"], targetLanguage="es")
    assert joined["type"] == "sessionJoined", joined


async def test_listener_leaves_and_joins_again_in_another_language(stack: Stack):
    # GIVEN a listener in Spanish
    speaker, created = await stack.speaker_with_session()
    session_id = created["sessionId"]
    listener = await stack.listener_in(session_id, "es")
    # WHEN it leaves THEN sessionLeft names the session
    assert_message(await listener.request("leaveSession"), "sessionLeft", sessionId=session_id)
    assert (await speaker.request("getSessionStatus"))["listenerCount"] == 0
    # AND it may join again, in French this time
    joined = await listener.request("joinSession", sessionId=session_id, targetLanguage="fr")
    assert joined["type"] == "sessionJoined", joined
    status = await speaker.request("getSessionStatus")
    assert (status["listenerCount"], status["languageDistribution"]) == (1, {"fr": 1}), status


async def test_listener_leaves_and_joins_another_session(stack: Stack):
    _, first = await stack.speaker_with_session()
    _, second = await stack.speaker_with_session()
    listener = await stack.listener_in(first["sessionId"], "es")
    assert (await listener.request("leaveSession"))["type"] == "sessionLeft"
    joined = await listener.request("joinSession", sessionId=second["sessionId"], targetLanguage="es")
    assert (joined["type"], joined["sessionId"]) == ("sessionJoined", second["sessionId"]), joined


async def test_leave_before_joining_is_invalid_action(stack: Stack):
    listener = await stack.connect()
    assert_error(await listener.request("leaveSession"), "INVALID_ACTION", 400)


async def test_second_leave_is_invalid_action(stack: Stack):
    _, created = await stack.speaker_with_session()
    listener = await stack.listener_in(created["sessionId"])
    assert (await listener.request("leaveSession"))["type"] == "sessionLeft"
    assert_error(await listener.request("leaveSession"), "INVALID_ACTION", 400)
