"""A stack started in gateway mode (HeartbeatAnsweredBy=gateway, decision 44): the MOCK route
answers heartbeats, the sweeper closes by lastActiveAt and pushes the refresh notices. The small
stack's durations (refresh due at 1.2 s, warning at 1.8 s, silent after 4 s, a sweep a second)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from .client import Stack, assert_message, now_ms, status_when
from .conftest import TEST_TIMEOUT_SECONDS
from .runner import run_with_clients_closed
from .stacks import SMALL_KEEPALIVE_SECONDS, SMALL_PARAMETERS, started_stack, warm_up

pytestmark = pytest.mark.e2e

GATEWAY_PARAMETERS = {**SMALL_PARAMETERS, "HeartbeatAnsweredBy": "gateway"}
REFRESH_AGE_MS = 0.02 * 60_000
WARNING_AGE_MS = 0.03 * 60_000
HEARTBEAT_TIMEOUT_SECONDS = 4
SWEEP_SECONDS = 1
# A sweep starts each second; on a loaded 2-core machine its notices may take a while more.
DELIVERY_SLACK_MS = 3000


@pytest.fixture(scope="module")
def gateway_stack() -> Iterator[Stack]:
    with started_stack(
        GATEWAY_PARAMETERS, keepalive=SMALL_KEEPALIVE_SECONDS, schedule_seconds=SWEEP_SECONDS, warm_environments=1
    ) as stack:
        asyncio.run(run_with_clients_closed(warm_up(stack), TEST_TIMEOUT_SECONDS))
        yield stack


async def test_a_heartbeating_client_stays_and_a_silent_one_is_closed(gateway_stack: Stack):
    # GIVEN a speaker that heartbeats every second and a listener that never does
    speaker, created = await gateway_stack.speaker_with_session()
    silent = await gateway_stack.connect(keepalive=False)
    # (its silence starts no earlier than the join it sends, however late the reply comes)
    started = time.monotonic()
    joined, _ = await silent.request_past_notices("joinSession", sessionId=created["sessionId"], targetLanguage="es")
    assert joined["type"] == "sessionJoined", joined
    # WHEN the listener stays silent past HEARTBEAT_TIMEOUT_SECONDS THEN the sweeper closes it
    await silent.wait_closed(timeout=HEARTBEAT_TIMEOUT_SECONDS + 4 * SWEEP_SECONDS + 3)
    assert time.monotonic() - started >= HEARTBEAT_TIMEOUT_SECONDS - 1.0, "closed before it was silent long enough"
    # AND its seat is freed, while the speaker, older than the timeout by now, is still connected
    await status_when(speaker, lambda status: status["listenerCount"] == 0)
    assert speaker.closed is None
    acks = [reply for reply in speaker.heartbeat_replies if reply["type"] == "heartbeatAck"]
    assert acks, speaker.heartbeat_replies
    assert all(set(ack) == {"type", "timestamp"} for ack in acks), acks  # the MOCK's template


async def test_refresh_notices_arrive_within_a_sweep_of_being_due_without_a_heartbeat(gateway_stack: Stack):
    # GIVEN a listener that sends no heartbeat at all (so no reply could carry a notice)
    _, created = await gateway_stack.speaker_with_session()
    opening_ms = now_ms()
    listener = await gateway_stack.connect(keepalive=False)
    joined, notices = await listener.request_past_notices(
        "joinSession", sessionId=created["sessionId"], targetLanguage="fr"
    )
    assert joined["type"] == "sessionJoined", joined
    # WHEN it lives past the warning age (still short of the 4 s silence)
    # (a sweep that finds both due posts them at once, in either order)
    while {notice["type"] for notice in notices} != {"connectionRefreshRequired", "connectionWarning"}:
        notices.append(await listener.receive(timeout=(WARNING_AGE_MS + DELIVERY_SLACK_MS) / 1000 + SWEEP_SECONDS))
    # THEN the sweeper pushed connectionRefreshRequired once due, not before (how soon after is
    # the domain's rule, tests/domain/test_gateway_heartbeats.py: at the first sweep)
    refresh = next(notice for notice in notices if notice["type"] == "connectionRefreshRequired")
    assert_message(
        refresh,
        "connectionRefreshRequired",
        sessionId=created["sessionId"],
        role="listener",
        targetLanguage="fr",
        message=...,
    )
    assert refresh["timestamp"] >= opening_ms + REFRESH_AGE_MS
    # AND then connectionWarning, once due
    warning = next(notice for notice in notices if notice["type"] == "connectionWarning")
    assert_message(warning, "connectionWarning", remainingMinutes=..., message=...)
    assert warning["timestamp"] >= opening_ms + WARNING_AGE_MS
