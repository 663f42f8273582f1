"""createSession over the wire: the reply's exact shape and every refusal."""

from __future__ import annotations

import time

import pytest

from .client import SESSION_ID_PATTERN, Stack, assert_error, assert_message

pytestmark = pytest.mark.e2e

SESSION_SECONDS = 2 * 3600


async def test_session_created_has_id_tier_connection_and_expiry(stack: Stack):
    # GIVEN an authenticated speaker
    speaker = await stack.connect(stack.new_speaker_token())
    # WHEN it creates a session without a tier
    created = await speaker.request("createSession", sourceLanguage="en")
    # THEN sessionCreated carries a well-formed id, the standard tier and expiresAt in seconds
    assert_message(
        created,
        "sessionCreated",
        sessionId=...,
        sourceLanguage="en",
        qualityTier="standard",
        connectionId=...,
        expiresAt=...,
    )
    assert SESSION_ID_PATTERN.match(created["sessionId"]), created
    assert 100 <= int(created["sessionId"].rsplit("-", 1)[1]) <= 999
    assert isinstance(created["connectionId"], str) and created["connectionId"], created
    assert type(created["expiresAt"]) is int, created
    assert abs(created["expiresAt"] - (time.time() + SESSION_SECONDS)) < 60, "expiresAt is not epoch s of now + 2 h"


async def test_session_created_with_premium_tier(stack: Stack):
    speaker = await stack.connect(stack.new_speaker_token())
    created = await speaker.request("createSession", sourceLanguage="de", qualityTier="premium")
    assert created["type"] == "sessionCreated", created
    assert (created["qualityTier"], created["sourceLanguage"]) == ("premium", "de"), created


async def test_sessions_get_distinct_ids(stack: Stack):
    token = stack.new_speaker_token()
    ids = set()
    for _ in range(3):
        _, created = await stack.speaker_with_session(token)
        ids.add(created["sessionId"])
    assert len(ids) == 3


async def test_create_session_from_anonymous_connection_is_unauthorized(stack: Stack):
    anonymous = await stack.connect()
    assert_error(await anonymous.request("createSession", sourceLanguage="en"), "UNAUTHORIZED", 401)


async def test_second_create_session_on_same_connection_is_invalid_action(stack: Stack):
    speaker, _ = await stack.speaker_with_session()
    assert_error(await speaker.request("createSession", sourceLanguage="en"), "INVALID_ACTION", 400)


@pytest.mark.parametrize("language", ["EN", "eng", "e1", "xx"])
async def test_bad_source_language_is_invalid_language(stack: Stack, language: str):
    # 'xx' is well formed but Translate does not support it: still INVALID_LANGUAGE for a source
    speaker = await stack.connect(stack.demo_token)
    reply = await speaker.request("createSession", sourceLanguage=language)
    assert_error(reply, "INVALID_LANGUAGE", 400, field="sourceLanguage")


async def test_bad_quality_tier_is_invalid_parameters(stack: Stack):
    speaker = await stack.connect(stack.demo_token)
    reply = await speaker.request("createSession", sourceLanguage="en", qualityTier="deluxe")
    assert_error(reply, "INVALID_PARAMETERS", 400, field="qualityTier")


@pytest.mark.parametrize(
    "fields", [{}, {"sourceLanguage": None}, {"sourceLanguage": 5}], ids=["missing", "null", "int"]
)
async def test_missing_or_ill_typed_source_language_is_invalid_parameters(stack: Stack, fields: dict):
    speaker = await stack.connect(stack.demo_token)
    assert_error(await speaker.request("createSession", **fields), "INVALID_PARAMETERS", 400, field="sourceLanguage")


async def test_failed_create_session_may_be_retried_on_same_connection(stack: Stack):
    speaker = await stack.connect(stack.new_speaker_token())
    assert_error(await speaker.request("createSession", sourceLanguage="EN"), "INVALID_LANGUAGE", 400)
    created = await speaker.request("createSession", sourceLanguage="en")
    assert created["type"] == "sessionCreated", created
