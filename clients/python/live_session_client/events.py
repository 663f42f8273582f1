"""What a client reports while it runs: state changes, captions, and notices, each with the
sentence to show a person."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from live_session_client.captions import Caption


class ClientState(StrEnum):
    IDLE = "idle"
    CONNECTING = "connecting"
    JOINING = "joining"
    CREATING = "creating"
    LIVE = "live"
    RECONNECTING = "reconnecting"
    # Terminal: the client does nothing more.
    LEFT = "left"
    ENDED = "ended"
    GAVE_UP = "gaveUp"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({ClientState.LEFT, ClientState.ENDED, ClientState.GAVE_UP, ClientState.FAILED})


class NoticeKind(StrEnum):
    REFRESHING = "refreshing"
    REFRESHED = "refreshed"
    REFRESH_RETRY = "refreshRetry"
    CONNECTION_WARNING = "connectionWarning"
    SPEAKER_AWAY = "speakerAway"
    SPEAKER_RETURNED = "speakerReturned"
    ERROR = "error"


@dataclass(frozen=True)
class StateChanged:
    state: ClientState
    sentence: str
    # sessionEnded's reason, or the error code that stopped the client.
    reason: str | None = None


@dataclass(frozen=True)
class CaptionReceived:
    caption: Caption

    @property
    def sentence(self) -> str:
        return self.caption.text


@dataclass(frozen=True)
class Notice:
    kind: NoticeKind
    sentence: str
    message: dict[str, Any] = field(default_factory=dict)


ClientEvent = StateChanged | CaptionReceived | Notice
