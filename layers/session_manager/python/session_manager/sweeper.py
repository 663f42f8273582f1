"""The scheduled cleanup `$disconnect` cannot promise (it is best effort).

Every run: closes connections silent past HEARTBEAT_TIMEOUT_SECONDS (API Gateway itself waits
10 minutes), ends sessions past expiresAt and sessions whose speaker stayed away past the grace,
tells listeners whose session ended without them (a missed broadcast), and repairs listenerCount
drift. When a MOCK route answers heartbeats (HEARTBEAT_ANSWERED_BY=gateway, decision 44),
silence is read from the management API's lastActiveAt instead of the item's lastSeenAt, and the
refresh notices a heartbeat reply would carry are pushed here when due. Every step is
conditional, so two sweeps at once, or a sweep racing a client, change each thing once. The
notices it decides are returned; the scheduled job delivers them.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit

from session_manager import rules
from session_manager.clock import now_ms
from session_manager.config import Settings
from session_manager.connections import ConnectionService, lifetime_notices
from session_manager.ending import SessionEnding, ended_message
from session_manager.errors import ServiceUnavailableError
from session_manager.models import Connection, Session
from session_manager.observability import metrics
from session_manager.outcomes import Notice
from session_manager.ports import Clock, ConnectionStore, Notifier, SessionStore
from session_manager.protocol import EndReason, Role

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
    ended_speaker_gone: int = 0
    orphans_told: int = 0
    counts_repaired: int = 0
    connections_swept: int = 0
    refresh_notices: int = 0  # gateway mode: connectionRefreshRequired/connectionWarning pushed
    activity_lookups: int = 0  # gateway mode: GetConnection calls
    active_sessions: int = 0
    total_listeners: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class Sweep:
    report: SweepReport
    notices: list[Notice]


class Sweeper:
    def __init__(
        self,
        settings: Settings,
        sessions: SessionStore,
        connections: ConnectionStore,
        notifier: Notifier,
        ending: SessionEnding,
        connection_service: ConnectionService,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.connections = connections
        self.notifier = notifier
        self.ending = ending
        self.connection_service = connection_service
        self.clock = clock
        # Gateway mode: the latest lastActiveAt seen per connection, by this execution
        # environment. A connection last active at T cannot be silent before T + the timeout,
        # so until then it needs no GetConnection (see _last_active_at).
        self._active_at: dict[str, int] = {}

    def sweep(self) -> Sweep:
        sweep = Sweep(SweepReport(), [])
        live = self._sweep_sessions(sweep)
        self._sweep_connections(sweep, live)
        report = sweep.report
        # The gauges behind the capacity alarm: one sample per sweep, i.e. per minute.
        metrics.add_metric(name="ActiveSessions", unit=MetricUnit.Count, value=report.active_sessions)
        metrics.add_metric(name="TotalListeners", unit=MetricUnit.Count, value=report.total_listeners)
        logger.info("sweep finished", extra={k: v for k, v in vars(report).items() if k != "errors"})
        return sweep

    def _sweep_sessions(self, sweep: Sweep) -> dict[str, Session]:
        live: dict[str, Session] = {}
        listeners: dict[str, Counter[str]] = {}
        for connection in self.connections.scan():
            if connection.role is Role.LISTENER and connection.session_id:
                listeners.setdefault(connection.session_id, Counter())[connection.target_language or ""] += 1
        for session in self.sessions.scan():
            if not session.is_active:
                continue
            try:
                self._sweep_session(session, listeners.get(session.session_id, Counter()), sweep, live)
            except ServiceUnavailableError as error:
                sweep.report.errors.append(type(error).__name__)
        return live

    def _sweep_session(self, session: Session, seats: Counter[str], sweep: Sweep, live: dict[str, Session]) -> None:
        now = now_ms(self.clock)
        report = sweep.report
        if not rules.is_live(session, now / 1000):
            notices = self.ending.expire(session)
            if notices is not None:
                report.ended_expired += 1
                sweep.notices.extend(notices)
            return
        if rules.grace_is_over(session, now, self.settings.speaker_reconnect_grace_seconds):
            notices = self.ending.end_unreclaimed(session)
            if notices is not None:
                report.ended_speaker_gone += 1
                sweep.notices.extend(notices)
            return
        live[session.session_id] = session
        actual = sum(seats.values())
        report.active_sessions += 1
        report.total_listeners += actual
        # Every language the item counts, zero where no seat is left, and every language seated.
        by_language = {language: seats.get(language, 0) for language in {*session.language_counts, *seats}}
        drifted = actual != session.listener_count or any(
            session.language_counts.get(language, 0) != count for language, count in by_language.items()
        )
        if drifted and session.last_listener_change_at < now - COUNT_SETTLE_MS:
            if self.sessions.repair_listener_count(
                session.session_id, session.listener_count, by_language, now - COUNT_SETTLE_MS
            ):
                logger.warning(
                    "listener count repaired",
                    extra={"sessionId": session.session_id, "was": session.listener_count, "now": actual},
                )
                report.counts_repaired += 1

    def _sweep_connections(self, sweep: Sweep, live: dict[str, Session]) -> None:
        now = now_ms(self.clock)
        silent_before = now - int(self.settings.heartbeat_timeout_seconds * 1000)
        by_gateway = self.settings.heartbeats_answered_by_gateway
        connections = list(self.connections.scan())
        sweep.report.connections_swept = len(connections)
        activity = self._last_active_at(connections, silent_before, sweep.report) if by_gateway else {}
        for connection in connections:
            try:
                if by_gateway:
                    last_active = activity[connection.connection_id]
                    if isinstance(last_active, ServiceUnavailableError):
                        raise last_active
                    if last_active is None:  # GetConnection: 410, its $disconnect was missed
                        self._clean_up_gone(connection.connection_id, sweep)
                        continue
                else:
                    last_active = connection.last_seen_at
                if last_active < silent_before:
                    if self.notifier.close(connection.connection_id):
                        sweep.report.closed_silent += 1  # its $disconnect cleans up
                    else:
                        self._clean_up_gone(connection.connection_id, sweep)
                elif connection.role is Role.LISTENER and connection.session_id and connection.session_id not in live:
                    notice = self._orphan_notice(connection.connection_id, connection.session_id)
                    if notice is not None:
                        sweep.notices.append(notice)
                        sweep.report.orphans_told += 1
                elif by_gateway:
                    self._push_lifetime_notices(connection, now, sweep)
            except ServiceUnavailableError as error:
                sweep.report.errors.append(type(error).__name__)

    def _clean_up_gone(self, connection_id: str, sweep: Sweep) -> None:
        """Already gone and its $disconnect was missed: clean up here."""
        sweep.notices.extend(self.connection_service.disconnect(connection_id).notices)
        sweep.report.cleaned_gone += 1

    def _last_active_at(
        self, connections: list[Connection], silent_before: int, report: SweepReport
    ) -> dict[str, int | ServiceUnavailableError | None]:
        """When each client last sent anything (any message moves lastActiveAt): None when the
        connection is gone, the error when the lookup failed.

        Bounded: a connection that connected, or was seen active, after ``silent_before`` cannot
        be silent yet and costs no request, so a client heartbeating every 30 s against the 90 s
        timeout is looked up every other sweep, not every one (30 GetConnection an hour at a
        one-minute sweep, the figure decision 44 was priced at). The lookups run in parallel,
        bounded like a fan-out: one at a time, thousands of listeners would outlast the sweep."""
        activity: dict[str, int | ServiceUnavailableError | None] = {}
        due = []
        for connection in connections:
            known = max(connection.connected_at, self._active_at.get(connection.connection_id, 0))
            if known >= silent_before:
                activity[connection.connection_id] = known
            else:
                due.append(connection.connection_id)

        def look_up(connection_id: str) -> int | ServiceUnavailableError | None:
            try:
                return self.notifier.last_active_at(connection_id)
            except ServiceUnavailableError as error:
                return error

        if due:
            with ThreadPoolExecutor(max_workers=min(self.settings.broadcast_concurrency, len(due))) as pool:
                activity.update(zip(due, pool.map(look_up, due), strict=True))
        report.activity_lookups += len(due)
        # What is known of this sweep's connections (lastActiveAt is never before connectedAt);
        # the others are gone, and forgotten.
        self._active_at = {connection_id: found for connection_id, found in activity.items() if isinstance(found, int)}
        return activity

    def _push_lifetime_notices(self, connection: Connection, now: int, sweep: Sweep) -> None:
        """What a heartbeat reply would add: a live connection hears it within a sweep of it
        being due, and at every sweep after, as it would at every heartbeat."""
        for message in lifetime_notices(self.settings, connection, connection.connected_at, now):
            sweep.notices.append(Notice((connection.connection_id,), message, clean_up_gone=True))
            sweep.report.refresh_notices += 1

    def _orphan_notice(self, connection_id: str, session_id: str) -> Notice | None:
        """A listener of a session that ended or vanished and was never told. A session that
        ended moments ago is left to the process that ended it, which is telling its listeners
        now; the notice claims the listener, so two sweeps tell it once."""
        session = self.sessions.get(session_id)
        now = now_ms(self.clock)
        if rules.is_live(session, now / 1000):
            return None  # became live since the scan: never end a live seat
        if session is not None and session.is_active:
            return None  # expired but not yet ended: the session sweep ends it and tells everyone
        if session is not None and session.ended_at and session.ended_at > now - BROADCAST_GRACE_MS:
            return None
        reason = (session.end_reason if session else None) or EndReason.EXPIRED
        return Notice((connection_id,), ended_message(session_id, reason, now), claim_from_session=session_id)
