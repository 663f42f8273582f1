"""The speaker reconnect grace over real sockets: a Wi-Fi blip is a notice, not the end."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from .client import Stack
from .conftest import TEST_TIMEOUT_SECONDS
from .runner import run_with_clients_closed
from .stacks import GRACE_PARAMETERS, GRACE_SECONDS, started_stack, warm_up


@pytest.fixture(scope="module")
def grace_stack() -> Iterator[Stack]:
    with started_stack(GRACE_PARAMETERS, schedule_seconds=1, warm_environments=1) as running:
        asyncio.run(run_with_clients_closed(warm_up(running), TEST_TIMEOUT_SECONDS))
        yield running


async def test_a_speaker_who_drops_and_reclaims_within_the_grace_keeps_the_service(grace_stack: Stack):
    token = grace_stack.new_speaker_token()
    speaker, created = await grace_stack.speaker_with_session(token)
    session_id = created["sessionId"]
    listener = await grace_stack.listener_in(session_id, "es")

    await speaker.abort()  # the laptop's Wi-Fi drops: no close frame

    away = await listener.expect("speakerAway")
    assert (away["sessionId"], away["reconnectGraceSeconds"]) == (session_id, GRACE_SECONDS)
    late = await grace_stack.connect()
    joined = await late.request("joinSession", sessionId=session_id, targetLanguage="fr")
    assert joined["type"] == "sessionJoined" and joined["speakerAway"] is True

    back = await grace_stack.connect(token)
    refreshed = await back.request("refreshConnection", sessionId=session_id, role="speaker")
    assert (refreshed["type"], refreshed.get("role")) == ("connectionRefreshComplete", "speaker"), refreshed
    assert (await listener.expect("speakerReturned"))["sessionId"] == session_id
    assert (await late.expect("speakerReturned"))["sessionId"] == session_id

    await asyncio.sleep(GRACE_SECONDS + 2)  # past the grace and a sweep: nothing ends
    status = await back.request("getSessionStatus")
    assert (status["type"], status["listenerCount"]) == ("sessionStatus", 2)
    ended = await back.request("endSession")
    assert ended["type"] == "sessionEnded"
    assert (await listener.expect("sessionEnded"))["reason"] == "speakerEnded"


async def test_an_unreclaimed_session_ends_for_every_listener_after_the_grace(grace_stack: Stack):
    speaker, created = await grace_stack.speaker_with_session()
    session_id = created["sessionId"]
    listeners = [await grace_stack.listener_in(session_id, language) for language in ("es", "de")]

    await speaker.close()

    for listener in listeners:
        assert (await listener.expect("speakerAway"))["sessionId"] == session_id
    for listener in listeners:
        ended = await listener.expect("sessionEnded", timeout=GRACE_SECONDS + 10)
        assert (ended["sessionId"], ended["reason"]) == (session_id, "speakerDisconnected")
    probe = await grace_stack.connect()
    refused = await probe.request("joinSession", sessionId=session_id, targetLanguage="es")
    assert refused["code"] == "SESSION_NOT_FOUND"


async def test_another_user_cannot_reclaim_the_session(grace_stack: Stack):
    speaker, created = await grace_stack.speaker_with_session()
    session_id = created["sessionId"]
    listener = await grace_stack.listener_in(session_id, "es")
    await speaker.abort()
    await listener.expect("speakerAway")

    intruder = await grace_stack.connect(grace_stack.new_speaker_token())
    refused = await intruder.request("refreshConnection", sessionId=session_id, role="speaker")

    assert (refused["code"], refused["sessionId"]) == ("FORBIDDEN", session_id)
    ended = await listener.expect("sessionEnded", timeout=GRACE_SECONDS + 10)
    assert ended["reason"] == "speakerDisconnected"
