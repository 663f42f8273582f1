"""One root error, one subclass per error code of the wire protocol.

Each error carries its protocol code and HTTP-like status; ``handler.py`` is the one place that
turns them into ``error`` messages, so nothing internal ever reaches a client.
"""

from __future__ import annotations

from typing import Any


class SessionServiceError(Exception):
    """Root of every error a client may be told about."""

    code = "INTERNAL_ERROR"
    status = 500
    default_message = "Something went wrong on our side; please try again."

    def __init__(
        self,
        message: str | None = None,
        *,
        session_id: str | None = None,
        field: str | None = None,
        reason: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message
        self.session_id = session_id
        self.field = field
        self.reason = reason
        self.retry_after = retry_after

    @property
    def details(self) -> dict[str, Any] | None:
        if self.field is None:
            return None
        return {"field": self.field, "reason": self.reason or self.message}


class InvalidParametersError(SessionServiceError):
    code, status = "INVALID_PARAMETERS", 400
    default_message = "A required field is missing or has the wrong type."


class InvalidLanguageError(SessionServiceError):
    code, status = "INVALID_LANGUAGE", 400
    default_message = "Language codes are two lowercase letters (ISO 639-1), like 'en'."


class UnsupportedLanguageError(SessionServiceError):
    code, status = "UNSUPPORTED_LANGUAGE", 400
    default_message = "That language cannot be translated and spoken yet."


class InvalidSessionIdError(SessionServiceError):
    code, status = "INVALID_SESSION_ID", 400
    default_message = "Session ids look like 'faithful-shepherd-427'."


class InvalidActionError(SessionServiceError):
    code, status = "INVALID_ACTION", 400
    default_message = "That action is unknown or not allowed on this connection now."


class UnauthorizedError(SessionServiceError):
    code, status = "UNAUTHORIZED", 401
    default_message = "Sign in as a speaker to do this."


class ForbiddenError(SessionServiceError):
    code, status = "FORBIDDEN", 403
    default_message = "Only the session's speaker may do this."


class SessionNotFoundError(SessionServiceError):
    code, status = "SESSION_NOT_FOUND", 404
    default_message = "No active session has that id; check it with the speaker."


class RateLimitExceededError(SessionServiceError):
    code, status = "RATE_LIMIT_EXCEEDED", 429
    default_message = "Too many requests; please wait a moment and try again."


class SessionFullError(SessionServiceError):
    code, status = "SESSION_FULL", 503
    default_message = "This session has reached its listener capacity."


class ServiceUnavailableError(SessionServiceError):
    code, status = "SERVICE_UNAVAILABLE", 503
    default_message = "The service is temporarily unavailable; please try again shortly."


class InternalError(SessionServiceError):
    code, status = "INTERNAL_ERROR", 500


class MisconfigurationError(InternalError):
    """The deployment is wrong (a missing permission or table, a request DynamoDB rejects as
    invalid): never an outage, so nothing fails open on it."""


class SessionIdExhaustedError(ServiceUnavailableError):
    """Every try to find a free session id collided (requirement 3)."""

    default_message = "Could not allocate a session id right now; please try again."


class ConfigurationError(Exception):
    """The environment holds a bad setting; the message names the variable."""
