"""A scripted stand-in for the service, over a real WebSocket on port 0: it answers every action
the way docs/protocol.md says (and sendCaption the way issue 9 says), records what it received and
when each connection opened and closed, and lets a test push frames, hold answers, stop
acknowledging heartbeats, refuse handshakes or go away. For what the real server cannot do yet
(captions, speakerAway) and for failures it cannot be made to show on demand."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

SESSION_ID = "faithful-shepherd-427"
WAIT_SECONDS = 10.0

Responder = Callable[["FakeConnection", dict[str, Any]], Awaitable[None]]


def now_ms() -> int:
    return int(time.time() * 1000)


class FakeConnection:
    def __init__(self, service: FakeService, index: int, socket: ServerConnection) -> None:
        self.service = service
        self.index = index
        self.socket = socket
        self.path = socket.request.path if socket.request else ""
        self.received: list[dict[str, Any]] = []
        self.role: str | None = None
        self.closed = asyncio.Event()
        self._arrived = asyncio.Condition()

    @property
    def connection_id(self) -> str:
        return f"C{self.index}"

    async def send(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.socket.send(json.dumps({"timestamp": now_ms(), **message}))

    async def send_raw(self, frame: str) -> None:
        await self.socket.send(frame)

    async def caption(self, seq: int, text: str | None = None, **fields: Any) -> None:
        await self.send(
            {
                "type": "caption",
                "sessionId": SESSION_ID,
                "seq": seq,
                "lineId": fields.pop("lineId", f"line-{seq}"),
                "language": fields.pop("language", "es"),
                "text": text if text is not None else f"línea {seq}",
                "final": fields.pop("final", True),
                **fields,
            }
        )

    def abort(self) -> None:
        """Cut the connection without a closing handshake, as a lost network does."""
        self.socket.transport.abort()

    async def next_message(self, action: str, timeout: float = WAIT_SECONDS) -> dict[str, Any]:
        """The first received message with that action (waiting for it if need be)."""

        def found() -> dict[str, Any] | None:
            return next((m for m in self.received if m.get("action") == action), None)

        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: found() is not None), timeout)
        message = found()
        assert message is not None
        return message

    async def _record(self, message: dict[str, Any]) -> None:
        self.received.append(message)
        async with self._arrived:
            self._arrived.notify_all()


class FakeService:
    def __init__(self) -> None:
        self.connections: list[FakeConnection] = []
        self.log: list[str] = []
        self.ack_heartbeats = True
        self.refuse_status: int | None = None
        self.responders: dict[str, Responder] = {}
        self.after_heartbeat: Callable[[FakeConnection], list[dict[str, Any]]] | None = None
        self.seq = 0
        self._server: Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self._changed = asyncio.Condition()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}/dev"

    async def __aenter__(self) -> FakeService:
        self._server = await serve(self._serve, "127.0.0.1", 0, process_request=self._process_request)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Stop listening and drop every connection (later connects are refused)."""
        for handler in self._handlers:
            handler.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def connection(self, number: int, timeout: float = WAIT_SECONDS) -> FakeConnection:
        """The `number`th connection (1-based), once it has opened."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(self.connections) >= number), timeout)
        return self.connections[number - 1]

    async def logged(self, entry: str, timeout: float = WAIT_SECONDS) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: entry in self.log), timeout)

    async def _note(self, entry: str) -> None:
        self.log.append(entry)
        async with self._changed:
            self._changed.notify_all()

    def _process_request(self, connection: ServerConnection, request: Any) -> Any:
        if self.refuse_status is not None:
            return connection.respond(HTTPStatus(self.refuse_status), "refused\n")
        return None

    async def _serve(self, socket: ServerConnection) -> None:
        connection = FakeConnection(self, len(self.connections) + 1, socket)
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        self.connections.append(connection)
        await self._note(f"open {connection.index}")
        try:
            async for frame in socket:
                message = json.loads(frame)
                await connection._record(message)
                action = message.get("action")
                await self._note(f"{action} {connection.index}")
                responder = self.responders.get(action) or getattr(self, f"_answer_{action}", None)
                if responder is not None:
                    await responder(connection, message)
        except ConnectionClosed:
            pass
        finally:
            self._handlers.discard(handler)
            connection.closed.set()
            await self._note(f"close {connection.index}")

    # ------------------------------------------------------------ default answers

    async def _answer_heartbeat(self, connection: FakeConnection, message: dict[str, Any]) -> None:
        if not self.ack_heartbeats:
            return
        await connection.send({"type": "heartbeatAck"})
        for extra in self.after_heartbeat(connection) if self.after_heartbeat else []:
            await connection.send(extra)

    async def _answer_joinSession(self, connection: FakeConnection, message: dict[str, Any]) -> None:
        connection.role = "listener"
        await connection.send(
            {
                "type": "sessionJoined",
                "sessionId": str(message["sessionId"]).strip().lower(),
                "targetLanguage": message["targetLanguage"],
                "sourceLanguage": "en",
                "connectionId": connection.connection_id,
            }
        )

    async def _answer_createSession(self, connection: FakeConnection, message: dict[str, Any]) -> None:
        connection.role = "speaker"
        await connection.send(
            {
                "type": "sessionCreated",
                "sessionId": SESSION_ID,
                "sourceLanguage": message["sourceLanguage"],
                "qualityTier": message.get("qualityTier", "standard"),
                "connectionId": connection.connection_id,
                "expiresAt": now_ms() // 1000 + 7200,
            }
        )

    async def _answer_refreshConnection(self, connection: FakeConnection, message: dict[str, Any]) -> None:
        connection.role = message["role"]
        reply = {"type": "connectionRefreshComplete", "sessionId": SESSION_ID, "role": message["role"]}
        if message["role"] == "listener":
            reply["targetLanguage"] = message["targetLanguage"]
        else:
            reply["expiresAt"] = now_ms() // 1000 + 7200
        await connection.send(reply)

    async def _answer_sendCaption(self, connection: FakeConnection, message: dict[str, Any]) -> None:
        self.seq += 1
        await connection.send({"type": "captionAccepted", "seq": self.seq})

    async def _answer_getSessionStatus(self, connection: FakeConnection, message: dict[str, Any]) -> None:
        listeners = [c for c in self.connections if c.role == "listener" and not c.closed.is_set()]
        await connection.send(
            {
                "type": "sessionStatus",
                "sessionId": SESSION_ID,
                "listenerCount": len(listeners),
                "languageDistribution": {"es": len(listeners)} if listeners else {},
                "sessionDurationSeconds": 1,
            }
        )

    async def _answer_endSession(self, connection: FakeConnection, message: dict[str, Any]) -> None:
        ended = {
            "type": "sessionEnded",
            "sessionId": SESSION_ID,
            "reason": "speakerEnded",
            "message": "The speaker ended the session.",
        }
        for other in self.connections:
            if other.role is not None and not other.closed.is_set():
                other.role = None
                await other.send(ended)

    async def _answer_leaveSession(self, connection: FakeConnection, message: dict[str, Any]) -> None:
        connection.role = None
        await connection.send({"type": "sessionLeft", "sessionId": SESSION_ID})


def error(code: str, status: int, message: str = "The server says no.", **fields: Any) -> dict[str, Any]:
    return {"type": "error", "code": code, "status": status, "message": message, "requestId": "R1", **fields}


def quick_options(
    heartbeat: float = 0.2,
    ack_timeout: float = 5.0,
    give_up_after: float = 30.0,
    reorder_window: float = 0.3,
    **connect_options: Any,
):
    """Client options in fractions of a second, for the fake service."""
    from live_session_client import ClientOptions, LinkTimings, ReconnectPolicy

    return ClientOptions(
        timings=LinkTimings(
            heartbeat_interval_seconds=heartbeat,
            heartbeat_ack_timeout_seconds=ack_timeout,
            request_timeout_seconds=5.0,
            open_timeout_seconds=5.0,
            connect_options=connect_options,
        ),
        reconnect=ReconnectPolicy(base_seconds=0.05, cap_seconds=0.2, give_up_after_seconds=give_up_after),
        reorder_window_seconds=reorder_window,
    )
