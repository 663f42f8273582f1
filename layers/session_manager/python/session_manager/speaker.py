"""What a speaker does: create a session, ask its status, end it, and move it to a new
connection (the 100-minute refresh, or a reclaim after a drop)."""

from __future__ import annotations

import time
from collections import Counter

from aws_lambda_powertools import Logger

from session_manager import rules
from session_manager.caller import Caller
from session_manager.clock import now_ms
from session_manager.config import Settings
from session_manager.ending import SessionEnding, ended_message
from session_manager.errors import (
    ForbiddenError,
    InvalidActionError,
    InvalidLanguageError,
    SessionIdExhaustedError,
    SessionNotFoundError,
    UnauthorizedError,
)
from session_manager.ids import SessionIdGenerator
from session_manager.languages import LanguageCatalog
from session_manager.models import Connection, Session
from session_manager.observability import fingerprint, metrics
from session_manager.outcomes import Decision, Refusal
from session_manager.ports import Clock, ConnectionStore, SessionStore
from session_manager.protocol import (
    CreateSessionRequest,
    EndReason,
    MessageType,
    RefreshConnectionRequest,
    Role,
    message,
)
from session_manager.ratelimit import RateLimiter

logger = Logger(child=True)

# A reclaim that finds the away mark changed under it (another reclaim, a second drop) reads
# the session again; more than this many changes in one request is not a race but a loop.
RECLAIM_ATTEMPTS = 3


class SpeakerService:
    def __init__(
        self,
        settings: Settings,
        sessions: SessionStore,
        connections: ConnectionStore,
        limiter: RateLimiter,
        languages: LanguageCatalog,
        ids: SessionIdGenerator,
        ending: SessionEnding,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.connections = connections
        self.limiter = limiter
        self.languages = languages
        self.ids = ids
        self.ending = ending
        self.clock = clock

    @staticmethod
    def require_speaker(caller: Caller) -> None:
        """Checked before anything else about a speaker action: an anonymous caller learns
        nothing about its message from the errors."""
        if not caller.is_speaker:
            raise UnauthorizedError("Connect with a speaker token to create a session.")

    def create_session(self, caller: Caller, request: CreateSessionRequest) -> Decision:
        self.require_speaker(caller)
        if not self.languages.is_translatable(request.source_language):
            raise InvalidLanguageError(
                f"'{request.source_language}' cannot be translated from.",
                field="sourceLanguage",
                reason="not supported by Amazon Translate",
            )
        started = time.perf_counter()
        now = now_ms(self.clock)
        self.limiter.session_creation(caller.user_id, now / 1000)
        for attempt in range(1, self.settings.session_id_max_attempts + 1):
            session = Session(
                session_id=self.ids.generate(),
                speaker_connection_id=caller.connection_id,
                speaker_user_id=caller.user_id,
                source_language=request.source_language,
                quality_tier=request.quality_tier.value,
                created_at=now,
                expires_at=now // 1000 + self.settings.session_duration_seconds,
                last_listener_change_at=now,
            )
            result = self.sessions.create(session)
            if isinstance(result, Refusal) and result.connection_failed:
                if not rules.holds_speaker_role(result.connection, session.session_id):
                    # The quota was charged before the write (that keeps it exact under
                    # concurrency); nothing was created, so give it back.
                    self.limiter.session_creation_refunded(caller.user_id, now / 1000)
                    raise InvalidActionError("This connection already holds a role in a session; leave it first.")
                # else: a retried write that had already created this very session.
            elif isinstance(result, Refusal):
                logger.info("session id collision", extra={"sessionId": session.session_id, "attempt": attempt})
                continue
            metrics.add_metric(
                name="SessionCreationLatency", unit="Milliseconds", value=(time.perf_counter() - started) * 1000
            )
            logger.info("session created", extra={"sessionId": session.session_id, "attempt": attempt})
            return Decision.reply(
                message(
                    MessageType.SESSION_CREATED,
                    now_ms(self.clock),
                    sessionId=session.session_id,
                    sourceLanguage=session.source_language,
                    qualityTier=session.quality_tier,
                    connectionId=caller.connection_id,
                    expiresAt=session.expires_at,
                )
            )
        logger.error("session ids exhausted", extra={"attempts": self.settings.session_id_max_attempts})
        raise SessionIdExhaustedError()

    def session_status(self, caller: Caller) -> Decision:
        connection = self._speaker_connection(caller)
        session = self.sessions.get(connection.session_id)
        if not rules.is_live(session, self.clock.time()):
            raise SessionNotFoundError(session_id=connection.session_id)
        if not rules.is_current_speaker(session, caller.connection_id):
            raise ForbiddenError("This connection is no longer the session's speaker.", session_id=session.session_id)
        distribution = Counter(language for _, language in self.connections.listeners_of(session.session_id))
        now = now_ms(self.clock)
        return Decision.reply(
            message(
                MessageType.SESSION_STATUS,
                now,
                sessionId=session.session_id,
                listenerCount=session.listener_count,
                languageDistribution=dict(sorted(distribution.items())),
                sessionDurationSeconds=max(0, (now - session.created_at) // 1000),
                speakerAway=True if rules.speaker_is_away(session) else None,
            )
        )

    def end_session(self, caller: Caller) -> Decision:
        connection = self._speaker_connection(caller)
        session_id = connection.session_id
        result = self.sessions.end(
            session_id, EndReason.SPEAKER_ENDED, now_ms(self.clock), speaker_connection_id=caller.connection_id
        )
        if isinstance(result, Refusal):
            # Lost a race: a refresh moved the session to another connection, or it ended.
            if result.session is not None and result.session.is_active:
                raise ForbiddenError("This connection is no longer the session's speaker.", session_id=session_id)
            raise SessionNotFoundError(session_id=session_id)
        # Free the speaker's connection first: the session has ended whatever happens next.
        self.connections.detach_from_session(caller.connection_id, session_id)
        notices = self.ending.notices_for(result.session)
        return Decision.reply(ended_message(session_id, EndReason.SPEAKER_ENDED, now_ms(self.clock)), notices=notices)

    def refresh_connection(self, caller: Caller, request: RefreshConnectionRequest) -> Decision:
        """Move the session to this new connection of the same user: the 100-minute refresh,
        or a reclaim while the speaker is away (then the listeners hear the speaker is back)."""
        if not caller.is_speaker:
            raise UnauthorizedError(
                "A speaker's new connection must carry the speaker's token.", session_id=request.session_id
            )
        session_id = request.session_id
        for _ in range(RECLAIM_ATTEMPTS):
            session = self.sessions.get(session_id)
            self._require_takeover(session, caller, session_id)
            now = now_ms(self.clock)
            expires_at = now // 1000 + self.settings.session_duration_seconds
            result = self.sessions.move_speaker(
                session_id, caller.user_id, caller.connection_id, now, expires_at, away_since=session.speaker_away_since
            )
            if isinstance(result, Refusal) and result.connection_failed:
                if not rules.holds_speaker_role(result.connection, session_id):
                    raise InvalidActionError(
                        "This connection already holds a role in a session.", session_id=session_id
                    )
                # else: a retried write that had already moved the session here.
            elif isinstance(result, Refusal):
                self._require_takeover(result.session, caller, session_id)
                continue  # the away mark changed since the read: read again
            return self._refreshed(caller, session, expires_at)
        raise SessionNotFoundError(session_id=session_id)

    def _refreshed(self, caller: Caller, session: Session, expires_at: int) -> Decision:
        reclaimed = rules.speaker_is_away(session)
        logger.info(
            "speaker reclaimed the session" if reclaimed else "connection refreshed",
            extra={
                "sessionId": session.session_id,
                "role": Role.SPEAKER.value,
                "connection": fingerprint(caller.connection_id),
            },
        )
        reply = message(
            MessageType.CONNECTION_REFRESH_COMPLETE,
            now_ms(self.clock),
            sessionId=session.session_id,
            role=Role.SPEAKER.value,
            # The refresh pushed the session's expiry; tell the speaker when it is.
            expiresAt=expires_at,
        )
        notices = self.ending.speaker_returned(session.session_id) if reclaimed else []
        return Decision.reply(reply, notices=notices)

    def _require_takeover(self, session: Session | None, caller: Caller, session_id: str) -> None:
        if not rules.is_live(session, self.clock.time()):
            raise SessionNotFoundError(session_id=session_id)
        if not rules.may_take_over(session, caller.user_id):
            raise ForbiddenError("Only the session's speaker may take it over.", session_id=session_id)

    def _speaker_connection(self, caller: Caller) -> Connection:
        connection = self.connections.get(caller.connection_id)
        if (
            not rules.counts(connection, self.clock.time())
            or connection.role is not Role.SPEAKER
            or not connection.session_id
        ):
            raise ForbiddenError("Only the session's speaker may do this.")
        return connection
