"""A listener: joins a session in one language, shows its captions once each and in order, and
stays in the session through refreshes, drops and a speaker's short absence."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from live_session_client.captions import Caption, CaptionSequencer
from live_session_client.errors import LinkClosedError, NoAnswerError, RequestRefusedError
from live_session_client.events import CaptionReceived, ClientState, NoticeKind
from live_session_client.link import Link
from live_session_client.protocol import LANGUAGE_PATTERN, Action, MessageType, Role, normalise_session_id
from live_session_client.sentences import describe
from live_session_client.session_client import ClientOptions, Rejoin, SessionClient


class ListenerClient(SessionClient):
    """
    listener = ListenerClient(url, "faithful-shepherd-427", "es")
    await listener.start()              # raises RequestRefusedError with the sentence
    async for event in listener.events():
        print(event.sentence)
    """

    def __init__(
        self,
        url: str,
        session_id: str,
        language: str,
        options: ClientOptions | None = None,
        *,
        catch_up: bool = False,
    ) -> None:
        """`catch_up`: on joining, also get the lines the server still keeps (its last two
        minutes by default), not only those spoken from now on."""
        super().__init__(url, options)
        self.catch_up = catch_up
        if not LANGUAGE_PATTERN.fullmatch(language):
            raise ValueError(f"language must be two lowercase letters (ISO 639-1), got {language!r}")
        self.session_id = normalise_session_id(session_id)
        self.language = language
        self.source_language: str | None = None
        self.connection_id: str | None = None
        self.speaker_away = False
        self._speaker_heard_on: Link | None = None
        self.captions = CaptionSequencer(self.options.reorder_window_seconds)
        self._release_timer: asyncio.TimerHandle | None = None

    @property
    def last_seq(self) -> int | None:
        return self.captions.last_seq

    async def start(self) -> dict[str, Any]:
        """Connect and join; returns sessionJoined. A refused join puts the client in FAILED and
        raises RequestRefusedError carrying the sentence."""
        async with self._starting():
            joining = describe("joining", sessionId=self.session_id, language=self.language)
            link, answer = await self._opening_request(
                ClientState.JOINING, joining, Action.JOIN_SESSION, MessageType.SESSION_JOINED, self._join_fields()
            )
            self._on_rejoined(answer)
            self._became_live(link, describe("joined", **{**answer, "language": self.language}))
            self._after_rejoin(link, answer)
            return answer

    async def leave(self) -> None:
        """leaveSession, then close. The session's end, if it comes first, counts as leaving."""
        if self._state.terminal:
            return
        if self._state == ClientState.LIVE:
            answers = (MessageType.SESSION_LEFT, MessageType.SESSION_ENDED)
            try:
                answer = await self._request(Action.LEAVE_SESSION, answers, again_after_drop=True)
            except (RequestRefusedError, LinkClosedError, NoAnswerError):
                answer = {}  # the seat is released when the connection closes anyway
            if answer.get("type") == MessageType.SESSION_ENDED:
                self._before_end()
                self._end(answer)
        self._set_state(ClientState.LEFT, describe("left"))
        await self._shutdown()

    # ------------------------------------------------------------ SessionClient hooks

    def _join_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"sessionId": self.session_id, "targetLanguage": self.language}
        if self.captions.resume_after is not None:
            fields["lastSeq"] = self.captions.resume_after
        elif self.catch_up:
            fields["lastSeq"] = 0
        return fields

    def _rejoin(self, after_drop: bool) -> Rejoin:
        if after_drop:
            return Rejoin(Action.JOIN_SESSION, MessageType.SESSION_JOINED, self._join_fields())
        fields = {**self._join_fields(), "role": Role.LISTENER.value}
        return Rejoin(Action.REFRESH_CONNECTION, MessageType.CONNECTION_REFRESH_COMPLETE, fields)

    def _on_rejoined(self, answer: dict[str, Any]) -> None:
        if answer["type"] == MessageType.SESSION_JOINED:
            self.session_id = answer.get("sessionId", self.session_id)
            self.source_language = answer.get("sourceLanguage", self.source_language)
            self.connection_id = answer.get("connectionId", self.connection_id)

    def _after_rejoin(self, link: Link, answer: dict[str, Any]) -> None:
        # The answer says how the speaker was once the seat existed: a speakerAway or
        # speakerReturned sent while it was being taken may have gone to the closing connection
        # or to none. A notice that already came on this link is at least as new (its listener
        # query found the seat), so it wins.
        if self._speaker_heard_on is link:
            return
        away = answer.get("speakerAway") is True
        if away and not self.speaker_away:
            self.speaker_away = True
            self._notice(NoticeKind.SPEAKER_AWAY, describe("speakerAwayOnJoin"), answer)
        elif self.speaker_away and not away:
            self.speaker_away = False
            self._notice(NoticeKind.SPEAKER_RETURNED, describe("speakerReturned"), answer)

    def _on_session_message(self, link: Link, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == MessageType.CAPTION:
            caption = Caption.from_message(message)
            if caption is not None:
                self._show(self.captions.accept(caption))
        elif kind in (MessageType.SPEAKER_AWAY, MessageType.SPEAKER_RETURNED):
            self._speaker_heard_on = link
            self._on_speaker_notice(message)

    def _on_speaker_notice(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == MessageType.SPEAKER_AWAY and not self.speaker_away:
            self.speaker_away = True
            self._notice(NoticeKind.SPEAKER_AWAY, describe("speakerAway", **message), message)
        elif kind == MessageType.SPEAKER_RETURNED and self.speaker_away:
            self.speaker_away = False
            self._notice(NoticeKind.SPEAKER_RETURNED, describe("speakerReturned"), message)

    def _before_end(self) -> None:
        self._show(self.captions.flush())

    # ------------------------------------------------------------ captions

    def _show(self, captions: list[Caption]) -> None:
        for caption in captions:
            self._emit(CaptionReceived(caption))
        self._schedule_release()

    def _schedule_release(self) -> None:
        deadline = self.captions.next_deadline()
        if deadline is None or self._release_timer is not None:
            return
        self._release_timer = asyncio.get_running_loop().call_later(
            max(0.0, deadline - time.monotonic()), self._release_held
        )

    def _release_held(self) -> None:
        self._release_timer = None
        if not self._state.terminal:
            self._show(self.captions.release_due())
