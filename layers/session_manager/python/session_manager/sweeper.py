"""The scheduled cleanup `$disconnect` cannot promise (it is best effort).

Every run: closes connections silent past HEARTBEAT_TIMEOUT_SECONDS (API Gateway itself waits
10 minutes), ends sessions past expiresAt, tells listeners whose session ended without them
(a missed broadcast), and repairs listenerCount drift. Every step is conditional, so two sweeps
at once, or a sweep racing a client, change each thing once.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit

from session_manager.config import Settings
from session_manager.connections import ConnectionService
from session_manager.errors import ServiceUnavailableError
from session_manager.models import Session
from session_manager.observability import metrics
from session_manager.protocol import EndReason, Role
from session_manager.sessions import SessionService, ended_message

logger = Logger(child=True)

# The index behind listener counts is eventually consistent: leave a session alone until its
# last join or leave is this old.
COUNT_SETTLE_MS = 60_000
# How long the process that ended a session has to tell its listeners before the sweeper treats
# the ones left as orphans.
BROADCAST_GRACE_MS = 60_000


@dataclass
class SweepReport:
    closed_silent: int = 0
    cleaned_gone: int = 0
    ended_expired: int = 0
    orphans_told: int = 0
    counts_repaired: int = 0
    active_sessions: int = 0
    total_listeners: int = 0
    errors: list[str] = field(default_factory=list)


class Sweeper:
    def __init__(
        self,
        settings: Settings,
        sessions: SessionService,
        connections: ConnectionService,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.connections = connections
        self.clock = clock

    def sweep(self) -> SweepReport:
        report = SweepReport()
        live = self._sweep_sessions(report)
        self._sweep_connections(report, live)
        # The gauges behind the capacity alarm: one sample per sweep, i.e. per minute.
        metrics.add_metric(name="ActiveSessions", unit=MetricUnit.Count, value=report.active_sessions)
        metrics.add_metric(name="TotalListeners", unit=MetricUnit.Count, value=report.total_listeners)
        logger.info("sweep finished", extra={k: v for k, v in vars(report).items() if k != "errors"})
        return report

    def _sweep_sessions(self, report: SweepReport) -> dict[str, Session]:
        now_ms = int(self.clock() * 1000)
        live: dict[str, Session] = {}
        listeners = Counter()
        for connection in self.sessions.connections.scan():
            if connection.role is Role.LISTENER and connection.session_id:
                listeners[connection.session_id] += 1
        for session in self.sessions.store.scan():
            if not session.is_active:
                continue
            try:
                self._sweep_session(session, listeners[session.session_id], now_ms, report, live)
            except ServiceUnavailableError as error:
                report.errors.append(type(error).__name__)
        return live

    def _sweep_session(
        self, session: Session, actual: int, now_ms: int, report: SweepReport, live: dict[str, Session]
    ) -> None:
        if session.expires_at <= now_ms // 1000:
            ended = self.sessions.store.end(session.session_id, EndReason.EXPIRED, now_ms, only_if_expired=True)
            if ended is not None:
                self.sessions.finish(ended)
                report.ended_expired += 1
            return
        live[session.session_id] = session
        report.active_sessions += 1
        report.total_listeners += actual
        if actual != session.listener_count and session.last_listener_change_at < now_ms - COUNT_SETTLE_MS:
            if self.sessions.store.repair_listener_count(
                session.session_id, session.listener_count, actual, now_ms - COUNT_SETTLE_MS
            ):
                logger.warning(
                    "listener count repaired",
                    extra={"sessionId": session.session_id, "was": session.listener_count, "now": actual},
                )
                report.counts_repaired += 1

    def _sweep_connections(self, report: SweepReport, live: dict[str, Session]) -> None:
        now_ms = int(self.clock() * 1000)
        silent_before = now_ms - int(self.settings.heartbeat_timeout_seconds * 1000)
        for connection in self.sessions.connections.scan():
            try:
                if connection.last_seen_at < silent_before:
                    if self.sessions.messenger.close(connection.connection_id):
                        report.closed_silent += 1  # its $disconnect cleans up
                    else:
                        # Already gone and its $disconnect was missed: clean up here.
                        self.connections.disconnect(connection.connection_id)
                        report.cleaned_gone += 1
                elif connection.role is Role.LISTENER and connection.session_id and connection.session_id not in live:
                    report.orphans_told += self._tell_orphan(connection.connection_id, connection.session_id)
            except ServiceUnavailableError as error:
                report.errors.append(type(error).__name__)

    def _tell_orphan(self, connection_id: str, session_id: str) -> bool:
        """A listener of a session that ended or vanished and was never told. A session that
        ended moments ago is left to the process that ended it, which is telling its listeners
        now; the listener is detached before it is told, so two sweeps tell it once."""
        session = self.sessions.store.get(session_id)
        now_ms = int(self.clock() * 1000)
        if session is not None and session.is_live(now_ms / 1000):
            return False  # became live since the scan: never end a live seat
        if session is not None and session.ended_at and session.ended_at > now_ms - BROADCAST_GRACE_MS:
            return False
        if not self.sessions.connections.detach_from_session(connection_id, session_id):
            return False
        reason = (session.end_reason if session else None) or EndReason.EXPIRED
        self.sessions.messenger.send(connection_id, ended_message(session_id, reason))
        return True
