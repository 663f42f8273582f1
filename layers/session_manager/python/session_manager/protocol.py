"""The wire vocabulary: actions, message types, roles, and validation of client messages.

Sans-I/O: nothing here touches a socket or a table. ``docs/protocol.md`` is the contract.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

from session_manager.errors import (
    InvalidActionError,
    InvalidLanguageError,
    InvalidParametersError,
    InvalidSessionIdError,
    SessionServiceError,
)

SESSION_ID_PATTERN = re.compile(r"[a-z]+-[a-z]+-[1-9][0-9]{2}")
LANGUAGE_PATTERN = re.compile(r"[a-z]{2}")


class Action(str, Enum):
    CREATE_SESSION = "createSession"
    JOIN_SESSION = "joinSession"
    HEARTBEAT = "heartbeat"
    REFRESH_CONNECTION = "refreshConnection"
    GET_SESSION_STATUS = "getSessionStatus"
    END_SESSION = "endSession"
    LEAVE_SESSION = "leaveSession"
    SEND_CAPTION = "sendCaption"


class MessageType(str, Enum):
    SESSION_CREATED = "sessionCreated"
    SESSION_JOINED = "sessionJoined"
    HEARTBEAT_ACK = "heartbeatAck"
    CONNECTION_REFRESH_REQUIRED = "connectionRefreshRequired"
    CONNECTION_WARNING = "connectionWarning"
    CONNECTION_REFRESH_COMPLETE = "connectionRefreshComplete"
    SESSION_STATUS = "sessionStatus"
    SESSION_ENDED = "sessionEnded"
    SESSION_LEFT = "sessionLeft"
    SPEAKER_AWAY = "speakerAway"
    SPEAKER_RETURNED = "speakerReturned"
    CAPTION_ACCEPTED = "captionAccepted"
    CAPTION = "caption"
    ERROR = "error"


class Role(str, Enum):
    SPEAKER = "speaker"
    LISTENER = "listener"


class QualityTier(str, Enum):
    STANDARD = "standard"
    PREMIUM = "premium"


class EndReason(str, Enum):
    SPEAKER_DISCONNECTED = "speakerDisconnected"
    SPEAKER_ENDED = "speakerEnded"
    EXPIRED = "expired"


END_REASON_MESSAGES = {
    EndReason.SPEAKER_DISCONNECTED: "The speaker disconnected and did not come back; the session has ended.",
    EndReason.SPEAKER_ENDED: "The speaker ended the session.",
    EndReason.EXPIRED: "The session reached its time limit and has ended.",
}


def message(message_type: MessageType, timestamp: int, **fields: Any) -> dict[str, Any]:
    """A server -> client message: ``type``, ``timestamp`` (epoch ms, from the caller's clock)
    and the given fields (None dropped)."""
    body = {"type": message_type.value, "timestamp": timestamp}
    body.update({key: value for key, value in fields.items() if value is not None})
    return body


def error_message(error: SessionServiceError, request_id: str, timestamp: int) -> dict[str, Any]:
    return message(
        MessageType.ERROR,
        timestamp,
        code=error.code,
        message=error.message,
        status=error.status,
        requestId=request_id,
        sessionId=error.session_id,
        retryAfter=max(1, int(error.retry_after)) if error.retry_after is not None else None,
        details=error.details,
    )


# ---------------------------------------------------------------- client messages


@dataclass(frozen=True)
class CreateSessionRequest:
    source_language: str
    quality_tier: QualityTier


@dataclass(frozen=True)
class JoinSessionRequest:
    session_id: str
    target_language: str
    last_seq: int | None = None  # the last caption the listener has: resume after it


@dataclass(frozen=True)
class RefreshConnectionRequest:
    session_id: str
    role: Role
    target_language: str | None
    last_seq: int | None = None


MAX_CAPTION_CHARACTERS = 2000
MAX_LINE_ID_CHARACTERS = 64


@dataclass(frozen=True)
class SendCaptionRequest:
    text: str
    final: bool
    line_id: str | None


def parse_body(body: str | None) -> dict[str, Any]:
    """The JSON object of a client frame, or INVALID_ACTION."""
    try:
        parsed = json.loads(body or "")
    except (TypeError, ValueError):
        raise InvalidActionError("Messages must be JSON objects with an 'action' field.") from None
    except RecursionError:
        # Nested past Python's recursion limit: no message of this protocol is deeper than two.
        raise InvalidActionError("Messages must be flat JSON objects; this one is nested too deeply.") from None
    if not isinstance(parsed, dict):
        raise InvalidActionError("Messages must be JSON objects with an 'action' field.")
    return parsed


def _required_string(body: dict[str, Any], field: str, *, session_id: str | None = None) -> str:
    value = body.get(field)
    if value is None:
        raise InvalidParametersError(f"'{field}' is required.", field=field, reason="missing", session_id=session_id)
    if not isinstance(value, str):
        raise InvalidParametersError(
            f"'{field}' must be a string.", field=field, reason="not a string", session_id=session_id
        )
    return value


# The longest id the word lists can make is far shorter; echoing more would let a client make
# the error reply itself exceed API Gateway's 128 KB.
MAX_ECHOED_SESSION_ID = 64


def normalize_session_id(raw: str) -> str:
    """Trimmed and lower-cased (phones capitalise what people type), and cut to a length that
    is safe to echo back in an error."""
    return raw.strip().lower()[:MAX_ECHOED_SESSION_ID]


def validate_session_id(body: dict[str, Any]) -> str:
    raw = _required_string(body, "sessionId")
    session_id = normalize_session_id(raw)
    if len(raw.strip()) > MAX_ECHOED_SESSION_ID or not SESSION_ID_PATTERN.fullmatch(session_id):
        shown = raw.strip()[:MAX_ECHOED_SESSION_ID]
        raise InvalidSessionIdError(
            f"'{shown}' is not a session id; ids look like 'faithful-shepherd-427'.",
            field="sessionId",
            reason="does not match adjective-noun-NNN",
            session_id=session_id,
        )
    return session_id


def validate_language_code(body: dict[str, Any], field: str, *, session_id: str | None = None) -> str:
    value = _required_string(body, field, session_id=session_id)
    if not LANGUAGE_PATTERN.fullmatch(value):
        raise InvalidLanguageError(
            f"'{field}' must be two lowercase letters (ISO 639-1), got '{value[:20]}'.",
            field=field,
            reason="not an ISO 639-1 code",
            session_id=session_id,
        )
    return value


def parse_create_session(body: dict[str, Any]) -> CreateSessionRequest:
    source_language = validate_language_code(body, "sourceLanguage")
    tier = body.get("qualityTier", QualityTier.STANDARD.value)
    try:
        quality_tier = QualityTier(tier)
    except ValueError:
        raise InvalidParametersError(
            "'qualityTier' must be 'standard' or 'premium'.",
            field="qualityTier",
            reason="not one of standard, premium",
        ) from None
    return CreateSessionRequest(source_language, quality_tier)


def parse_join_session(body: dict[str, Any]) -> JoinSessionRequest:
    session_id = validate_session_id(body)
    target_language = validate_language_code(body, "targetLanguage", session_id=session_id)
    return JoinSessionRequest(session_id, target_language, _last_seq(body, session_id))


def _last_seq(body: dict[str, Any], session_id: str) -> int | None:
    value = body.get("lastSeq")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidParametersError(
            "'lastSeq' must be a whole number of at least 0.",
            field="lastSeq",
            reason="not a non-negative integer",
            session_id=session_id,
        )
    return value


def parse_send_caption(body: dict[str, Any]) -> SendCaptionRequest:
    text = _required_string(body, "text").strip()
    if not text or len(text) > MAX_CAPTION_CHARACTERS:
        raise InvalidParametersError(
            f"'text' must hold 1 to {MAX_CAPTION_CHARACTERS} characters after trimming, got {len(text)}.",
            field="text",
            reason=f"length must be 1 to {MAX_CAPTION_CHARACTERS}",
        )
    final = body.get("final", True)
    if not isinstance(final, bool):
        raise InvalidParametersError("'final' must be true or false.", field="final", reason="not a boolean")
    line_id = body.get("lineId")
    if line_id is not None and (
        not isinstance(line_id, str) or not line_id.strip() or len(line_id) > MAX_LINE_ID_CHARACTERS
    ):
        raise InvalidParametersError(
            f"'lineId' must be a string of 1 to {MAX_LINE_ID_CHARACTERS} characters.",
            field="lineId",
            reason=f"not a string of 1 to {MAX_LINE_ID_CHARACTERS} characters",
        )
    return SendCaptionRequest(text, final, line_id.strip() if line_id else None)


def parse_refresh_connection(body: dict[str, Any]) -> RefreshConnectionRequest:
    session_id = validate_session_id(body)
    raw_role = body.get("role")
    try:
        role = Role(raw_role)
    except ValueError:
        raise InvalidParametersError(
            "'role' must be 'speaker' or 'listener'.",
            field="role",
            reason="missing" if raw_role is None else "not one of speaker, listener",
            session_id=session_id,
        ) from None
    target_language = None
    if role is Role.LISTENER:
        target_language = validate_language_code(body, "targetLanguage", session_id=session_id)
    return RefreshConnectionRequest(session_id, role, target_language, _last_seq(body, session_id))
