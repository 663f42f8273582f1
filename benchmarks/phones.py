"""A phone of the benchmarks: one WebSocket connection speaking the protocol (docs/protocol.md),
which keeps every message it was sent, so a scenario can say what each phone was told."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

REPLY_TIMEOUT_SECONDS = 60.0
# Pushed by the server at any time, never the reply to a request.
NOTICES = frozenset({"sessionEnded", "connectionRefreshRequired", "connectionWarning", "caption"})


class HandshakeRefused(Exception):
    def __init__(self, status: int | None) -> None:
        super().__init__(f"handshake refused with HTTP {status}")
        self.status = status


class Phone:
    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.replies: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.notices: list[tuple[float, dict[str, Any]]] = []  # (perf_counter when received, message)
        self.notice_arrived = asyncio.Event()
        self.connection_id: str | None = None
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(
        cls, url: str, token: str | None = None, open_timeout: float = 60.0, *, source_address: str | None = None
    ) -> Phone:
        """`source_address`: a loopback address of its own (127.0.0.0/8 is all loopback on Linux),
        for a phone that must not share its per-IP limits with the rest of the room."""
        target = f"{url}?token={token}" if token else url
        local = {"local_addr": (source_address, 0)} if source_address else {}
        try:
            connection = await websockets.connect(
                target, open_timeout=open_timeout, close_timeout=5, max_size=None, ping_interval=None, **local
            )
        except websockets.InvalidStatus as refused:
            raise HandshakeRefused(refused.response.status_code) from None
        return cls(connection)

    async def _read(self) -> None:
        try:
            async for frame in self.connection:
                message = json.loads(frame)
                if isinstance(message, dict) and message.get("type") in NOTICES:
                    self.notices.append((time.perf_counter(), message))
                    self.notice_arrived.set()
                else:
                    self.replies.put_nowait(message)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.replies.put_nowait(None)

    async def request(self, action: str, timeout: float = REPLY_TIMEOUT_SECONDS, **fields: Any) -> dict[str, Any]:
        """Sends an action; the next message that is not a notice. Raises on close or timeout."""
        await self.connection.send(json.dumps({"action": action, **fields}))
        reply = await asyncio.wait_for(self.replies.get(), timeout)
        if reply is None:
            raise ConnectionError("closed before the reply")
        if isinstance(reply.get("connectionId"), str):
            self.connection_id = reply["connectionId"]
        return reply

    async def end_session(self, timeout: float = REPLY_TIMEOUT_SECONDS) -> dict[str, Any]:
        """endSession: its answer is the `sessionEnded` notice every member gets, or an error."""
        await self.connection.send(json.dumps({"action": "endSession"}))
        ended = asyncio.create_task(self.wait_for_notice("sessionEnded", timeout))
        replied = asyncio.create_task(self.replies.get())
        done, pending = await asyncio.wait({ended, replied}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if replied in done and replied.result() is not None:
            return replied.result()
        if ended in done and ended.result() is not None:
            return next(message for _, message in self.notices if message.get("type") == "sessionEnded")
        raise TimeoutError("no answer to endSession")

    async def wait_for_notice(self, message_type: str, timeout: float, *, seq: int | None = None) -> float | None:
        """perf_counter time the notice arrived (the caption numbered `seq`, if given), or None if
        it did not within timeout."""
        deadline = time.perf_counter() + timeout
        while True:
            for arrived, message in self.notices:
                if message.get("type") == message_type and (seq is None or message.get("seq") == seq):
                    return arrived
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return None
            self.notice_arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.notice_arrived.wait(), remaining)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.connection.close()
        self._reader.cancel()
        with contextlib.suppress(BaseException):
            await self._reader

    def vanish(self) -> None:
        """Drops the TCP connection without a close frame, as a phone leaving Wi-Fi does."""
        transport = getattr(self.connection, "transport", None)
        if transport is not None:
            transport.abort()


def outcome_of(reply: dict[str, Any]) -> str:
    """`sessionJoined`, an error code, or what an unexpected reply said."""
    if reply.get("type") == "error":
        return str(reply.get("code"))
    if "type" in reply:
        return str(reply["type"])
    return str(reply.get("message", reply))  # API Gateway's {"message": "Internal server error"}
