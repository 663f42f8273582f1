"""The wire vocabulary of docs/protocol.md (and the caption messages of issue 9) as enums, and
the one function that turns a received frame into a message dict."""

from __future__ import annotations

import json
import re
from enum import StrEnum
from typing import Any

SESSION_ID_PATTERN = re.compile(r"^[a-z]+-[a-z]+-[1-9][0-9]{2}$")
LANGUAGE_PATTERN = re.compile(r"^[a-z]{2}$")


class Action(StrEnum):
    CREATE_SESSION = "createSession"
    JOIN_SESSION = "joinSession"
    HEARTBEAT = "heartbeat"
    REFRESH_CONNECTION = "refreshConnection"
    GET_SESSION_STATUS = "getSessionStatus"
    END_SESSION = "endSession"
    LEAVE_SESSION = "leaveSession"
    SEND_CAPTION = "sendCaption"


class MessageType(StrEnum):
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
    CAPTION = "caption"
    CAPTION_ACCEPTED = "captionAccepted"
    ERROR = "error"


class Role(StrEnum):
    SPEAKER = "speaker"
    LISTENER = "listener"


class ErrorCode(StrEnum):
    INVALID_PARAMETERS = "INVALID_PARAMETERS"
    INVALID_LANGUAGE = "INVALID_LANGUAGE"
    UNSUPPORTED_LANGUAGE = "UNSUPPORTED_LANGUAGE"
    INVALID_SESSION_ID = "INVALID_SESSION_ID"
    INVALID_ACTION = "INVALID_ACTION"
    UNAUTHORIZED = "UNAUTHORIZED"
    FORBIDDEN = "FORBIDDEN"
    SESSION_NOT_FOUND = "SESSION_NOT_FOUND"
    RATE_LIMIT_EXCEEDED = "RATE_LIMIT_EXCEEDED"
    SESSION_FULL = "SESSION_FULL"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    INTERNAL_ERROR = "INTERNAL_ERROR"


class EndReason(StrEnum):
    SPEAKER_DISCONNECTED = "speakerDisconnected"
    SPEAKER_ENDED = "speakerEnded"
    EXPIRED = "expired"


# Worth trying again, unchanged, after a pause (docs/protocol.md "Retry guidance"). SESSION_FULL is
# here for a reconnecting listener only: its old seat is released when the server sees the drop.
RETRYABLE_CODES = frozenset(
    {ErrorCode.RATE_LIMIT_EXCEEDED, ErrorCode.SERVICE_UNAVAILABLE, ErrorCode.INTERNAL_ERROR, ErrorCode.SESSION_FULL}
)


def parse_frame(frame: str | bytes) -> dict[str, Any]:
    """A server frame as a message with a `type`. API Gateway's own crash reply
    (`{"message": "Internal server error", ...}`, no `type`) and anything unreadable become an
    INTERNAL_ERROR error message, as docs/protocol.md asks clients to treat them."""
    try:
        body = json.loads(frame)
    except (ValueError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("type"), str):
        return body
    message = body.get("message") if isinstance(body, dict) else None
    return {
        "type": MessageType.ERROR.value,
        "code": ErrorCode.INTERNAL_ERROR.value,
        "status": 500,
        "message": message if isinstance(message, str) else "The server sent a frame this client cannot read.",
    }


def normalise_session_id(typed: str) -> str:
    """What a person typed, forgiving case, spaces and a missing hyphen before the number
    (`Faithful Shepherd 427`, `faithful-shepherd427`). The result may still not be an id."""
    words = re.sub(r"[\s_]+", "-", typed.strip().lower())
    return re.sub(r"(?<=[a-z])(?=[1-9][0-9]{2}$)", "-", words)
