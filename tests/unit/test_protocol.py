"""The wire vocabulary (protocol.md): server messages and the parsing of client messages."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from session_manager.errors import (
    InvalidActionError,
    InvalidLanguageError,
    InvalidParametersError,
    InvalidSessionIdError,
    RateLimitExceededError,
    SessionNotFoundError,
)
from session_manager.protocol import (
    MessageType,
    QualityTier,
    Role,
    error_message,
    message,
    parse_body,
    parse_create_session,
    parse_join_session,
    parse_refresh_connection,
)


def test_a_message_carries_its_type_and_the_millisecond_timestamp_of_the_callers_clock():
    body = message(MessageType.HEARTBEAT_ACK, 1_796_000_000_123)

    assert body["type"] == "heartbeatAck"
    assert body["timestamp"] == 1_796_000_000_123


def test_a_message_keeps_its_fields_and_drops_none():
    body = message(MessageType.SESSION_LEFT, 1, sessionId="holy-lamb-123", targetLanguage=None)

    assert set(body) == {"type", "timestamp", "sessionId"}
    assert body["sessionId"] == "holy-lamb-123"


def test_an_error_message_has_code_message_status_and_request_id():
    body = error_message(SessionNotFoundError(session_id="holy-lamb-123"), "req-1", 1)

    assert body["type"] == "error"
    assert body["code"] == "SESSION_NOT_FOUND"
    assert body["status"] == 404
    assert body["requestId"] == "req-1"
    assert body["sessionId"] == "holy-lamb-123"
    assert body["message"]
    assert "retryAfter" not in body
    assert "details" not in body


def test_a_field_error_message_has_details_naming_the_field():
    error = InvalidParametersError("'sourceLanguage' is required.", field="sourceLanguage", reason="missing")

    body = error_message(error, "req-1", 1)

    assert body["details"] == {"field": "sourceLanguage", "reason": "missing"}
    assert "sessionId" not in body


@pytest.mark.parametrize(("retry_after", "expected"), [(0, 1), (1, 1), (42, 42)])
def test_a_rate_limit_error_message_has_a_retry_after_of_at_least_one_second(retry_after, expected):
    body = error_message(RateLimitExceededError(retry_after=retry_after), "req-1", 1)

    assert body["status"] == 429
    assert body["retryAfter"] == expected


@pytest.mark.parametrize("frame", [None, "", "not json", "[1, 2]", '"joinSession"', "42", "{"])
def test_a_frame_that_is_not_a_json_object_is_an_invalid_action(frame):
    with pytest.raises(InvalidActionError):
        parse_body(frame)


def test_a_json_object_frame_is_parsed():
    assert parse_body('{"action": "heartbeat"}') == {"action": "heartbeat"}


def test_create_session_defaults_to_the_standard_tier():
    request = parse_create_session({"sourceLanguage": "en"})

    assert (request.source_language, request.quality_tier) == ("en", QualityTier.STANDARD)


def test_create_session_accepts_the_premium_tier():
    assert parse_create_session({"sourceLanguage": "de", "qualityTier": "premium"}).quality_tier is QualityTier.PREMIUM


def test_create_session_without_a_source_language_names_the_field():
    with pytest.raises(InvalidParametersError) as raised:
        parse_create_session({})

    assert raised.value.details == {"field": "sourceLanguage", "reason": "missing"}


@pytest.mark.parametrize("tier", ["gold", "", 1, None, "Premium"])
def test_create_session_with_an_unknown_tier_names_the_field(tier):
    with pytest.raises(InvalidParametersError) as raised:
        parse_create_session({"sourceLanguage": "en", "qualityTier": tier})

    assert raised.value.field == "qualityTier"


@pytest.mark.parametrize("language", ["EN", "eng", "e1", "e", "", "en-US", " en"])
def test_a_language_that_is_not_two_lowercase_letters_is_an_invalid_language(language):
    with pytest.raises(InvalidLanguageError) as raised:
        parse_create_session({"sourceLanguage": language})

    assert raised.value.field == "sourceLanguage"


def test_a_language_that_is_not_a_string_is_an_invalid_parameter():
    with pytest.raises(InvalidParametersError) as raised:
        parse_join_session({"sessionId": "holy-lamb-123", "targetLanguage": 7})

    assert raised.value.field == "targetLanguage"
    assert raised.value.session_id == "holy-lamb-123"


@given(
    adjective=st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=12),
    noun=st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=12),
    number=st.integers(min_value=100, max_value=999),
    upper=st.booleans(),
    padding=st.sampled_from(["", " ", "  ", "\t", "\n"]),
)
def test_a_session_id_is_trimmed_and_lower_cased(adjective, noun, number, upper, padding):
    typed = f"{adjective}-{noun}-{number}"
    typed = typed.upper() if upper else typed.capitalize()

    request = parse_join_session({"sessionId": f"{padding}{typed}{padding}", "targetLanguage": "es"})

    assert request.session_id == f"{adjective}-{noun}-{number}"


@pytest.mark.parametrize(
    "session_id",
    ["holy-lamb-099", "holy-lamb-1000", "holy-lamb-12", "holylamb-123", "holy-lamb", "holy-l4mb-123", "-lamb-123", ""],
)
def test_a_session_id_off_the_pattern_is_an_invalid_session_id(session_id):
    with pytest.raises(InvalidSessionIdError) as raised:
        parse_join_session({"sessionId": session_id, "targetLanguage": "es"})

    assert raised.value.field == "sessionId"


def test_a_join_without_a_session_id_names_the_field():
    with pytest.raises(InvalidParametersError) as raised:
        parse_join_session({"targetLanguage": "es"})

    assert raised.value.field == "sessionId"


def test_a_join_language_error_carries_the_session_id():
    with pytest.raises(InvalidLanguageError) as raised:
        parse_join_session({"sessionId": " Holy-Lamb-123 ", "targetLanguage": "ES"})

    assert raised.value.session_id == "holy-lamb-123"
    assert raised.value.field == "targetLanguage"


def test_a_listener_refresh_needs_a_target_language():
    with pytest.raises(InvalidParametersError) as raised:
        parse_refresh_connection({"sessionId": "holy-lamb-123", "role": "listener"})

    assert raised.value.field == "targetLanguage"
    assert raised.value.session_id == "holy-lamb-123"


def test_a_speaker_refresh_ignores_the_target_language():
    request = parse_refresh_connection({"sessionId": "holy-lamb-123", "role": "speaker", "targetLanguage": "es"})

    assert (request.session_id, request.role, request.target_language) == ("holy-lamb-123", Role.SPEAKER, None)


@pytest.mark.parametrize(("role", "reason"), [(None, "missing"), ("admin", "not one of speaker, listener")])
def test_a_refresh_with_a_bad_role_names_the_field(role, reason):
    body = {"sessionId": "holy-lamb-123"} | ({"role": role} if role else {})

    with pytest.raises(InvalidParametersError) as raised:
        parse_refresh_connection(body)

    assert raised.value.details == {"field": "role", "reason": reason}


@pytest.mark.parametrize("language", ["es\n", "es ", "\nes"])
def test_a_language_code_with_whitespace_is_an_invalid_language(language):
    with pytest.raises(InvalidLanguageError):
        parse_join_session({"sessionId": "faithful-shepherd-427", "targetLanguage": language})


def test_a_session_id_with_a_trailing_newline_is_trimmed():
    assert parse_join_session({"sessionId": "faithful-shepherd-427\n", "targetLanguage": "es"}).session_id == (
        "faithful-shepherd-427"
    )  # trimmed by normalisation, like any surrounding whitespace


def test_a_frame_nested_past_the_recursion_limit_is_an_invalid_action():
    with pytest.raises(InvalidActionError):
        parse_body("[" * 100_000 + "]" * 100_000)
