"""Listener capacity under concurrency, on the shared stack (MAX_LISTENERS_PER_SESSION 20)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from .client import ProtocolClient, Stack, assert_error, assert_message, status_when
from .stacks import CAPACITY

pytestmark = pytest.mark.e2e


async def connect_many(stack: Stack, count: int) -> list[ProtocolClient]:
    """Connections opened one after the other (only the joins need to be simultaneous)."""
    return [await stack.connect() for _ in range(count)]


async def join_all(clients: list[ProtocolClient], session_id: str, language: str = "es") -> list[dict]:
    """Every client sends joinSession at once; their replies, in the clients' order."""
    return await asyncio.gather(
        *(client.request("joinSession", sessionId=session_id, targetLanguage=language) for client in clients)
    )


async def test_thirty_simultaneous_joins_fill_twenty_seats_exactly(stack: Stack):
    # GIVEN a 20-seat session and 30 connected listeners
    speaker, created = await stack.speaker_with_session()
    session_id = created["sessionId"]
    clients = await connect_many(stack, 30)
    # WHEN they all join at once
    replies = await join_all(clients, session_id)
    # THEN exactly 20 get in and 10 are told the session is full
    assert Counter(reply["type"] for reply in replies) == {"sessionJoined": 20, "error": 10}, replies
    for reply in replies:
        if reply["type"] == "error":
            assert_error(reply, "SESSION_FULL", 503, session_id=session_id)
    status = await speaker.request("getSessionStatus")
    assert (status["listenerCount"], status["languageDistribution"]) == (CAPACITY, {"es": CAPACITY}), status
    seated = [client for client, reply in zip(clients, replies, strict=True) if reply["type"] == "sessionJoined"]
    refused = [client for client, reply in zip(clients, replies, strict=True) if reply["type"] == "error"]
    # WHEN one listener leaves THEN a refused one may join
    assert_message(await seated[0].request("leaveSession"), "sessionLeft", sessionId=session_id)
    assert (await refused[0].request("joinSession", sessionId=session_id, targetLanguage="fr"))["type"] == (
        "sessionJoined"
    )
    assert_error(
        await refused[1].request("joinSession", sessionId=session_id, targetLanguage="fr"), "SESSION_FULL", 503
    )
    # WHEN one listener disconnects THEN, once its $disconnect ran, another may join
    await seated[1].close()
    await status_when(speaker, lambda status: status["listenerCount"] == CAPACITY - 1)
    assert (await refused[1].request("joinSession", sessionId=session_id, targetLanguage="de"))["type"] == (
        "sessionJoined"
    )
    status = await speaker.request("getSessionStatus")
    assert status["listenerCount"] == CAPACITY, status
    assert status["languageDistribution"] == {"es": CAPACITY - 2, "fr": 1, "de": 1}, status


async def test_two_joins_racing_for_the_last_seat_seat_exactly_one(stack: Stack):
    # GIVEN a session with one seat left
    speaker, created = await stack.speaker_with_session()
    session_id = created["sessionId"]
    first = await connect_many(stack, CAPACITY - 1)
    assert all(reply["type"] == "sessionJoined" for reply in await join_all(first, session_id))
    # WHEN two listeners join at the same moment
    racers = await connect_many(stack, 2)
    replies = await join_all(racers, session_id, "it")
    # THEN exactly one wins, the other is told the session is full
    assert sorted(reply["type"] for reply in replies) == ["error", "sessionJoined"], replies
    assert_error(next(r for r in replies if r["type"] == "error"), "SESSION_FULL", 503, session_id=session_id)
    status = await speaker.request("getSessionStatus")
    assert (status["listenerCount"], status["languageDistribution"]) == (CAPACITY, {"es": CAPACITY - 1, "it": 1})


async def test_listener_refresh_is_accepted_in_a_full_session(stack: Stack):
    # GIVEN a full session
    speaker, created = await stack.speaker_with_session()
    session_id = created["sessionId"]
    seated = await connect_many(stack, CAPACITY)
    assert all(reply["type"] == "sessionJoined" for reply in await join_all(seated, session_id))
    # WHEN one of its listeners refreshes onto a new connection
    new = await stack.connect()
    refreshed = await new.request("refreshConnection", sessionId=session_id, role="listener", targetLanguage="es")
    # THEN the refresh is accepted (a count above capacity is tolerated while both connections live)
    assert_message(refreshed, "connectionRefreshComplete", sessionId=session_id, role="listener", targetLanguage="es")
    await seated[0].close()
    # AND once the old connection closed, the count is back at capacity and the session still full
    await status_when(speaker, lambda status: status["listenerCount"] == CAPACITY)
    newcomer = await stack.connect()
    reply = await newcomer.request("joinSession", sessionId=session_id, targetLanguage="es")
    assert_error(reply, "SESSION_FULL", 503, session_id=session_id)
