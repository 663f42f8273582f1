"""Rate limits over the wire, on a stack of their own: every client here shares 127.0.0.1, so
tight per-IP limits would break any other test on the same stack.

The tests of this module run in file order and share the stack's windows: joins first (the
guessing test locks joins out for the rest of its minute), then sessions per user, and the
connection-attempt limit last (it locks the IP out of handshakes for the rest of its minute).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from websockets.exceptions import InvalidStatus

from .client import Stack, assert_error, unknown_session_id
from .stacks import started_stack

pytestmark = pytest.mark.e2e

FAILED_JOINS_PER_MIN = 5
SESSIONS_PER_HOUR = 2
CONNECTION_ATTEMPTS_PER_MIN = 20


@pytest.fixture(scope="module")
def limited_stack() -> Iterator[Stack]:
    limits = {
        "RATE_LIMIT_FAILED_JOINS_PER_MIN": str(FAILED_JOINS_PER_MIN),
        "RATE_LIMIT_SESSIONS_PER_HOUR": str(SESSIONS_PER_HOUR),
        "RATE_LIMIT_CONNECTION_ATTEMPTS_PER_MIN": str(CONNECTION_ATTEMPTS_PER_MIN),
    }
    with started_stack(limits) as running:
        yield running


async def start_of_a_fresh_minute_window(seconds_needed: float) -> None:
    """Fixed one-minute windows: wait for the next one when this one is about to end."""
    left = 60 - time.time() % 60
    if left < seconds_needed:
        await asyncio.sleep(left + 0.1)


async def test_joins_failing_on_language_do_not_count_as_guessing(limited_stack: Stack):
    # GIVEN a real session, and a listener who picks languages it cannot have, more often than
    # the failed-join limit
    _, created = await limited_stack.speaker_with_session()
    listener = await limited_stack.connect()
    for language in ["sw", "EN"] * FAILED_JOINS_PER_MIN:
        reply = await listener.request("joinSession", sessionId=created["sessionId"], targetLanguage=language)
        assert reply["code"] in ("UNSUPPORTED_LANGUAGE", "INVALID_LANGUAGE"), reply
    # WHEN it then picks a good one THEN it gets in: only id guessing is slowed down
    joined = await listener.request("joinSession", sessionId=created["sessionId"], targetLanguage="es")
    assert joined["type"] == "sessionJoined", joined


async def test_guessing_session_ids_is_rate_limited_after_five_failures(limited_stack: Stack):
    await start_of_a_fresh_minute_window(seconds_needed=10)
    guesser = await limited_stack.connect()
    # GIVEN five failed joins from this IP: unknown ids and malformed ids both count
    for _ in range(3):
        reply = await guesser.request("joinSession", sessionId=unknown_session_id(), targetLanguage="es")
        assert reply["code"] == "SESSION_NOT_FOUND", reply
    for guess in ("hello", "amen"):
        reply = await guesser.request("joinSession", sessionId=guess, targetLanguage="es")
        assert reply["code"] == "INVALID_SESSION_ID", reply
    # WHEN it guesses once more THEN it is refused with 429 and told when to retry
    session_id = unknown_session_id()
    reply = await guesser.request("joinSession", sessionId=session_id, targetLanguage="es")
    assert_error(reply, "RATE_LIMIT_EXCEEDED", 429, session_id=session_id)
    assert 1 <= reply["retryAfter"] <= 60, reply
    # AND the connection stays usable
    assert (await guesser.request("heartbeat"))["type"] == "heartbeatAck"


async def test_session_creation_is_rate_limited_per_speaker(limited_stack: Stack):
    token = limited_stack.new_speaker_token()
    # GIVEN a speaker who created as many sessions as the hour allows
    for _ in range(SESSIONS_PER_HOUR):
        await limited_stack.speaker_with_session(token)
    # WHEN it creates one more THEN it is refused with 429 and a retryAfter within the hour
    speaker = await limited_stack.connect(token)
    reply = await speaker.request("createSession", sourceLanguage="en")
    assert_error(reply, "RATE_LIMIT_EXCEEDED", 429)
    assert 1 <= reply["retryAfter"] <= 3600, reply
    # AND another speaker is not affected
    _, created = await limited_stack.speaker_with_session(limited_stack.new_speaker_token())
    assert created["type"] == "sessionCreated"


async def test_too_many_connection_attempts_are_refused_at_the_handshake_with_429(limited_stack: Stack):
    # WHEN one IP keeps opening connections (enough to overflow a window even if one ends midway)
    statuses = []
    for _ in range(2 * CONNECTION_ATTEMPTS_PER_MIN + 2):
        try:
            client = await limited_stack.connect(keepalive=False)
        except InvalidStatus as refused:
            statuses.append(refused.response.status_code)
            break
        statuses.append(101)
        await client.close()
    # THEN, after honest attempts got in, the handshake is refused with 429
    assert statuses[0] == 101, statuses
    assert statuses[-1] == 429, statuses
