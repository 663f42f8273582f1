"""What the client raises. Every error carries the plain sentence to show a person."""

from __future__ import annotations

from typing import Any


class LiveSessionError(Exception):
    """Root of this client's errors; `sentence` is what to tell the user."""

    def __init__(self, sentence: str) -> None:
        super().__init__(sentence)
        self.sentence = sentence


class RequestRefusedError(LiveSessionError):
    """The server answered a request with an `error` message."""

    def __init__(self, sentence: str, message: dict[str, Any]) -> None:
        super().__init__(sentence)
        self.message = message
        self.code: str | None = message.get("code")
        self.retry_after: int | None = message.get("retryAfter") if type(message.get("retryAfter")) is int else None


class ConnectFailedError(LiveSessionError):
    """The WebSocket could not be opened: refused handshake (`status`) or unreachable (status None)."""

    def __init__(self, sentence: str, status: int | None = None) -> None:
        super().__init__(sentence)
        self.status = status


class LinkClosedError(LiveSessionError):
    """The connection closed before the server answered."""


class NoAnswerError(LiveSessionError):
    """The server did not answer a request in time."""


class ClientStoppedError(LiveSessionError):
    """The client has left, the session ended, or reconnecting gave up: nothing more can be sent."""
