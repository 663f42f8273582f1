"""Common openings of the reliability tests, each client from its own source address."""

from __future__ import annotations

from typing import Any

from tests.e2e.client import ProtocolClient, Stack

from .wire import connect_from, new_address

# On a loaded machine a cold function environment takes seconds: a setup step's wait, not a promise.
SETUP_REPLY_SECONDS = 90.0


async def speaker_with_session(
    stack: Stack, token: str | None = None, keepalive: float | None = None
) -> tuple[ProtocolClient, dict[str, Any]]:
    speaker = await connect_from(stack, new_address(), token or stack.new_speaker_token(), keepalive=keepalive)
    created = await speaker.request("createSession", SETUP_REPLY_SECONDS, sourceLanguage="en")
    assert created["type"] == "sessionCreated", created
    return speaker, created


async def listener_in(
    stack: Stack, session_id: str, language: str = "es", address: str | None = None, keepalive: float | None = None
):
    listener = await connect_from(stack, address or new_address(), keepalive=keepalive)
    joined = await listener.request("joinSession", SETUP_REPLY_SECONDS, sessionId=session_id, targetLanguage=language)
    assert joined["type"] == "sessionJoined", joined
    return listener, joined
