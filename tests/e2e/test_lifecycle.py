"""Time-driven rules, on the small stack where minutes are seconds: refresh and close warnings on
heartbeat replies, the sweeper closing silent connections, and expired sessions ending."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from .client import Stack, assert_error, assert_message, status_when
from .conftest import TEST_TIMEOUT_SECONDS
from .runner import run_with_clients_closed
from .stacks import SMALL_KEEPALIVE_SECONDS, SMALL_PARAMETERS, started_stack, warm_up

pytestmark = pytest.mark.e2e

# See SMALL_PARAMETERS in stacks.py.
HEARTBEAT_TIMEOUT_SECONDS = 4
SWEEP_SECONDS = 1

# The ageing listener must connect and join while still young: on a 2-core machine running the
# suite on three workers that can take longer than the small stack's 1.2 s, so it ages on a stack
# of its own with 3 s to refresh and 4.8 s to the warning.
AGING_REFRESH_SECONDS = 0.05 * 60
AGING_WARNING_SECONDS = 0.08 * 60
AGING_PARAMETERS = {
    **SMALL_PARAMETERS,
    "CONNECTION_REFRESH_MINUTES": "0.05",
    "CONNECTION_WARNING_MINUTES": "0.08",
    "CONNECTION_MAX_MINUTES": "0.2",
}


@pytest.fixture(scope="module")
def aging_stack() -> Iterator[Stack]:
    with started_stack(AGING_PARAMETERS, keepalive=SMALL_KEEPALIVE_SECONDS, warm_environments=1) as running:
        asyncio.run(run_with_clients_closed(warm_up(running), TEST_TIMEOUT_SECONDS))
        yield running


async def heartbeat_replies(client, count: int) -> list[dict]:
    """Send a heartbeat and collect the next `count` messages."""
    await client.send("heartbeat")
    return [await client.receive() for _ in range(count)]


YOUNG = ["heartbeatAck"]
DUE_FOR_REFRESH = ["heartbeatAck", "connectionRefreshRequired"]
DUE_FOR_WARNING = ["heartbeatAck", "connectionRefreshRequired", "connectionWarning"]


def expected_replies(youngest: float, oldest: float) -> list[list[str]]:
    """What a heartbeat may get back when the server saw the connection between these ages."""
    phases = [(0.0, YOUNG), (AGING_REFRESH_SECONDS, DUE_FOR_REFRESH), (AGING_WARNING_SECONDS, DUE_FOR_WARNING)]
    ends = [start for start, _ in phases[1:]] + [float("inf")]
    return [types for (start, types), end in zip(phases, ends, strict=True) if youngest < end and oldest >= start]


async def test_heartbeat_replies_gain_refresh_then_warning_as_a_listener_ages(aging_stack: Stack):
    # GIVEN a listener that heartbeats on its own, from its first second on
    _, created = await aging_stack.speaker_with_session()
    session_id = created["sessionId"]
    opening = time.monotonic()
    listener = await aging_stack.connect(keepalive=False)
    opened = time.monotonic()
    assert (await listener.request("joinSession", sessionId=session_id, targetLanguage="fr"))["type"] == (
        "sessionJoined"
    )
    # WHEN it heartbeats until its replies carry the warning (well before the 12 s close)
    seen = []
    while DUE_FOR_WARNING not in seen and time.monotonic() - opening < AGING_WARNING_SECONDS + 5:
        sent = time.monotonic()
        await listener.send("heartbeat")
        # The ack comes first, however slow the machine; what the same reply adds follows it.
        replies = [await listener.receive(timeout=30)]
        answered = time.monotonic()
        replies += await listener.drain(quiet=0.3)
        # THEN each reply is what the connection's age (known within these bounds) calls for
        types = [reply["type"] for reply in replies]
        assert types in expected_replies(sent - opened, answered - opening), (sent - opened, replies)
        for reply, expected in zip(replies, types, strict=True):
            if expected == "connectionRefreshRequired":
                assert_message(
                    reply,
                    expected,
                    sessionId=session_id,
                    role="listener",
                    targetLanguage="fr",
                    message=...,
                )
            elif expected == "connectionWarning":
                assert_message(reply, expected, remainingMinutes=..., message=...)
                assert type(reply["remainingMinutes"]) is int and reply["remainingMinutes"] >= 0, reply
            else:
                assert_message(reply, expected)
        seen.append(types)
        await asyncio.sleep(0.15)
    # AND the stages came in order, up to the warning. Which of them were seen depends on how
    # fast the machine answers: a heartbeat whose age bounds fall within one stage must get that
    # stage's reply (checked above); on a starved machine the join may outlast the 3 s to the
    # refresh, and then the young stage cannot be asked of its first heartbeat.
    assert DUE_FOR_WARNING in seen, seen
    assert seen == sorted(seen, key=len), seen


async def test_refresh_required_for_a_speaker_has_no_target_language(aging_stack: Stack):
    # GIVEN a speaker that heartbeats every second from its handshake on (on the ageing stack: a
    # connection lives 12 s there, time enough on a starved machine for a slow createSession)
    opening = time.monotonic()
    speaker = await aging_stack.connect(aging_stack.new_speaker_token(), keepalive=False)
    created = await speaker.request_heartbeating("createSession", SMALL_KEEPALIVE_SECONDS, sourceLanguage="en")
    assert created["type"] == "sessionCreated", created
    # WHEN it ages past the refresh and the warning
    replies: list[dict] = []
    while "connectionWarning" not in {reply["type"] for reply in replies}:
        assert time.monotonic() - opening < AGING_WARNING_SECONDS + 5, replies
        await speaker.send("heartbeat")
        replies += [await speaker.expect("heartbeatAck", timeout=30)] + await speaker.drain(quiet=0.3)
        await asyncio.sleep(SMALL_KEEPALIVE_SECONDS / 2)
    # THEN its refresh notice names its session and role, and no target language
    refresh = next(reply for reply in replies if reply["type"] == "connectionRefreshRequired")
    assert_message(refresh, "connectionRefreshRequired", sessionId=created["sessionId"], role="speaker", message=...)
    warning = next(reply for reply in replies if reply["type"] == "connectionWarning")
    assert_message(warning, "connectionWarning", remainingMinutes=..., message=...)
    # AND the first notice follows the ack of the heartbeat that carried it
    assert replies[replies.index(refresh) - 1]["type"] == "heartbeatAck", replies


async def test_silent_connection_is_closed_by_the_server(small_stack: Stack):
    # GIVEN a listener that stops heartbeating, and a speaker that keeps heartbeating
    speaker, created = await small_stack.speaker_with_session()
    # It heartbeats until it has joined: on a loaded machine a join can take longer than the
    # timeout, and a listener silent from its handshake would be closed before its seat is taken.
    silent = await small_stack.connect()
    joined = await silent.request("joinSession", sessionId=created["sessionId"], targetLanguage="es")
    assert joined["type"] == "sessionJoined", joined
    silent.stop_heartbeats()
    # The server saw its last heartbeat at most one keepalive interval before this.
    started = time.monotonic() - SMALL_KEEPALIVE_SECONDS
    # WHEN it stays silent past HEARTBEAT_TIMEOUT_SECONDS THEN the server closes it
    await silent.wait_closed(timeout=HEARTBEAT_TIMEOUT_SECONDS + 4 * SWEEP_SECONDS + 3)
    assert time.monotonic() - started >= HEARTBEAT_TIMEOUT_SECONDS - 0.5, "closed before it was silent long enough"
    # AND its seat is freed, while the heartbeating speaker is still connected
    status = await status_when(speaker, lambda status: status["listenerCount"] == 0)
    assert status["languageDistribution"] == {}, status
    assert speaker.closed is None


async def test_expired_session_ends_for_its_listeners(small_stack: Stack):
    # GIVEN a session with two heartbeating listeners (sessions live 21.6 s in the small stack)
    speaker, created = await small_stack.speaker_with_session()
    session_id = created["sessionId"]
    listeners = [await small_stack.listener_in(session_id, language) for language in ("es", "fr")]
    # WHEN it passes expiresAt THEN the sweeper ends it: each listener gets reason expired
    wait = created["expiresAt"] - time.time() + 4 * SWEEP_SECONDS + 5
    for listener in listeners:
        ended = await listener.receive(timeout=max(wait, 5))
        assert_message(ended, "sessionEnded", sessionId=session_id, reason="expired", message=...)
    # AND it can no longer be joined
    late = await small_stack.connect()
    reply = await late.request("joinSession", sessionId=session_id, targetLanguage="es")
    assert_error(reply, "SESSION_NOT_FOUND", 404, session_id=session_id)
    assert speaker.closed is None


async def test_speaker_refresh_pushes_expiry_forward(small_stack: Stack):
    # GIVEN a session with a heartbeating listener, past half its life
    token = small_stack.new_speaker_token()
    old, created = await small_stack.speaker_with_session(token)
    session_id = created["sessionId"]
    listener = await small_stack.listener_in(session_id, "es")
    await asyncio.sleep(max(0.0, created["expiresAt"] - time.time()) / 2)
    # WHEN the speaker refreshes onto a new connection
    new = await small_stack.connect(token)
    refreshed = await new.request("refreshConnection", sessionId=session_id, role="speaker")
    assert refreshed["type"] == "connectionRefreshComplete", refreshed
    await old.close()
    # THEN the session outlives its original expiresAt: nobody is told it ended, and it can be joined
    await listener.silent_for(created["expiresAt"] - time.time() + 3 * SWEEP_SECONDS)
    late = await small_stack.connect()
    joined = await late.request("joinSession", sessionId=session_id, targetLanguage="fr")
    assert joined["type"] == "sessionJoined", joined
