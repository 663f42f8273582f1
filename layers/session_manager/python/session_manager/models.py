"""What a session and a connection are, as the domain sees them (not as DynamoDB stores them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from session_manager.protocol import EndReason, Role

# Per-language seat counters are top-level attributes (`listeners_es`), because DynamoDB's ADD
# works on top-level attributes only and needs no map to exist first.
LANGUAGE_COUNT_PREFIX = "listeners_"
LANGUAGE_LEFT_PREFIX = "leftAt_"


def language_count_attribute(language: str) -> str:
    return f"{LANGUAGE_COUNT_PREFIX}{language}"


def language_left_attribute(language: str) -> str:
    return f"{LANGUAGE_LEFT_PREFIX}{language}"


@dataclass(frozen=True)
class Session:
    session_id: str
    speaker_connection_id: str
    speaker_user_id: str
    source_language: str
    quality_tier: str
    created_at: int  # epoch ms
    expires_at: int  # epoch seconds (the TTL attribute)
    is_active: bool = True
    listener_count: int = 0
    ended_at: int | None = None  # epoch ms
    end_reason: EndReason | None = None
    last_listener_change_at: int = 0  # epoch ms
    speaker_away_since: int | None = None  # epoch ms: the speaker's connection went away
    # Seats per target language, counted with listenerCount in the same writes: the languages a
    # caption must be translated into are one read away (no index query, no scan).
    language_counts: dict[str, int] = field(default_factory=dict)
    caption_seq: int = 0  # the last caption's sequence number
    # Written with a final line's number: its seq, and the seq of the final line before it (0:
    # none), so a listener can tell a missing line from the partial lines it never gets (decision 80).
    last_final_seq: int = 0
    previous_final_seq: int = 0
    language_left_at: dict[str, int] = field(default_factory=dict)  # epoch ms of a language's last leave

    @property
    def languages_in_use(self) -> list[str]:
        return sorted(language for language, count in self.language_counts.items() if count > 0)

    def languages_to_caption(self, now_ms: int, history_seconds: int) -> list[str]:
        """The languages in use, and those whose last listener left within the caption history:
        a phone that dropped must find its language's lines kept when it comes back."""
        recent = {
            language for language, left in self.language_left_at.items() if left >= now_ms - history_seconds * 1000
        }
        return sorted(set(self.languages_in_use) | recent)

    def is_live(self, now_seconds: float) -> bool:
        """Active and not past expiresAt: TTL deletion is lazy, so an item may outlive it."""
        return self.is_active and self.expires_at > now_seconds

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Session:
        reason = item.get("endReason")
        return cls(
            session_id=item["sessionId"],
            speaker_connection_id=item["speakerConnectionId"],
            speaker_user_id=item["speakerUserId"],
            source_language=item["sourceLanguage"],
            quality_tier=item["qualityTier"],
            created_at=int(item["createdAt"]),
            expires_at=int(item["expiresAt"]),
            is_active=bool(item.get("isActive", False)),
            listener_count=int(item.get("listenerCount", 0)),
            ended_at=int(item["endedAt"]) if "endedAt" in item else None,
            end_reason=EndReason(reason) if reason else None,
            last_listener_change_at=int(item.get("lastListenerChangeAt", 0)),
            speaker_away_since=int(item["speakerAwaySince"]) if "speakerAwaySince" in item else None,
            language_counts={
                key.removeprefix(LANGUAGE_COUNT_PREFIX): int(value)
                for key, value in item.items()
                if key.startswith(LANGUAGE_COUNT_PREFIX)
            },
            caption_seq=int(item.get("captionSeq", 0)),
            last_final_seq=int(item.get("lastFinalSeq", 0)),
            previous_final_seq=int(item.get("previousFinalSeq", 0)),
            language_left_at={
                key.removeprefix(LANGUAGE_LEFT_PREFIX): int(value)
                for key, value in item.items()
                if key.startswith(LANGUAGE_LEFT_PREFIX)
            },
        )

    def to_item(self) -> dict[str, Any]:
        return {
            "sessionId": self.session_id,
            "speakerConnectionId": self.speaker_connection_id,
            "speakerUserId": self.speaker_user_id,
            "sourceLanguage": self.source_language,
            "qualityTier": self.quality_tier,
            "createdAt": self.created_at,
            "expiresAt": self.expires_at,
            "isActive": self.is_active,
            "listenerCount": self.listener_count,
            "lastListenerChangeAt": self.last_listener_change_at,
        }


@dataclass(frozen=True)
class Connection:
    connection_id: str
    connected_at: int  # epoch ms
    last_seen_at: int  # epoch ms: connect or latest heartbeat
    ttl: int  # epoch seconds
    user_id: str | None = None  # speakers only, from the authorizer
    session_id: str | None = None
    role: Role | None = None
    target_language: str | None = None

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Connection:
        role = item.get("role")
        return cls(
            connection_id=item["connectionId"],
            connected_at=int(item.get("connectedAt", 0)),
            last_seen_at=int(item.get("lastSeenAt", item.get("connectedAt", 0))),
            ttl=int(item.get("ttl", 0)),
            user_id=item.get("userId"),
            session_id=item.get("sessionId"),
            role=Role(role) if role else None,
            target_language=item.get("targetLanguage"),
        )


@dataclass(frozen=True)
class CaptionLine:
    """One caption as a listener of one language receives it (and as the history keeps it)."""

    session_id: str
    seq: int
    line_id: str
    language: str
    text: str
    final: bool
    timestamp: int  # epoch ms
    untranslated: bool = False
    previous_seq: int | None = None  # final lines: the seq of the final line before (0: none)
