"""Everything this client tells a person, in one table so it can be translated: each error code of
docs/protocol.md as a plain sentence with what to do next, and the client's own situations.

Placeholders in braces are filled from the server's message (`retryAfter`, `sessionId`, ...) and
the client's own figures; a missing one is left out of the sentence rather than shown as `{x}`.
"""

from __future__ import annotations

import string
from typing import Any

from live_session_client.protocol import ErrorCode

ERROR_SENTENCES: dict[str, str] = {
    ErrorCode.INVALID_PARAMETERS: (
        "The request was missing something or had a wrong value ({field}). This is a bug in the app; please report it."
    ),
    ErrorCode.INVALID_LANGUAGE: (
        "That is not a language code. Use two lowercase letters, for example 'es' for Spanish."
    ),
    ErrorCode.UNSUPPORTED_LANGUAGE: (
        "That language cannot be translated and spoken yet. Please choose another language."
    ),
    ErrorCode.INVALID_SESSION_ID: (
        "That does not look like a session id. Ids look like 'faithful-shepherd-427'; check it with the speaker."
    ),
    ErrorCode.INVALID_ACTION: (
        "The server did not accept that step at this moment. This is a bug in the app; please report it."
    ),
    ErrorCode.UNAUTHORIZED: "You need to sign in as a speaker to do that. Sign in and try again.",
    ErrorCode.FORBIDDEN: ("Only the session's speaker may do that. Sign in with the account that started the session."),
    ErrorCode.SESSION_NOT_FOUND: (
        "There is no live session with that id. Check the id with the speaker; the session may have ended."
    ),
    ErrorCode.RATE_LIMIT_EXCEEDED: "Too many tries from here. Wait {retryAfter} seconds and try again.",
    ErrorCode.SESSION_FULL: (
        "This session is full. Try again in a few minutes, when someone has left, or ask the speaker."
    ),
    ErrorCode.SERVICE_UNAVAILABLE: (
        "The service is busy or briefly unavailable. It will try again by itself; wait a moment."
    ),
    ErrorCode.INTERNAL_ERROR: "Something went wrong on the server. Try again; if it keeps happening, report it.",
}

UNKNOWN_ERROR_SENTENCE = "The server refused the request ({code}): {message}"

# The client's own situations, shown as they happen.
STATE_SENTENCES: dict[str, str] = {
    "connecting": "Connecting to {url} ...",
    "joining": "Joining session {sessionId} ({language}) ...",
    "creating": "Creating a session ({language}) ...",
    "joined": "Listening to session {sessionId} in {language}, spoken in {sourceLanguage}.",
    "created": "Session {sessionId} is live. Listeners join with this id.",
    "refreshing": "Refreshing the connection (the old one stays open until the new one is ready) ...",
    "refreshed": "Connection refreshed; nothing was missed.",
    "refreshRetry": "The connection refresh did not work yet; trying again in {delay} seconds.",
    "reconnecting": "Connection lost. Reconnecting in {delay} seconds (attempt {attempt}) ...",
    "reconnected": "Reconnected; back in session {sessionId}.",
    "speakerAway": (
        "The speaker's connection dropped. Waiting up to {reconnectGraceSeconds} seconds for them to come back."
    ),
    "speakerAwayOnJoin": "The speaker is reconnecting; the service continues when they are back.",
    "speakerReturned": "The speaker is back.",
    "leaving": "Leaving the session ...",
    "left": "You left the session.",
    "ending": "Ending the session ...",
    "gaveUp": (
        "Could not reconnect for {seconds} seconds, so this client stopped trying. Check the network and join again."
    ),
    "connectionWarning": "This connection closes in about {remainingMinutes} minutes and could not be refreshed yet.",
    "endedWhileAway": "The session ended while this client was disconnected.",
}

END_SENTENCES: dict[str, str] = {
    "speakerDisconnected": "The speaker disconnected and did not come back, so the session has ended.",
    "speakerEnded": "The speaker ended the session.",
    "expired": "The session reached its time limit and has ended.",
}
UNKNOWN_END_SENTENCE = "The session has ended."

# A refused WebSocket handshake, by HTTP status (docs/protocol.md "Connecting").
HANDSHAKE_SENTENCES: dict[int, str] = {
    401: "The speaker sign-in was refused (it may have expired). Sign in again and restart.",
    403: "The server refused the connection. Check the address.",
    429: "Too many connection attempts from this network. Trying again shortly.",
    500: "The server is misconfigured. Tell whoever runs it.",
    503: "The service is briefly unavailable. Trying again shortly.",
}
UNREACHABLE_SENTENCE = "Cannot reach the server at {url}. Check the address and the network."


class _Lenient(dict):
    def __missing__(self, key: str) -> str:
        return "?"


def _fill(template: str, fields: dict[str, Any]) -> str:
    present = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    missing = {name for name in present if fields.get(name) in (None, "")}
    if missing:
        # Leave out a parenthesised placeholder entirely, else say "a moment" for numbers.
        for name in missing:
            template = template.replace(f" ({{{name}}})", "").replace(f"{{{name}}} seconds", "a few seconds")
    # 30.0 reads "30" to a person; 0.5 stays "0.5".
    shown = {name: f"{value:g}" if isinstance(value, float) else value for name, value in fields.items()}
    return template.format_map(_Lenient(shown))


def explain_error(message: dict[str, Any]) -> str:
    """The plain sentence for an `error` message."""
    code = message.get("code")
    fields = dict(message)
    details = message.get("details")
    if isinstance(details, dict):
        fields.setdefault("field", details.get("field"))
    template = ERROR_SENTENCES.get(code) if isinstance(code, str) else None
    return _fill(template or UNKNOWN_ERROR_SENTENCE, fields)


def explain_end(reason: str | None) -> str:
    return END_SENTENCES.get(reason or "", UNKNOWN_END_SENTENCE)


def explain_handshake(status: int) -> str:
    return HANDSHAKE_SENTENCES.get(status, f"The server refused the connection (HTTP {status}).")


def describe(situation: str, **fields: Any) -> str:
    return _fill(STATE_SENTENCES[situation], fields)
