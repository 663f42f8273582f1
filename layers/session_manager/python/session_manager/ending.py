"""How a session ends, and who is told: the speaker's End, a speaker who went away and did not
come back within the grace, and expiry. Returns the notices; the edges deliver them."""

from __future__ import annotations

from aws_lambda_powertools import Logger

from session_manager.clock import now_ms
from session_manager.config import Settings
from session_manager.models import Connection, Session
from session_manager.outcomes import Message, Notice, Written
from session_manager.ports import Clock, ConnectionStore, SessionStore
from session_manager.protocol import END_REASON_MESSAGES, EndReason, MessageType, message

logger = Logger(child=True)


def ended_message(session_id: str, reason: EndReason, timestamp: int) -> Message:
    return message(
        MessageType.SESSION_ENDED,
        timestamp,
        sessionId=session_id,
        reason=reason.value,
        message=END_REASON_MESSAGES[reason],
    )


class SessionEnding:
    def __init__(self, settings: Settings, sessions: SessionStore, connections: ConnectionStore, clock: Clock) -> None:
        self.settings = settings
        self.sessions = sessions
        self.connections = connections
        self.clock = clock

    def notices_for(self, session: Session) -> list[Notice]:
        """Every listener of the ended session is told once: each is detached from the session
        first and told only by the process that detached it (a sweep may be telling the same
        listeners). An expired session tells its speaker too: its socket may still be open."""
        reason = session.end_reason or EndReason.EXPIRED
        notice = ended_message(session.session_id, reason, now_ms(self.clock))
        listeners = tuple(connection_id for connection_id, _ in self.connections.listeners_of(session.session_id))
        notices = [Notice(listeners, notice, claim_from_session=session.session_id)] if listeners else []
        if reason is EndReason.EXPIRED:
            notices.append(Notice((session.speaker_connection_id,), notice, claim_from_session=session.session_id))
        duration = ((session.ended_at or now_ms(self.clock)) - session.created_at) // 1000
        logger.info(
            "session ended",
            extra={
                "sessionId": session.session_id,
                "reason": reason.value,
                "durationSeconds": duration,
                "listeners": len(listeners),
            },
        )
        return notices

    def speaker_left(self, connection: Connection) -> tuple[str, list[Notice]]:
        """The current speaker's connection went away without endSession: with a grace, the
        session waits for the same user to reclaim it and its listeners hear the speaker is
        away; without one, it ends now. What happened (for the log) and the notices."""
        session_id = connection.session_id or ""
        now = now_ms(self.clock)
        if self.settings.speaker_reconnect_grace_seconds <= 0:
            result = self.sessions.end(
                session_id, EndReason.SPEAKER_DISCONNECTED, now, speaker_connection_id=connection.connection_id
            )
            if isinstance(result, Written) and result.session is not None:
                return "speaker", self.notices_for(result.session)
            return "stale-speaker", []
        if not self.sessions.mark_speaker_away(session_id, connection.connection_id, now):
            return "stale-speaker", []
        grace = self.settings.speaker_reconnect_grace_seconds
        logger.info("speaker away", extra={"sessionId": session_id, "graceSeconds": grace})
        away = message(
            MessageType.SPEAKER_AWAY,
            now,
            sessionId=session_id,
            # Whole seconds as an integer, as docs/protocol.md shows it (settings accept decimals).
            reconnectGraceSeconds=int(grace) if float(grace).is_integer() else grace,
            message="The speaker's connection dropped; stay here, the service continues when they are back.",
        )
        return "speaker-away", self._tell_listeners(session_id, away)

    def speaker_returned(self, session_id: str) -> list[Notice]:
        back = message(
            MessageType.SPEAKER_RETURNED, now_ms(self.clock), sessionId=session_id, message="The speaker is back."
        )
        return self._tell_listeners(session_id, back)

    def end_unreclaimed(self, session: Session) -> list[Notice] | None:
        """The grace passed and nobody reclaimed the session (a reclaim racing this write wins or
        loses as a whole: both are conditional on the same away mark)."""
        result = self.sessions.end(
            session.session_id,
            EndReason.SPEAKER_DISCONNECTED,
            now_ms(self.clock),
            away_since=session.speaker_away_since,
        )
        if isinstance(result, Written) and result.session is not None:
            return self.notices_for(result.session)
        return None  # someone else ended it, or it was reclaimed

    def expire(self, session: Session) -> list[Notice] | None:
        result = self.sessions.end(session.session_id, EndReason.EXPIRED, now_ms(self.clock), only_if_expired=True)
        if isinstance(result, Written) and result.session is not None:
            return self.notices_for(result.session)
        return None  # someone else ended it first

    def _tell_listeners(self, session_id: str, notice: Message) -> list[Notice]:
        listeners = tuple(connection_id for connection_id, _ in self.connections.listeners_of(session_id))
        return [Notice(listeners, notice)] if listeners else []
