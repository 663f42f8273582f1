"""What speakers and listeners do with a session: create, join, refresh, status, end, leave."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger

from session_manager.caller import Caller
from session_manager.config import Settings
from session_manager.errors import (
    ForbiddenError,
    InvalidActionError,
    InvalidLanguageError,
    InvalidSessionIdError,
    SessionFullError,
    SessionIdExhaustedError,
    SessionNotFoundError,
    SessionServiceError,
    UnauthorizedError,
    UnsupportedLanguageError,
)
from session_manager.ids import SessionIdGenerator
from session_manager.languages import LanguageCatalog
from session_manager.models import Connection, Session
from session_manager.observability import fingerprint, metrics
from session_manager.protocol import (
    END_REASON_MESSAGES,
    CreateSessionRequest,
    EndReason,
    JoinSessionRequest,
    MessageType,
    RefreshConnectionRequest,
    Role,
    message,
    parse_join_session,
)
from session_manager.ratelimit import RateLimiter
from session_manager.store.connections import ConnectionRepository
from session_manager.store.messenger import ConnectionMessenger
from session_manager.store.sessions import Outcome, SessionStore

logger = Logger(child=True)

Reply = dict[str, Any]


class SessionService:
    def __init__(
        self,
        settings: Settings,
        store: SessionStore,
        connections: ConnectionRepository,
        limiter: RateLimiter,
        messenger: ConnectionMessenger,
        languages: LanguageCatalog,
        ids: SessionIdGenerator,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.connections = connections
        self.limiter = limiter
        self.messenger = messenger
        self.languages = languages
        self.ids = ids
        self.clock = clock

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    # ------------------------------------------------------------ speaker

    def require_speaker(self, caller: Caller) -> None:
        """Checked before anything else about a speaker action: an anonymous caller learns
        nothing about its message from the errors."""
        if not caller.is_speaker:
            raise UnauthorizedError("Connect with a speaker token to create a session.")

    def create_session(self, caller: Caller, request: CreateSessionRequest) -> Reply:
        self.require_speaker(caller)
        if not self.languages.is_translatable(request.source_language):
            raise InvalidLanguageError(
                f"'{request.source_language}' cannot be translated from.",
                field="sourceLanguage",
                reason="not supported by Amazon Translate",
            )
        self._require_free_connection(caller)
        started = time.perf_counter()
        now_ms = self._now_ms()
        self.limiter.session_creation(caller.user_id, now_ms / 1000)
        for attempt in range(1, self.settings.session_id_max_attempts + 1):
            session = Session(
                session_id=self.ids.generate(),
                speaker_connection_id=caller.connection_id,
                speaker_user_id=caller.user_id,
                source_language=request.source_language,
                quality_tier=request.quality_tier.value,
                created_at=now_ms,
                expires_at=now_ms // 1000 + self.settings.session_duration_seconds,
                last_listener_change_at=now_ms,
            )
            outcome = self.store.create(session)
            if outcome is Outcome.DONE:
                metrics.add_metric(
                    name="SessionCreationLatency", unit="Milliseconds", value=(time.perf_counter() - started) * 1000
                )
                logger.info("session created", extra={"sessionId": session.session_id, "attempt": attempt})
                return message(
                    MessageType.SESSION_CREATED,
                    sessionId=session.session_id,
                    sourceLanguage=session.source_language,
                    qualityTier=session.quality_tier,
                    connectionId=caller.connection_id,
                    expiresAt=session.expires_at,
                )
            if outcome is Outcome.CONNECTION_BUSY:
                raise InvalidActionError("This connection already holds a session.")
            logger.info("session id collision", extra={"sessionId": session.session_id, "attempt": attempt})
        logger.error("session ids exhausted", extra={"attempts": self.settings.session_id_max_attempts})
        raise SessionIdExhaustedError()

    def session_status(self, caller: Caller) -> Reply:
        session = self._session_of_speaker(caller)
        distribution = Counter(language for _, language in self.connections.listeners_of(session.session_id))
        return message(
            MessageType.SESSION_STATUS,
            sessionId=session.session_id,
            listenerCount=session.listener_count,
            languageDistribution=dict(sorted(distribution.items())),
            sessionDurationSeconds=max(0, (self._now_ms() - session.created_at) // 1000),
        )

    def end_session(self, caller: Caller) -> Reply:
        session = self._session_of_speaker(caller)
        ended = self.store.end(
            session.session_id,
            EndReason.SPEAKER_ENDED,
            self._now_ms(),
            speaker_connection_id=caller.connection_id,
        )
        if ended is None:
            # Lost a race: a refresh moved the session to another connection, or it ended.
            current = self.store.get_live(session.session_id, self.clock())
            if current is not None and current.speaker_connection_id != caller.connection_id:
                raise ForbiddenError(
                    "This connection is no longer the session's speaker.", session_id=session.session_id
                )
            raise SessionNotFoundError(session_id=session.session_id)
        # Free the speaker's connection first: the session has ended whatever happens next.
        self.connections.detach_from_session(caller.connection_id, session.session_id)
        self.finish(ended)
        return ended_message(ended.session_id, EndReason.SPEAKER_ENDED)

    def _session_of_speaker(self, caller: Caller) -> Session:
        connection = self.connections.get(caller.connection_id)
        if connection is None or connection.role is not Role.SPEAKER or not connection.session_id:
            raise ForbiddenError("Only the session's speaker may do this.")
        session = self.store.get_live(connection.session_id, self.clock())
        if session is None:
            raise SessionNotFoundError(session_id=connection.session_id)
        if session.speaker_connection_id != caller.connection_id:
            raise ForbiddenError("This connection is no longer the session's speaker.", session_id=session.session_id)
        return session

    # ------------------------------------------------------------ listener

    def parse_join(self, caller: Caller, body: dict[str, Any]) -> JoinSessionRequest:
        """Validate a join; a malformed session id counts as a failed join of the caller's IP."""
        try:
            return parse_join_session(body)
        except InvalidSessionIdError:
            self.limiter.join_failed(caller.source_ip, self.clock(), was_admitted=False)
            raise

    def join_session(self, caller: Caller, request: JoinSessionRequest) -> Reply:
        started = time.perf_counter()
        self._require_speakable(request.target_language, request.session_id)
        # A connection that already holds a seat is refused by the join transaction itself
        # (CONNECTION_BUSY), which saves a read on the hot path of a join storm.
        now_ms = self._now_ms()
        self.limiter.join_attempt(caller.source_ip, now_ms / 1000, request.session_id)
        session = self.store.get_live(request.session_id, now_ms / 1000)
        if session is None:
            self.limiter.join_failed(caller.source_ip, now_ms / 1000)
            raise SessionNotFoundError(session_id=request.session_id)
        outcome = self.store.add_listener(
            request.session_id,
            caller.connection_id,
            request.target_language,
            now_ms,
            capacity=self.settings.max_listeners_per_session,
        )
        self._raise_for(outcome, request.session_id)
        metrics.add_metric(
            name="ListenerJoinLatency", unit="Milliseconds", value=(time.perf_counter() - started) * 1000
        )
        logger.info(
            "listener joined",
            extra={"sessionId": session.session_id, "targetLanguage": request.target_language},
        )
        return message(
            MessageType.SESSION_JOINED,
            sessionId=session.session_id,
            targetLanguage=request.target_language,
            sourceLanguage=session.source_language,
            connectionId=caller.connection_id,
        )

    def leave_session(self, caller: Caller) -> Reply:
        connection = self.connections.get(caller.connection_id)
        if connection is None or connection.role is not Role.LISTENER or not connection.session_id:
            raise InvalidActionError("This connection has not joined a session.")
        outcome = self.store.remove_listener(
            caller.connection_id, connection.session_id, self._now_ms(), delete_connection=False
        )
        if outcome is Outcome.ALREADY_DONE:
            raise InvalidActionError("This connection has not joined a session.", session_id=connection.session_id)
        logger.info("listener left", extra={"sessionId": connection.session_id})
        return message(MessageType.SESSION_LEFT, sessionId=connection.session_id)

    # ------------------------------------------------------------ refresh

    def refresh_connection(self, caller: Caller, request: RefreshConnectionRequest) -> Reply:
        now_ms = self._now_ms()
        if request.role is Role.SPEAKER:
            if not caller.is_speaker:
                raise UnauthorizedError(
                    "A speaker's new connection must carry the speaker's token.", session_id=request.session_id
                )
            outcome = self.store.move_speaker(
                request.session_id,
                caller.user_id,
                caller.connection_id,
                now_ms,
                now_ms // 1000 + self.settings.session_duration_seconds,
            )
        else:
            self._require_speakable(request.target_language, request.session_id)
            # Counted like a join, so refreshes cannot be used to guess ids or flood a session.
            self.limiter.join_attempt(caller.source_ip, now_ms / 1000, request.session_id)
            # A refresh may exceed capacity while the old connection still holds its seat
            # (requirement 11), but never beyond one refresh per seat.
            outcome = self.store.add_listener(
                request.session_id,
                caller.connection_id,
                request.target_language,
                now_ms,
                capacity=2 * self.settings.max_listeners_per_session,
            )
            if outcome is Outcome.SESSION_GONE:
                self.limiter.join_failed(caller.source_ip, now_ms / 1000)
        self._raise_for(outcome, request.session_id)
        logger.info(
            "connection refreshed",
            extra={
                "sessionId": request.session_id,
                "role": request.role.value,
                "connection": fingerprint(caller.connection_id),
            },
        )
        return message(
            MessageType.CONNECTION_REFRESH_COMPLETE,
            sessionId=request.session_id,
            role=request.role.value,
            targetLanguage=request.target_language,
            # The speaker's refresh pushed the session's expiry; tell the speaker when it is.
            expiresAt=now_ms // 1000 + self.settings.session_duration_seconds if request.role is Role.SPEAKER else None,
        )

    # ------------------------------------------------------------ ending

    def finish(self, session: Session) -> int:
        """Tell every listener of an ended session, once: a listener is detached from the
        session first and told only by the process that detached it (the sweeper may be telling
        the same listeners). Best effort: the sweeper tells whoever this misses. Returns how many
        were told."""
        reason = session.end_reason or EndReason.EXPIRED
        notice = ended_message(session.session_id, reason)
        counts: dict[str, int] = {}
        try:
            listeners = [connection_id for connection_id, _ in self.connections.listeners_of(session.session_id)]
            counts = self.messenger.broadcast(
                listeners,
                notice,
                claim=lambda connection_id: self.connections.detach_from_session(connection_id, session.session_id),
            )
            if reason is EndReason.EXPIRED and self.connections.detach_from_session(
                session.speaker_connection_id, session.session_id
            ):
                # The speaker's connection may still be open: tell it too.
                self.messenger.send(session.speaker_connection_id, notice)
        except SessionServiceError:
            logger.exception("session ended, but not every listener was told; the sweeper will")
        duration = ((session.ended_at or self._now_ms()) - session.created_at) // 1000
        logger.info(
            "session ended",
            extra={"sessionId": session.session_id, "reason": reason.value, "durationSeconds": duration, **counts},
        )
        return counts.get("delivered", 0)

    def end_for_speaker_disconnect(self, connection: Connection) -> Session | None:
        ended = self.store.end(
            connection.session_id,
            EndReason.SPEAKER_DISCONNECTED,
            self._now_ms(),
            speaker_connection_id=connection.connection_id,
        )
        if ended is not None:
            self.finish(ended)
        return ended

    # ------------------------------------------------------------ pieces

    def _require_speakable(self, language: str, session_id: str | None) -> None:
        if not self.languages.is_speakable(language):
            raise UnsupportedLanguageError(
                f"'{language}' cannot be translated into and spoken yet.",
                field="targetLanguage",
                reason="no Amazon Translate support or no Polly neural voice",
                session_id=session_id,
            )

    def _require_free_connection(self, caller: Caller) -> None:
        """Checked before the hourly creation limit is charged (the create transaction would
        refuse a busy connection too, but only after the quota was spent)."""
        connection = self.connections.get(caller.connection_id)
        if connection is not None and connection.session_id:
            raise InvalidActionError("This connection already holds a role in a session; leave it first.")

    def _raise_for(self, outcome: Outcome, session_id: str) -> None:
        errors: dict[Outcome, SessionServiceError] = {
            Outcome.SESSION_GONE: SessionNotFoundError(session_id=session_id),
            Outcome.SESSION_FULL: SessionFullError(session_id=session_id),
            Outcome.NOT_SPEAKER: ForbiddenError("Only the session's speaker may take it over.", session_id=session_id),
            Outcome.CONNECTION_BUSY: InvalidActionError(
                "This connection already holds a role in a session.", session_id=session_id
            ),
        }
        if outcome in errors:
            raise errors[outcome]


def ended_message(session_id: str, reason: EndReason) -> Reply:
    return message(
        MessageType.SESSION_ENDED, sessionId=session_id, reason=reason.value, message=END_REASON_MESSAGES[reason]
    )
