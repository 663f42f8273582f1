"""What a session and a connection are, as the domain sees them (not as DynamoDB stores them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from session_manager.protocol import EndReason, Role


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
