"""A connection's own life: registration at $connect, heartbeats, and its $disconnect."""

from __future__ import annotations

from dataclasses import dataclass

from aws_lambda_powertools import Logger

from session_manager.caller import Caller
from session_manager.clock import now_ms
from session_manager.config import Settings
from session_manager.ending import SessionEnding
from session_manager.errors import RateLimitExceededError
from session_manager.models import Connection
from session_manager.outcomes import Decision, Message, Notice, Outcome, Refusal
from session_manager.ports import Clock, ConnectionStore, SessionStore
from session_manager.protocol import MessageType, Role, message
from session_manager.ratelimit import RateLimiter

logger = Logger(child=True)


@dataclass(frozen=True)
class Disconnected:
    """What a $disconnect did (for the log) and whom to tell."""

    what: str
    notices: tuple[Notice, ...] = ()

    @property
    def decision(self) -> Decision:
        return Decision(notices=self.notices)


def lifetime_notices(settings: Settings, connection: Connection | None, connected_at: int, now: int) -> list[Message]:
    """connectionRefreshRequired (to a connection that holds a role) and connectionWarning, as far
    as the age since ``connected_at`` (the gateway's) has passed their thresholds. They follow a
    heartbeatAck, or the sweeper pushes them when a MOCK route answers heartbeats (decision 44):
    the same messages either way."""
    notices = []
    age_minutes = (now - connected_at) / 60000
    if age_minutes >= settings.connection_refresh_minutes and connection is not None and connection.session_id:
        notices.append(
            message(
                MessageType.CONNECTION_REFRESH_REQUIRED,
                now,
                sessionId=connection.session_id,
                role=connection.role.value if connection.role else None,
                targetLanguage=connection.target_language if connection.role is Role.LISTENER else None,
                message="Open a new connection and send refreshConnection to stay in the session.",
            )
        )
    if age_minutes >= settings.connection_warning_minutes:
        remaining = max(0, int(settings.connection_max_minutes - age_minutes))
        notices.append(
            message(
                MessageType.CONNECTION_WARNING,
                now,
                remainingMinutes=remaining,
                message=f"This connection closes in about {remaining} minutes; refresh it now.",
            )
        )
    return notices


class ConnectionService:
    def __init__(
        self,
        settings: Settings,
        connections: ConnectionStore,
        sessions: SessionStore,
        ending: SessionEnding,
        limiter: RateLimiter,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.connections = connections
        self.sessions = sessions
        self.ending = ending
        self.limiter = limiter
        self.clock = clock

    def connect(self, caller: Caller) -> None:
        """Apply the per-IP attempt limit and record the connection (a duplicate is harmless)."""
        self.limiter.connection_attempt(caller.source_ip, self.clock.time())
        ttl = int(caller.connected_at / 1000) + self.settings.connection_ttl_seconds
        if not self.connections.register(caller.connection_id, caller.connected_at, ttl, caller.user_id):
            logger.warning("duplicate $connect ignored")

    def heartbeat(self, caller: Caller) -> Decision:
        """heartbeatAck, followed by connectionRefreshRequired and connectionWarning when due.
        Due-ness comes from the connection's age; the one write counts the heartbeat against
        its limit and marks the connection alive."""
        now = now_ms(self.clock)
        result = self.connections.record_heartbeat(
            caller.connection_id, now, self.settings.rate_limit_heartbeats_per_min
        )
        if isinstance(result, Refusal) and result.connection is not None:
            raise RateLimitExceededError(
                "Too many heartbeats; send one every 30 seconds.", retry_after=60 - (now // 1000) % 60
            )
        connection = None if isinstance(result, Refusal) else result.connection
        replies = [
            message(MessageType.HEARTBEAT_ACK, now),
            *lifetime_notices(self.settings, connection, caller.connected_at, now),
        ]
        return Decision.reply(*replies)

    def disconnect(self, connection_id: str) -> Disconnected:
        """Clean up after a closed connection, exactly once. An idle connection (or a duplicate
        $disconnect) costs one request: the delete that is refused only when a role is held."""
        result = self.connections.delete_if_idle(connection_id)
        if not isinstance(result, Refusal):
            if result.connection is None:
                logger.info("duplicate or unknown $disconnect ignored")
                return Disconnected("unknown")
            return Disconnected("idle")
        connection = result.connection
        if connection is None:  # deleted by someone else between the two conditions
            return Disconnected("unknown")
        try:
            outcome = self._release_role(connection)
        except Exception:
            self.connections.delete(connection_id)  # the socket is closed whatever failed
            raise
        if outcome.what != "listener":  # a released listener's item went in the same transaction
            self.connections.delete(connection_id)
        return outcome

    def _release_role(self, connection: Connection) -> Disconnected:
        if connection.role is Role.LISTENER:
            outcome = self.sessions.remove_listener(
                connection.connection_id,
                connection.session_id,
                connection.target_language or "",
                now_ms(self.clock),
                delete_connection=True,
            )
            if outcome is Outcome.ALREADY_DONE:
                logger.info(
                    "seat already released (duplicate $disconnect or leave)", extra={"sessionId": connection.session_id}
                )
                return Disconnected("duplicate")
            logger.info("listener disconnected", extra={"sessionId": connection.session_id})
            return Disconnected("listener")
        what, notices = self.ending.speaker_left(connection)
        if what == "stale-speaker":
            logger.info(
                "speaker connection closed without ending the session", extra={"sessionId": connection.session_id}
            )
        return Disconnected(what, tuple(notices))
