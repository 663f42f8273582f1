"""Fuzzing over the socket, every action: frames go through the local gateway's route selection
to the real functions, and every reply keeps the rules of fuzz_inputs.assert_safe_reply; a
rejected frame leaves the session's and the test's connection items as they were.

Hypothesis runs examples synchronously, while WebSocket clients live on an event loop: the loop
runs in a thread of its own for the whole test, so the clients outlive each example."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.e2e.client import ProtocolClient, Stack, close_all_clients, now_ms

from .checks import assert_invariants, snapshot
from .fuzz_inputs import ACTIONS, assert_safe_reply, frames, fuzz_settings, message_bodies
from .sessions import SETUP_REPLY_SECONDS, listener_in, speaker_with_session
from .wire import connect_from, new_address

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore:Generating overly large repr")]

MAX_FRAME_BYTES = 32 * 1024  # larger frames close the connection (1009): tested in tests/local_stack


class Clients:
    """A speaker with a session, a listener in it and an anonymous connection, on a loop thread;
    a role is opened anew after a frame was accepted (its state moved on)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.session_id = ""
        self.since = now_ms()
        self.roles: dict[str, ProtocolClient] = {}
        self.run(self._open_all())

    def run(self, coroutine: Any, timeout: float = 2 * SETUP_REPLY_SECONDS) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    async def _open_all(self) -> None:
        speaker, created = await speaker_with_session(self.stack)
        self.session_id = created["sessionId"]
        listener, _ = await listener_in(self.stack, self.session_id)
        self.roles = {
            "speaker": speaker,
            "listener": listener,
            "anonymous": await connect_from(self.stack, new_address()),
        }

    async def renew(self) -> None:
        await close_all_clients()
        await self._open_all()

    def close(self) -> None:
        self.run(close_all_clients())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@pytest.fixture
def clients(stack: Stack) -> Iterator[Clients]:
    opened = Clients(stack)
    yield opened
    opened.close()
    assert_invariants(stack)


async def _exchange(client: ProtocolClient, frame: str) -> list[dict[str, Any]]:
    await client.send_raw(frame)
    replies = [await client.receive(SETUP_REPLY_SECONDS)]
    # A heartbeat's ack may be followed by refresh and warning notices: take what follows at once.
    replies += await client.drain(0.3)
    return replies


def _check(clients: Clients, role: str, frame: str) -> None:
    if len(frame.encode()) > MAX_FRAME_BYTES:
        return
    before = snapshot(clients.stack, {clients.session_id}, clients.since)
    replies = clients.run(_exchange(clients.roles[role], frame))
    for reply in replies:
        assert_safe_reply(reply, frame)
    if all(reply["type"] == "error" for reply in replies):
        assert snapshot(clients.stack, {clients.session_id}, clients.since) == before, f"{frame[:200]!r} changed state"
    else:
        clients.run(clients.renew())


@fuzz_settings(examples=30)
@given(role=st.sampled_from(["speaker", "listener", "anonymous"]), data=st.data())
def test_any_frame_over_the_socket_gets_a_safe_reply(clients: Clients, role: str, data):
    _check(clients, role, data.draw(frames(["faithful-shepherd-427", clients.session_id])))


@pytest.mark.parametrize("action", ACTIONS)
@fuzz_settings(examples=5)
@given(role=st.sampled_from(["speaker", "listener", "anonymous"]), data=st.data())
def test_every_action_over_the_socket_with_fields_of_every_type(clients: Clients, action: str, role: str, data):
    body = data.draw(message_bodies([clients.session_id])) | {"action": action}
    _check(clients, role, json.dumps(body))
