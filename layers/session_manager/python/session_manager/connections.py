"""A connection's own life: registration at $connect, heartbeats, and its $disconnect."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger

from session_manager.caller import Caller
from session_manager.config import Settings
from session_manager.models import Connection
from session_manager.protocol import MessageType, Role, message
from session_manager.ratelimit import RateLimiter
from session_manager.sessions import SessionService
from session_manager.store.connections import ConnectionRepository
from session_manager.store.sessions import Outcome

logger = Logger(child=True)


class ConnectionService:
    def __init__(
        self,
        settings: Settings,
        connections: ConnectionRepository,
        sessions: SessionService,
        limiter: RateLimiter,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.connections = connections
        self.sessions = sessions
        self.limiter = limiter
        self.clock = clock

    def connect(self, caller: Caller) -> None:
        """Apply the per-IP attempt limit and record the connection (a duplicate is harmless)."""
        now = self.clock()
        self.limiter.connection_attempt(caller.source_ip, now)
        ttl = int(caller.connected_at / 1000) + self.settings.connection_ttl_seconds
        if not self.connections.register(caller.connection_id, caller.connected_at, ttl, caller.user_id):
            logger.warning("duplicate $connect ignored")

    def heartbeat(self, caller: Caller) -> list[dict[str, Any]]:
        """heartbeatAck, followed by connectionRefreshRequired and connectionWarning when due.
        Due-ness comes from the connection's age at the gateway; the one write counts the
        heartbeat against its limit and marks the connection alive."""
        now_ms = int(self.clock() * 1000)
        connection = self.connections.record_heartbeat(
            caller.connection_id, now_ms, self.settings.rate_limit_heartbeats_per_min
        )
        replies = [message(MessageType.HEARTBEAT_ACK)]
        age_minutes = (now_ms - caller.connected_at) / 60000
        if age_minutes >= self.settings.connection_refresh_minutes and connection and connection.session_id:
            replies.append(
                message(
                    MessageType.CONNECTION_REFRESH_REQUIRED,
                    sessionId=connection.session_id,
                    role=connection.role.value if connection.role else None,
                    targetLanguage=connection.target_language if connection.role is Role.LISTENER else None,
                    message="Open a new connection and send refreshConnection to stay in the session.",
                )
            )
        if age_minutes >= self.settings.connection_warning_minutes:
            remaining = max(0, int(self.settings.connection_max_minutes - age_minutes))
            replies.append(
                message(
                    MessageType.CONNECTION_WARNING,
                    remainingMinutes=remaining,
                    message=f"This connection closes in about {remaining} minutes; refresh it now.",
                )
            )
        return replies

    def disconnect(self, connection_id: str) -> str:
        """Clean up after a closed connection, exactly once; what happened, for the log."""
        connection = self.connections.get(connection_id, now_seconds=0)
        if connection is None:
            logger.info("duplicate or unknown $disconnect ignored")
            return "unknown"
        try:
            outcome = self._release_role(connection)
        except Exception:
            self.connections.delete(connection_id)  # the socket is closed whatever failed
            raise
        if outcome != "listener":  # a released listener's item went in the same transaction
            self.connections.delete(connection_id)
        return outcome

    def _release_role(self, connection: Connection) -> str:
        now_ms = int(self.clock() * 1000)
        if connection.role is Role.LISTENER and connection.session_id:
            outcome = self.sessions.store.remove_listener(
                connection.connection_id, connection.session_id, now_ms, delete_connection=True
            )
            if outcome is Outcome.ALREADY_DONE:
                logger.info(
                    "seat already released (duplicate $disconnect or leave)", extra={"sessionId": connection.session_id}
                )
                return "duplicate"
            logger.info("listener disconnected", extra={"sessionId": connection.session_id})
            return "listener"
        if connection.role is Role.SPEAKER and connection.session_id:
            if self.sessions.end_for_speaker_disconnect(connection) is None:
                logger.info(
                    "speaker connection closed without ending the session", extra={"sessionId": connection.session_id}
                )
                return "stale-speaker"
            return "speaker"
        return "idle"
