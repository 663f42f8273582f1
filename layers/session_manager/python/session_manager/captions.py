"""Live captions: the speaker's line, numbered once, translated once per language in use, and
fanned out to that language's listeners; the last CAPTION_HISTORY_SECONDS kept so a listener who
dropped resumes without losing a line (docs/decisions.md, 52-55)."""

from __future__ import annotations

from dataclasses import replace

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit

from session_manager import rules
from session_manager.caller import Caller
from session_manager.clock import now_ms
from session_manager.config import Settings
from session_manager.errors import ForbiddenError, SessionNotFoundError
from session_manager.models import CaptionLine, Session
from session_manager.observability import metrics
from session_manager.outcomes import Decision, Message, Notice, Refusal
from session_manager.ports import CaptionQueue, CaptionStore, Clock, ConnectionStore, SessionStore, Translator
from session_manager.protocol import MessageType, Role, SendCaptionRequest, message
from session_manager.ratelimit import RateLimiter

logger = Logger(child=True)


def caption_message(line: CaptionLine) -> Message:
    return message(
        MessageType.CAPTION,
        line.timestamp,
        sessionId=line.session_id,
        seq=line.seq,
        lineId=line.line_id,
        language=line.language,
        text=line.text,
        final=line.final,
        untranslated=True if line.untranslated else None,
        previousSeq=line.previous_seq,
    )


class CaptionService:
    def __init__(
        self,
        settings: Settings,
        sessions: SessionStore,
        connections: ConnectionStore,
        captions: CaptionStore,
        translator: Translator,
        limiter: RateLimiter,
        queue: CaptionQueue | None,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.connections = connections
        self.captions = captions
        self.translator = translator
        self.limiter = limiter
        self.queue = queue
        self.clock = clock

    def send_caption(self, caller: Caller, request: SendCaptionRequest) -> Decision:
        session_id = self._speakers_session(caller)
        now = now_ms(self.clock)
        # Before the numbering write: a runaway client must not burn Translate (or numbers).
        self.limiter.caption(session_id, now / 1000)
        result = self.sessions.next_caption_seq(session_id, caller.connection_id, now, request.final)
        if isinstance(result, Refusal):
            if result.session is not None and rules.is_live(result.session, now / 1000):
                raise ForbiddenError("This connection is no longer the session's speaker.", session_id=session_id)
            raise SessionNotFoundError(session_id=session_id)
        session = result.session
        line_id = request.line_id or f"line-{session.caption_seq}"
        lines = self._lines(session, request, line_id, now)
        if request.final:
            self.captions.record(lines, now // 1000 + self.settings.caption_history_seconds)
        # A language nobody listens in (often the source) costs no query: its seat count is kept in
        # the same transactions as the seats (decision 54) and came back with the numbering write.
        in_use = set(session.languages_in_use)
        wanted = [line for line in lines if line.language in in_use]
        listeners = self._listeners(session.session_id, [line.language for line in wanted])
        notices = [notice for line in wanted for notice in self._fan_out(line, listeners.get(line.language, ()))]
        return Decision.reply(
            message(
                MessageType.CAPTION_ACCEPTED,
                now,
                sessionId=session.session_id,
                seq=session.caption_seq,
                lineId=line_id,
                final=request.final,
            ),
            notices=notices,
        )

    def missed(self, session_id: str, language: str, last_seq: int | None) -> list[Message]:
        """The kept lines of a language after ``last_seq``, for a listener that rejoined."""
        if last_seq is None:
            return []
        not_before = now_ms(self.clock) - self.settings.caption_history_seconds * 1000
        return [caption_message(line) for line in self.captions.since(session_id, language, last_seq, not_before)]

    def _speakers_session(self, caller: Caller) -> str:
        if not caller.is_speaker:
            raise ForbiddenError("Only the session's speaker may send captions.")
        connection = self.connections.get(caller.connection_id)
        if not rules.counts(connection, self.clock.time()) or connection.role is Role.LISTENER:
            raise ForbiddenError("Only the session's speaker may send captions.")
        if connection.role is not Role.SPEAKER or not connection.session_id:
            raise SessionNotFoundError("This connection speaks for no session now; create one to caption it.")
        return connection.session_id

    def _lines(self, session: Session, request: SendCaptionRequest, line_id: str, now: int) -> list[CaptionLine]:
        """The line in the source language and, for a final line, in every other language in use
        (a line still being spoken goes to source-language listeners only: Translate is not paid
        for every keystroke)."""
        session_id, seq, source = session.session_id, session.caption_seq, session.source_language
        if not request.final:
            return [CaptionLine(session_id, seq, line_id, source, request.text, False, now)]
        spoken = CaptionLine(
            session_id, seq, line_id, source, request.text, True, now, previous_seq=session.previous_final_seq
        )
        languages = session.languages_to_caption(now, self.settings.caption_history_seconds)
        targets = [language for language in languages if language != source]
        if not targets:
            return [spoken]
        translations = self.translator.translate(request.text, source, targets)
        failed = [language for language in targets if not translations.get(language)]
        if failed:
            logger.warning("caption not translated", extra={"sessionId": session_id, "languages": failed})
            metrics.add_metric(name="UntranslatedCaptions", unit=MetricUnit.Count, value=len(failed))
        lines = [spoken]
        for language in targets:
            text = translations.get(language)
            lines.append(replace(spoken, language=language, text=text or request.text, untranslated=not text))
        return lines

    def _listeners(self, session_id: str, languages: list[str]) -> dict[str, tuple[str, ...]]:
        """Each language's listeners: one Query of the listener index for one language, and one
        Query of the whole session for several (not one per language): the same items and read
        units, one round trip instead of L one after the other; and the embedded DynamoDB, which
        has no index, scans its table once per Query (docs/benchmarks.md, "Where the time went")."""
        if not languages:
            return {}
        if len(languages) == 1:
            return {languages[0]: tuple(self.connections.listeners_in(session_id, languages[0]))}
        found: dict[str, list[str]] = {language: [] for language in languages}
        for connection_id, language in self.connections.listeners_of(session_id):
            if language in found:
                found[language].append(connection_id)
        return {language: tuple(ids) for language, ids in found.items()}

    def _fan_out(self, line: CaptionLine, listeners: tuple[str, ...]) -> list[Notice]:
        if not listeners:
            return []
        notice = caption_message(line)
        if self.queue is not None and len(listeners) > self.settings.caption_queue_threshold:
            pages = self.queue.enqueue(listeners, notice)
            logger.info("caption fan-out queued", extra={"language": line.language, "pages": pages})
            return []
        return [Notice(listeners, notice, clean_up_gone=True)]
