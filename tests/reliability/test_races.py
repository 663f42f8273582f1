"""Races and storms over real sockets, each ending with the invariant check. Sizes fit `make
test` on a shared 2-core machine (RACE_* below); the full sizes (1,000 joins into 500 seats, 500
disconnects) are `make bench`'s."""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

import pytest

from tests.e2e.client import ProtocolClient, Stack, assert_error

from .checks import Tables, assert_invariants
from .conftest import CAPACITY
from .figures import record
from .sessions import listener_in, speaker_with_session
from .wire import connect_from, new_address

pytestmark = pytest.mark.e2e

JOINERS = int(os.environ.get("RACE_JOINERS", str(CAPACITY * 3 // 2)))  # 45 into 30 seats
JOIN_ADDRESSES = int(os.environ.get("RACE_ADDRESSES", "15"))
# A storm on a shared 2-core machine queues for cores: the replies' wait, not a speed promise.
STORM_REPLY_SECONDS = 150.0
# ...and a client that waits that long must heartbeat, or the sweeper rightly closes it as silent.
KEEPALIVE_SECONDS = 20.0


class CountWatcher:
    """Reads the session's listenerCount straight from the table, over and over, while a race
    runs: the highest and lowest values anyone could have seen."""

    def __init__(self, stack: Stack, session_id: str) -> None:
        self._tables = Tables.of_stack(stack)
        self._session_id = session_id
        self.seen: list[int] = []
        self._task: asyncio.Task[Any] | None = None

    def _read(self) -> int:
        item = self._tables.client.get_item(
            TableName=self._tables.names["SessionsTable"],
            Key={"sessionId": {"S": self._session_id}},
            ConsistentRead=True,
        )["Item"]
        return int(item["listenerCount"]["N"])

    async def _watch(self) -> None:
        while True:
            self.seen.append(await asyncio.to_thread(self._read))
            await asyncio.sleep(0.02)

    async def __aenter__(self) -> CountWatcher:
        self._task = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.seen.append(self._read())


async def _status_until(speaker: ProtocolClient, count: int, timeout: float = STORM_REPLY_SECONDS) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        status = await speaker.request("getSessionStatus", STORM_REPLY_SECONDS)
        assert status["type"] == "sessionStatus", status
        if status["listenerCount"] == count or asyncio.get_running_loop().time() > deadline:
            assert status["listenerCount"] == count, status
            return status
        await asyncio.sleep(0.2)


async def _connect_many(stack: Stack, count: int, addresses: int) -> list[ProtocolClient]:
    pool = [new_address() for _ in range(addresses)]
    semaphore = asyncio.Semaphore(5)  # handshakes in flight; the joins themselves all race at once

    async def one(index: int) -> ProtocolClient:
        async with semaphore:
            return await connect_from(stack, pool[index % addresses], keepalive=KEEPALIVE_SECONDS)

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def test_concurrent_joins_from_many_addresses_fill_exactly_the_capacity(stack: Stack):
    # GIVEN a session with CAPACITY seats and more connected would-be listeners than seats
    speaker, created = await speaker_with_session(stack, keepalive=KEEPALIVE_SECONDS)
    session_id = created["sessionId"]
    clients = await _connect_many(stack, JOINERS, JOIN_ADDRESSES)
    # WHEN they all join at once
    async with CountWatcher(stack, session_id) as watcher:
        replies = await asyncio.gather(
            *(
                client.request("joinSession", STORM_REPLY_SECONDS, sessionId=session_id, targetLanguage="es")
                for client in clients
            )
        )
    # THEN exactly CAPACITY joined, every other one heard SESSION_FULL, the count never passed it.
    # An invocation that failed outright (the gateway's "Internal server error": on an overloaded
    # machine a function can run past its timeout) is a join the client must retry; it may not
    # have taken a seat, so then the seats equal the joins told, at most CAPACITY.
    joined = [reply for reply in replies if reply.get("type") == "sessionJoined"]
    full = [reply for reply in replies if reply.get("code") == "SESSION_FULL"]
    failed = [reply for reply in replies if reply.get("message") == "Internal server error" and "type" not in reply]
    outcomes = [reply.get("code", reply.get("type", reply.get("message"))) for reply in replies]
    assert len(joined) + len(full) + len(failed) == JOINERS, outcomes
    for reply in full:
        assert_error(reply, "SESSION_FULL", 503, session_id=session_id)
    assert max(watcher.seen) <= CAPACITY and min(watcher.seen) >= 0, watcher.seen
    record(
        "join storm",
        joiners=JOINERS,
        addresses=JOIN_ADDRESSES,
        capacity=CAPACITY,
        joined=len(joined),
        full=len(full),
        failed_invocations=len(failed),
        highest_count_seen=max(watcher.seen),
    )
    if not failed:
        assert len(joined) == CAPACITY and max(watcher.seen) == CAPACITY, outcomes
        status = await _status_until(speaker, CAPACITY)
        assert status["languageDistribution"] == {"es": CAPACITY}
    else:
        status = await speaker.request("getSessionStatus", STORM_REPLY_SECONDS)
        assert len(joined) <= status["listenerCount"] <= min(CAPACITY, len(joined) + len(failed)), status
    assert_invariants(stack)


def _vanish(client: ProtocolClient) -> None:
    """The phone walks out of Wi-Fi range: the TCP connection dies with no close frame."""
    client.stop_heartbeats()
    client.connection.transport.abort()


async def test_mass_disconnects_with_and_without_close_frames_bring_the_count_to_zero(stack: Stack):
    # GIVEN a full session
    speaker, created = await speaker_with_session(stack, keepalive=KEEPALIVE_SECONDS)
    session_id = created["sessionId"]
    listeners = []
    for batch in range(0, CAPACITY, 5):
        listeners += await asyncio.gather(
            *(listener_in(stack, session_id, keepalive=KEEPALIVE_SECONDS) for _ in range(min(5, CAPACITY - batch)))
        )
    clients = [client for client, _ in listeners]
    await _status_until(speaker, CAPACITY)
    # WHEN they all go at once, half with a close frame and half without
    async with CountWatcher(stack, session_id) as watcher:
        closing = [client.connection.close() for client in clients[::2]]
        for client in clients[1::2]:
            _vanish(client)
        await asyncio.gather(*closing, return_exceptions=True)
        # THEN the count reaches 0 and is never seen below it
        await _status_until(speaker, 0)
    assert min(watcher.seen) == 0 and max(watcher.seen) <= CAPACITY, watcher.seen
    record(
        "mass disconnect",
        listeners=CAPACITY,
        with_close_frame=len(clients[::2]),
        vanished=len(clients[1::2]),
        lowest_count_seen=min(watcher.seen),
        count_reads=len(watcher.seen),
    )
    connection_ids = {joined["connectionId"] for _, joined in listeners}
    remaining = [
        item for item in Tables.of_stack(stack).scan("ConnectionsTable") if item["connectionId"] in connection_ids
    ]
    assert remaining == [], remaining
    assert_invariants(stack)


async def test_listener_refresh_crossing_its_old_disconnect_keeps_one_seat(stack: Stack):
    speaker, created = await speaker_with_session(stack)
    session_id = created["sessionId"]
    olds = [client for client, _ in await asyncio.gather(*(listener_in(stack, session_id) for _ in range(4)))]
    news = await asyncio.gather(*(connect_from(stack, new_address()) for _ in olds))
    # WHEN each listener's refresh and its old connection's close race
    refreshes = [
        new.request("refreshConnection", sessionId=session_id, role="listener", targetLanguage="es") for new in news
    ]
    outcomes = await asyncio.gather(*refreshes, *(old.connection.close() for old in olds))
    for reply in outcomes[: len(news)]:
        assert reply["type"] == "connectionRefreshComplete", reply
    # THEN each listener holds exactly one seat
    await _status_until(speaker, len(news))
    assert_invariants(stack)


async def test_two_speaker_refreshes_racing_leave_one_speaker(stack: Stack):
    token = stack.new_speaker_token()
    old, created = await speaker_with_session(stack, token)
    session_id = created["sessionId"]
    listener, _ = await listener_in(stack, session_id)
    first, second = await asyncio.gather(*(connect_from(stack, new_address(), token) for _ in range(2)))
    replies = await asyncio.gather(
        *(client.request("refreshConnection", sessionId=session_id, role="speaker") for client in (first, second))
    )
    assert all(reply["type"] == "connectionRefreshComplete" for reply in replies), replies
    # THEN exactly one of the three connections speaks for the session now
    statuses = await asyncio.gather(*(client.request("getSessionStatus") for client in (old, first, second)))
    speaking = [status for status in statuses if status["type"] == "sessionStatus"]
    assert len(speaking) == 1, statuses
    for status in statuses:
        if status["type"] != "sessionStatus":
            assert_error(status, "FORBIDDEN", 403)
    assert speaking[0]["listenerCount"] == 1
    await listener.silent_for(0.3)
    assert_invariants(stack)


async def test_leaves_racing_disconnects_free_each_seat_once(stack: Stack):
    speaker, created = await speaker_with_session(stack)
    session_id = created["sessionId"]
    stay, _ = await listener_in(stack, session_id)
    leaving = [client for client, _ in await asyncio.gather(*(listener_in(stack, session_id) for _ in range(6)))]
    async with CountWatcher(stack, session_id) as watcher:
        await asyncio.gather(*(client.send("leaveSession") for client in leaving))
        for index, client in enumerate(leaving):
            if index % 2:
                _vanish(client)
            else:
                await client.connection.close()
        await _status_until(speaker, 1)
    assert min(watcher.seen) == 1, watcher.seen
    await stay.silent_for(0.3)
    assert_invariants(stack)


async def test_end_session_racing_joins_leaves_no_listener_behind(stack: Stack):
    speaker, created = await speaker_with_session(stack)
    session_id = created["sessionId"]
    early = [client for client, _ in await asyncio.gather(*(listener_in(stack, session_id) for _ in range(5)))]
    joiners = await _connect_many(stack, 10, 5)
    # WHEN the speaker ends the session while ten more join
    outcomes = await asyncio.gather(
        speaker.request("endSession", STORM_REPLY_SECONDS),
        *(
            client.request("joinSession", STORM_REPLY_SECONDS, sessionId=session_id, targetLanguage="fr")
            for client in joiners
        ),
    )
    ended, joins = outcomes[0], outcomes[1:]
    assert ended["type"] == "sessionEnded", ended
    # THEN each joiner either got in and is then told the session ended, or heard it was gone
    for client, reply in zip(joiners, joins, strict=True):
        if reply["type"] == "sessionJoined":
            told = await client.expect("sessionEnded", STORM_REPLY_SECONDS)
            assert told["sessionId"] == session_id
        else:
            assert_error(reply, "SESSION_NOT_FOUND", 404, session_id=session_id)
    for client in early:
        assert (await client.expect("sessionEnded", STORM_REPLY_SECONDS))["reason"] == "speakerEnded"
    # ...and nobody holds a seat in it any more
    attached = [item for item in Tables.of_stack(stack).scan("ConnectionsTable") if item.get("sessionId") == session_id]
    assert attached == [], attached
    assert_invariants(stack)
