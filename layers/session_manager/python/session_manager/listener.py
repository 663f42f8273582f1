"""What a listener does: join a session in a language, leave it, and move its seat to a new
connection (the 100-minute refresh). Every write a retry can repeat is read back as a success
when the connection already holds exactly the seat it asked for (docs/decisions.md)."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger

from session_manager import rules
from session_manager.caller import Caller
from session_manager.captions import CaptionService
from session_manager.clock import now_ms
from session_manager.config import Settings
from session_manager.errors import (
    InvalidActionError,
    InvalidSessionIdError,
    SessionFullError,
    SessionNotFoundError,
    UnsupportedLanguageError,
)
from session_manager.languages import LanguageCatalog
from session_manager.models import Session
from session_manager.observability import fingerprint, metrics
from session_manager.outcomes import Decision, Outcome, Refusal, WriteResult
from session_manager.ports import Clock, ConnectionStore, SessionStore
from session_manager.protocol import (
    JoinSessionRequest,
    MessageType,
    RefreshConnectionRequest,
    Role,
    message,
    parse_join_session,
)
from session_manager.ratelimit import RateLimiter

logger = Logger(child=True)


class ListenerService:
    def __init__(
        self,
        settings: Settings,
        sessions: SessionStore,
        connections: ConnectionStore,
        limiter: RateLimiter,
        languages: LanguageCatalog,
        captions: CaptionService,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.connections = connections
        self.limiter = limiter
        self.languages = languages
        self.captions = captions
        self.clock = clock

    def parse_join(self, caller: Caller, body: dict[str, Any]) -> JoinSessionRequest:
        """Validate a join; a malformed session id counts as a failed join of the caller's IP."""
        try:
            return parse_join_session(body)
        except InvalidSessionIdError:
            self.limiter.join_failed(caller.source_ip, self.clock.time(), was_admitted=False)
            raise

    def join_session(self, caller: Caller, request: JoinSessionRequest) -> Decision:
        started = time.perf_counter()
        self._require_speakable(request.target_language, request.session_id)
        now = now_ms(self.clock)
        self.limiter.join_attempt(caller.source_ip, now / 1000, request.session_id)
        # A connection that already holds a seat, an unknown id and a full session are all
        # refused by the seat's transaction itself; the session is read only after it.
        session = self._take_seat(
            caller, request.session_id, request.target_language, now, self.settings.max_listeners_per_session
        )
        metrics.add_metric(
            name="ListenerJoinLatency", unit="Milliseconds", value=(time.perf_counter() - started) * 1000
        )
        logger.info(
            "listener joined", extra={"sessionId": session.session_id, "targetLanguage": request.target_language}
        )
        return Decision.reply(
            message(
                MessageType.SESSION_JOINED,
                now_ms(self.clock),
                sessionId=session.session_id,
                targetLanguage=request.target_language,
                sourceLanguage=session.source_language,
                connectionId=caller.connection_id,
                speakerAway=True if rules.speaker_is_away(session) else None,
            ),
            # Then the lines it missed since lastSeq, in order; live ones follow.
            *self.captions.missed(session.session_id, request.target_language, request.last_seq),
        )

    def leave_session(self, caller: Caller) -> Decision:
        connection = self.connections.get(caller.connection_id)
        if (
            not rules.counts(connection, self.clock.time())
            or connection.role is not Role.LISTENER
            or not connection.session_id
        ):
            raise InvalidActionError("This connection has not joined a session.")
        # ALREADY_DONE means the seat went between the read and the write (a retried write, or
        # the session ending): either way the connection no longer holds it, which is the truth
        # the client asked for.
        self.sessions.remove_listener(
            caller.connection_id,
            connection.session_id,
            connection.target_language or "",
            now_ms(self.clock),
            delete_connection=False,
        )
        logger.info("listener left", extra={"sessionId": connection.session_id})
        return Decision.reply(message(MessageType.SESSION_LEFT, now_ms(self.clock), sessionId=connection.session_id))

    def refresh_connection(self, caller: Caller, request: RefreshConnectionRequest) -> Decision:
        """A new seat for the listener's new connection; the old connection's close frees the old
        seat. Counted like a join, so refreshes cannot be used to guess ids or flood a session,
        and it may exceed capacity while the old seat is held (requirement 11), but never beyond
        one refresh per seat."""
        self._require_speakable(request.target_language, request.session_id)
        now = now_ms(self.clock)
        self.limiter.join_attempt(caller.source_ip, now / 1000, request.session_id)
        session = self._take_seat(
            caller, request.session_id, request.target_language, now, 2 * self.settings.max_listeners_per_session
        )
        logger.info(
            "connection refreshed",
            extra={
                "sessionId": request.session_id,
                "role": Role.LISTENER.value,
                "connection": fingerprint(caller.connection_id),
            },
        )
        return Decision.reply(
            message(
                MessageType.CONNECTION_REFRESH_COMPLETE,
                now_ms(self.clock),
                sessionId=request.session_id,
                role=Role.LISTENER.value,
                targetLanguage=request.target_language,
                speakerAway=True if rules.speaker_is_away(session) else None,
            ),
            *self.captions.missed(request.session_id, request.target_language, request.last_seq),
        )

    def _take_seat(self, caller: Caller, session_id: str, target_language: str, now: int, capacity: int) -> Session:
        """Seat the caller's connection, then read the session as it is once the seat exists.
        Read after, not before (decision 79 in docs/decisions.md): a speakerAway or
        speakerReturned whose listener query missed the new seat had its mark written before
        the seat, so this read sees it, and the answer carries what that notice could not."""
        result = self.sessions.add_listener(session_id, caller.connection_id, target_language, now, capacity)
        try:
            self._raise_unless_seated(result, session_id, target_language, capacity, now)
        except SessionNotFoundError:
            self.limiter.join_failed(caller.source_ip, now / 1000)
            raise
        session = self.sessions.get(session_id)
        if session is None:
            # Only a TTL deletion between the write and this read could do it; the sweeper
            # frees the seat.
            raise SessionNotFoundError(session_id=session_id)
        return session

    def seat_outcome(
        self, result: WriteResult, session_id: str, target_language: str, capacity: int, now: int
    ) -> Outcome:
        """Why a seat was or was not taken, from the items the refused write returned."""
        if not isinstance(result, Refusal):
            return Outcome.DONE
        if result.connection_failed and rules.holds_seat(result.connection, session_id, target_language):
            return Outcome.ALREADY_HELD
        # What the session says comes first: "no such session" helps a listener more than "this
        # connection is busy", and a refused session condition returned the session as it was.
        if result.session_failed:
            if not rules.is_live(result.session, now / 1000):
                return Outcome.SESSION_GONE
            if not rules.has_seat_for_one_more(result.session, capacity):
                return Outcome.SESSION_FULL
        if result.connection_failed:
            return Outcome.CONNECTION_BUSY
        return Outcome.SESSION_GONE  # the session changed between the condition and its copy

    def _raise_unless_seated(
        self, result: WriteResult, session_id: str, target_language: str, capacity: int, now: int
    ) -> None:
        outcome = self.seat_outcome(result, session_id, target_language, capacity, now)
        if outcome is Outcome.SESSION_GONE:
            raise SessionNotFoundError(session_id=session_id)
        if outcome is Outcome.SESSION_FULL:
            raise SessionFullError(session_id=session_id)
        if outcome is Outcome.CONNECTION_BUSY:
            raise InvalidActionError("This connection already holds a role in a session.", session_id=session_id)

    def _require_speakable(self, language: str, session_id: str | None) -> None:
        if not self.languages.is_speakable(language):
            raise UnsupportedLanguageError(
                f"'{language}' cannot be translated into and spoken yet.",
                field="targetLanguage",
                reason="no Amazon Translate support or no Polly neural voice",
                session_id=session_id,
            )
