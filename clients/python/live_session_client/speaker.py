"""A speaker: creates a session, keeps it alive through refreshes and drops (reclaiming it within
the server's grace period), sends captions, and ends it."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from live_session_client.errors import ClientStoppedError
from live_session_client.events import ClientState
from live_session_client.protocol import LANGUAGE_PATTERN, Action, MessageType, Role
from live_session_client.sentences import describe
from live_session_client.session_client import ClientOptions, Rejoin, SessionClient

TokenProvider = Callable[[], str | Awaitable[str]]


class SpeakerClient(SessionClient):
    """
        speaker = SpeakerClient(url, token=id_token, source_language="en")
        session_id = await speaker.start()
        await speaker.send_caption("Welcome, everyone.")
        await speaker.end()

    `token_provider` (optional) returns a fresh Cognito token; it is asked before each new
    connection after the first, so a refresh at 100 minutes does not present a token that
    expired at 60.
    """

    def __init__(
        self,
        url: str,
        token: str,
        source_language: str = "en",
        quality_tier: str | None = None,
        options: ClientOptions | None = None,
        token_provider: TokenProvider | None = None,
    ) -> None:
        super().__init__(url, options)
        if not token:
            raise ValueError("a speaker needs a token")
        if not LANGUAGE_PATTERN.fullmatch(source_language):
            raise ValueError(f"source language must be two lowercase letters (ISO 639-1), got {source_language!r}")
        self._current_token = token
        self._token_provider = token_provider
        self.source_language = source_language
        self.quality_tier = quality_tier
        self.expires_at: int | None = None
        self._links_opened = 0

    async def start(self) -> str:
        """Connect and create the session; returns its id. A refusal puts the client in FAILED
        and raises RequestRefusedError carrying the sentence."""
        fields: dict[str, Any] = {"sourceLanguage": self.source_language}
        if self.quality_tier is not None:
            fields["qualityTier"] = self.quality_tier
        async with self._starting():
            creating = describe("creating", language=self.source_language)
            link, answer = await self._opening_request(
                ClientState.CREATING, creating, Action.CREATE_SESSION, MessageType.SESSION_CREATED, fields
            )
            self.session_id = answer["sessionId"]
            self.expires_at = answer.get("expiresAt")
            self._became_live(link, describe("created", sessionId=self.session_id))
            return self.session_id

    async def status(self) -> dict[str, Any]:
        """sessionStatus: listenerCount, languageDistribution, sessionDurationSeconds."""
        return await self._request(Action.GET_SESSION_STATUS, (MessageType.SESSION_STATUS,), again_after_drop=True)

    async def send_caption(self, text: str, *, final: bool = True, line_id: str | None = None) -> int:
        """Send one line; returns the seq the server gave it. Not repeated by itself if the
        connection drops before the answer (LinkClosedError): the line may have gone out, and a
        second copy would get a new seq, so the caller decides. A caller that sends it again
        under the same ``line_id`` is safe: listeners' clients show the same final words of a
        line once (decision 78)."""
        fields: dict[str, Any] = {"text": text, "final": final}
        if line_id is not None:
            fields["lineId"] = line_id
        accepted = await self._request(Action.SEND_CAPTION, (MessageType.CAPTION_ACCEPTED,), **fields)
        return accepted["seq"]

    async def end(self) -> dict[str, Any] | None:
        """endSession and wait for sessionEnded; then close. None if already over."""
        if self._state.terminal:
            return None
        try:
            answer = await self._request(Action.END_SESSION, (MessageType.SESSION_ENDED,), again_after_drop=True)
        except ClientStoppedError:
            return None
        self._end(answer)
        await self._shutdown()
        return answer

    # ------------------------------------------------------------ SessionClient hooks

    def _token(self) -> str | None:
        return self._current_token

    async def _refresh_token(self) -> bool:
        if self._token_provider is None:
            return False
        token = self._token_provider()
        if inspect.isawaitable(token):
            token = await token
        self._current_token = token
        return True

    async def _open_link(self):
        # Every connection after the first presents a fresh token when there is a way to get one.
        if self._links_opened and self._token_provider is not None:
            await self._refresh_token()
        self._links_opened += 1
        return await super()._open_link()

    def _rejoin(self, after_drop: bool) -> Rejoin:
        fields = {"sessionId": self.session_id, "role": Role.SPEAKER.value}
        return Rejoin(Action.REFRESH_CONNECTION, MessageType.CONNECTION_REFRESH_COMPLETE, fields)

    def _on_rejoined(self, answer: dict[str, Any]) -> None:
        self.expires_at = answer.get("expiresAt", self.expires_at)
