"""A client of the wire protocol (docs: /work/shared/spec/protocol.md) over a real WebSocket,
and the assertions on the exact shape of what the server sends.

Every wait has a timeout, so a missing message fails a test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

# Generous: a burst of joins makes the stack start several cold execution environments at once.
RECEIVE_TIMEOUT = 20.0
SESSION_ID_PATTERN = re.compile(r"^[a-z]+-[a-z]+-[1-9][0-9]{2}$")
# Replies to a heartbeat: with keepalive on, they are kept apart from everything else.
HEARTBEAT_REPLIES = frozenset({"heartbeatAck", "connectionRefreshRequired", "connectionWarning"})
ERROR_FIELDS = {"type", "timestamp", "code", "message", "status", "requestId", "sessionId", "retryAfter", "details"}
# Well formed, but no word list holds these words, so no session can ever have this id; the
# pattern allows 899 numbers per pair of words, so the first word changes after each 899.
_NUMBERS = range(101, 1000)
_unknown_ids = (
    f"unheard{''.join(chr(ord('a') + int(d)) for d in str(round_))}-nowhere-{n}"
    for round_ in itertools.count()
    for n in _NUMBERS
)


def unknown_session_id() -> str:
    return next(_unknown_ids)


@dataclass(frozen=True)
class Closed:
    """What the reader saw when the connection closed."""

    code: int | None
    reason: str


class ProtocolClient:
    """One connection: send actions, receive the server's messages in order."""

    def __init__(self, connection: ClientConnection, keepalive: float | None) -> None:
        self.connection = connection
        self.inbox: asyncio.Queue[dict[str, Any] | Closed] = asyncio.Queue()
        self.heartbeat_replies: list[dict[str, Any]] = []
        self.closed: Closed | None = None
        self._keepalive = keepalive
        self._tasks = [asyncio.create_task(self._read())]
        if keepalive:
            self._tasks.append(asyncio.create_task(self._heartbeat_every(keepalive)))

    async def _read(self) -> None:
        try:
            async for frame in self.connection:
                body = json.loads(frame)
                if self._keepalive and isinstance(body, dict) and body.get("type") in HEARTBEAT_REPLIES:
                    self.heartbeat_replies.append(body)
                else:
                    await self.inbox.put(body)
        except ConnectionClosed:
            pass
        received = self.connection.protocol.close_rcvd
        code = received.code if received else self.connection.close_code
        self.closed = Closed(code, received.reason if received else "")
        await self.inbox.put(self.closed)

    async def _heartbeat_every(self, seconds: float) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.sleep(seconds)
                await self.send("heartbeat")

    def stop_heartbeats(self) -> None:
        for task in self._tasks[1:]:
            task.cancel()

    # ------------------------------------------------------------ sending

    async def send(self, action: str, **fields: Any) -> None:
        await self.connection.send(json.dumps({"action": action, **fields}))

    async def send_raw(self, frame: str | bytes | Iterable[str]) -> None:
        await self.connection.send(frame)

    async def request(self, action: str, timeout: float = RECEIVE_TIMEOUT, **fields: Any) -> dict[str, Any]:
        """Send an action and return the next message."""
        await self.send(action, **fields)
        return await self.receive(timeout)

    async def request_past_notices(
        self, action: str, timeout: float = RECEIVE_TIMEOUT, **fields: Any
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Send an action and return the next message that is not a refresh notice, with the
        notices before it: without heartbeats, a sweep may push one before a slow reply."""
        await self.send(action, **fields)
        notices = []
        while (reply := await self.receive(timeout))["type"] in HEARTBEAT_REPLIES - {"heartbeatAck"}:
            notices.append(reply)
        return reply, notices

    async def request_heartbeating(
        self, action: str, interval: float, timeout: float = RECEIVE_TIMEOUT, **fields: Any
    ) -> dict[str, Any]:
        """For a client without keepalive: send an action and heartbeat every `interval` until
        its reply comes and every heartbeat is answered, so that a reply slowed by a busy machine
        does not leave the connection silent long enough for the server to close it. Returns the
        reply; the heartbeats' replies (and any notice on them) are dropped."""
        await self.send(action, **fields)
        deadline = time.monotonic() + timeout
        reply, beats, acks = None, 0, 0
        while reply is None or acks < beats:
            try:
                item = await asyncio.wait_for(self.inbox.get(), min(interval, max(0.0, deadline - time.monotonic())))
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise AssertionError(f"no reply to {action} within {timeout} s") from None
                if reply is None:
                    await self.send("heartbeat")
                    beats += 1
                continue
            if isinstance(item, Closed):
                await self.inbox.put(item)
                raise AssertionError(f"connection closed ({item.code} {item.reason!r}) while waiting for {action}")
            if item.get("type") == "heartbeatAck":
                acks += 1
            elif item.get("type") not in HEARTBEAT_REPLIES:
                reply = item
        return reply

    # ------------------------------------------------------------ receiving

    async def receive(self, timeout: float = RECEIVE_TIMEOUT) -> dict[str, Any]:
        try:
            item = await asyncio.wait_for(self.inbox.get(), timeout)
        except TimeoutError:
            raise AssertionError(f"no message within {timeout} s") from None
        if isinstance(item, Closed):
            await self.inbox.put(item)
            raise AssertionError(f"connection closed ({item.code} {item.reason!r}) while waiting for a message")
        return item

    async def expect(self, message_type: str, timeout: float = RECEIVE_TIMEOUT) -> dict[str, Any]:
        body = await self.receive(timeout)
        assert body.get("type") == message_type, f"expected {message_type}, got {body}"
        return body

    async def drain(self, quiet: float) -> list[dict[str, Any]]:
        """Every message until none arrives for `quiet` seconds."""
        messages = []
        while True:
            try:
                item = await asyncio.wait_for(self.inbox.get(), quiet)
            except TimeoutError:
                return messages
            if isinstance(item, Closed):
                await self.inbox.put(item)
                raise AssertionError(f"connection closed ({item.code} {item.reason!r}) after {messages}")
            messages.append(item)

    async def silent_for(self, seconds: float) -> None:
        """Assert the server sends nothing (and does not close) for a while."""
        try:
            item = await asyncio.wait_for(self.inbox.get(), seconds)
        except TimeoutError:
            return
        raise AssertionError(f"expected silence, got {item}")

    async def wait_closed(self, timeout: float = RECEIVE_TIMEOUT) -> Closed:
        """Skip any messages until the server closes the connection."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                item = await asyncio.wait_for(self.inbox.get(), max(remaining, 0.001))
            except TimeoutError:
                raise AssertionError(f"connection still open after {timeout} s") from None
            if isinstance(item, Closed):
                return item

    async def abort(self) -> None:
        """Vanish without a close frame, as a phone or laptop that loses its network does."""
        self.stop_heartbeats()
        self.connection.transport.abort()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        self.stop_heartbeats()
        await self.connection.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


# Clients opened by the running test; the test runner closes whatever a test leaves open.
_open_clients: list[ProtocolClient] = []


async def close_all_clients() -> None:
    clients, _open_clients[:] = list(_open_clients), []
    await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)


@dataclass
class Stack:
    """A running local stack (the ready dict of local_stack.testing.running_stack)."""

    info: dict[str, Any]
    keepalive: float | None = None  # seconds between automatic heartbeats, for short timeouts
    _tokens: dict[str, str] = field(default_factory=dict)
    _speakers: itertools.count = field(default_factory=lambda: itertools.count(1))

    @property
    def url(self) -> str:
        return self.info["websocketUrl"]

    @property
    def demo_token(self) -> str:
        return self.info["speakerToken"]

    def token_for(self, email: str) -> str:
        """A speaker IdToken for a demo user with that email, from the stack's token endpoint."""
        if email not in self._tokens:
            query = urllib.parse.urlencode({"email": email})
            url = f"http://127.0.0.1:{self.info['port']}/_local/token?{query}"
            with urllib.request.urlopen(url, timeout=10) as response:
                self._tokens[email] = response.read().decode().strip()
        return self._tokens[email]

    def new_speaker_token(self) -> str:
        """A token of a speaker no other test uses (keeps per-user session limits out of the way)."""
        return self.token_for(f"speaker-{next(self._speakers)}@example.org")

    async def connect(
        self,
        token: str | None = None,
        *,
        bearer: str | None = None,
        keepalive: float | bool | None = True,
    ) -> ProtocolClient:
        """Open a connection: speaker with ?token= or an Authorization header, else anonymous.
        keepalive=True uses the stack's default cadence, False/None sends no heartbeats."""
        url = self.url if token is None else f"{self.url}?{urllib.parse.urlencode({'token': token})}"
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else None
        connection = await websockets.connect(
            url, additional_headers=headers, proxy=None, ping_interval=None, open_timeout=30, max_size=None
        )
        client = ProtocolClient(connection, self.keepalive if keepalive is True else keepalive or None)
        _open_clients.append(client)
        return client

    async def handshake_status(self, token: str | None = None, *, bearer: str | None = None) -> int:
        """The HTTP status of a handshake: 101 when it upgraded (the connection is closed again)."""
        try:
            client = await self.connect(token, bearer=bearer, keepalive=False)
        except InvalidStatus as refused:
            return refused.response.status_code
        await client.close()
        return 101

    # ------------------------------------------------------------ common openings

    async def speaker_with_session(
        self, token: str | None = None, source_language: str = "en", **fields: Any
    ) -> tuple[ProtocolClient, dict[str, Any]]:
        speaker = await self.connect(token or self.new_speaker_token())
        created = await speaker.request("createSession", sourceLanguage=source_language, **fields)
        assert created["type"] == "sessionCreated", created
        return speaker, created

    async def listener_in(self, session_id: str, target_language: str = "es") -> ProtocolClient:
        listener = await self.connect()
        joined = await listener.request("joinSession", sessionId=session_id, targetLanguage=target_language)
        assert joined["type"] == "sessionJoined", joined
        return listener


# ---------------------------------------------------------------- shape assertions


def now_ms() -> int:
    return int(time.time() * 1000)


def assert_message(body: dict[str, Any], message_type: str, **expected: Any) -> None:
    """type and an integer-millisecond timestamp of about now, the expected fields with their
    values (Ellipsis: present, any value), and nothing else."""
    assert body.get("type") == message_type, body
    timestamp = body.get("timestamp")
    assert type(timestamp) is int, body
    assert abs(timestamp - now_ms()) < 60_000, f"timestamp {timestamp} is not epoch ms of now"
    assert set(body) == {"type", "timestamp", *expected}, f"fields of {body} are not {sorted(expected)}"
    for name, value in expected.items():
        if value is not ...:
            assert body[name] == value, f"{name}: {body[name]!r} != {value!r} in {body}"


def assert_error(
    body: dict[str, Any],
    code: str,
    status: int,
    *,
    session_id: str | None = None,
    field: str | None = None,
) -> None:
    """An error message: code, status, a message, a requestId; sessionId when the request named
    one; retryAfter (integer >= 1) exactly with 429; details {field, reason} on 400s about one
    field (all but INVALID_ACTION)."""
    assert body.get("type") == "error", body
    assert type(body.get("timestamp")) is int and abs(body["timestamp"] - now_ms()) < 60_000, body
    assert set(body) <= ERROR_FIELDS, f"unexpected fields in {body}"
    assert (body.get("code"), body.get("status")) == (code, status), body
    assert isinstance(body.get("message"), str) and body["message"], body
    assert "Traceback" not in body["message"] and "botocore" not in body["message"], body
    assert isinstance(body.get("requestId"), str) and body["requestId"], body
    if session_id is not None:
        assert body.get("sessionId") == session_id, body
    if status == 429:
        assert type(body.get("retryAfter")) is int and body["retryAfter"] >= 1, body
    else:
        assert "retryAfter" not in body, body
    if status == 400 and code != "INVALID_ACTION":
        details = body.get("details")
        assert isinstance(details, dict) and set(details) == {"field", "reason"}, body
        assert isinstance(details["reason"], str) and details["reason"], body
        if field is not None:
            assert details["field"] == field, body
    elif field is not None:
        raise AssertionError(f"details.field is only promised on 400s, not {code}")


async def status_when(
    speaker: ProtocolClient, condition: Callable[[dict[str, Any]], bool], timeout: float = 10.0
) -> dict[str, Any]:
    """Poll getSessionStatus until the condition holds ($disconnect runs after a close returns)."""
    deadline = time.monotonic() + timeout
    while True:
        status = await speaker.request("getSessionStatus")
        assert status["type"] == "sessionStatus", status
        if condition(status) or time.monotonic() > deadline:
            assert condition(status), f"status never met the condition: {status}"
            return status
        await asyncio.sleep(0.2)
