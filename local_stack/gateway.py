"""The WebSocket side of API Gateway: the $connect handshake (REQUEST authorizer, then the
$connect integration deciding the upgrade), route selection, $disconnect, and the idle, hard and
message-size limits."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from fnmatch import fnmatchcase
from typing import Any

from aiohttp import WebSocketError, WSCloseCode, WSMsgType, web

from local_stack.apigateway_events import (
    CONNECT_ROUTE,
    DEFAULT_ROUTE,
    DISCONNECT_ROUTE,
    ApiContext,
    ConnectionInfo,
    authorizer_event,
    connect_event,
    disconnect_event,
    message_event,
    method_arn,
    new_connection_id,
    new_request_id,
    now_ms,
)
from local_stack.functions import FunctionError, Functions, InvocationError
from local_stack.template import Authorizer, Route, WebSocketApi

logger = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 128 * 1024
MAX_FRAME_BYTES = 32 * 1024
CLOSE_HANDSHAKE_SECONDS = 3.0
UNAUTHORIZED_MESSAGE = "Unauthorized"
DISCONNECT_WAIT_SECONDS = 60.0
# On shutdown, message invocations still running get this long before their workers are stopped
# (a hung handler must not hold Ctrl-C for its whole Timeout).
SHUTDOWN_INFLIGHT_SECONDS = 5.0
_DATA_OPCODES = (0x0, 0x1, 0x2)  # continuation, text, binary


class CloseCode(IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001
    NO_STATUS = 1005
    ABNORMAL = 1006
    MESSAGE_TOO_BIG = 1009


GOING_AWAY_REASON = "Going away"
_REASONS = {
    CloseCode.NO_STATUS: "Client-side close frame status not set",
    CloseCode.ABNORMAL: "Connection closed abnormally",
    CloseCode.MESSAGE_TOO_BIG: "Message too big",
}


@dataclass(frozen=True)
class GatewayLimits:
    idle_timeout_seconds: float = 600.0
    max_connection_seconds: float = 7200.0


class HandshakeRefusedError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"handshake refused with {status}")
        self.status = status
        self.body = body


def _gateway_error(status: int, message: str) -> HandshakeRefusedError:
    return HandshakeRefusedError(status, json.dumps({"message": message}))


class FrameSizeGuard:
    """Sits in front of aiohttp's WebSocket parser and follows the frame headers of the raw
    stream (payload bytes are only counted, never copied): a data frame over `max_frame_bytes`
    fails the connection with 1009, as API Gateway does for frames over 32 KB. aiohttp itself
    only limits whole messages, which is the 128 KB limit."""

    def __init__(self, inner: Any, queue: Any, max_frame_bytes: int) -> None:
        self._inner = inner
        self._queue = queue
        self._max_frame_bytes = max_frame_bytes
        self._header = bytearray()
        self._payload_left = 0
        self._failed = False

    def feed_eof(self) -> None:
        self._inner.feed_eof()

    def feed_data(self, data: bytes | bytearray | memoryview) -> tuple[bool, bytes]:
        if self._failed:
            return True, b""
        data = bytes(data)
        oversized_at = self.scan(data)
        if oversized_at is None:
            return self._inner.feed_data(data)
        if oversized_at > 0:  # the frames before the oversized one are delivered
            self._inner.feed_data(data[:oversized_at])
        self._failed = True
        if self._queue.exception() is None:
            self._queue.set_exception(
                WebSocketError(WSCloseCode.MESSAGE_TOO_BIG, f"Frame size exceeds limit {self._max_frame_bytes}")
            )
        return True, b""

    def scan(self, data: bytes) -> int | None:
        """Follows frame boundaries; the offset of an oversized data frame's header, if any."""
        position, end = 0, len(data)
        while position < end:
            if self._payload_left:
                step = min(self._payload_left, end - position)
                self._payload_left -= step
                position += step
                continue
            frame_start = position - len(self._header)
            missing = self._header_length() - len(self._header)
            self._header += data[position : position + missing]
            position += min(missing, end - position)
            if len(self._header) < self._header_length():
                continue  # the rest of the header is in the next chunk (or the length grew)
            opcode, flag = self._header[0] & 0x0F, self._header[1] & 0x7F
            length = flag
            if flag == 126:
                length = int.from_bytes(self._header[2:4], "big")
            elif flag == 127:
                length = int.from_bytes(self._header[2:10], "big")
            self._header.clear()
            if opcode in _DATA_OPCODES and length > self._max_frame_bytes:
                return max(frame_start, 0)
            self._payload_left = length
        return None

    def _header_length(self) -> int:
        if len(self._header) < 2:
            return 2
        flag = self._header[1] & 0x7F
        extended = 2 if flag == 126 else 8 if flag == 127 else 0
        return 2 + extended + (4 if self._header[1] & 0x80 else 0)


class GatewayWebSocketResponse(web.WebSocketResponse):
    """aiohttp's WebSocket response with API Gateway's limits: 128 KB messages, 32 KB frames, no
    permessage-deflate (API Gateway negotiates no extension, so frame sizes are wire sizes)."""

    def __init__(self) -> None:
        # aiohttp refuses a message whose size reaches max_msg_size; 128 KB itself is allowed.
        super().__init__(
            max_msg_size=MAX_MESSAGE_BYTES + 1, autoping=False, timeout=CLOSE_HANDSHAKE_SECONDS, compress=False
        )

    def _post_start(self, request: Any, protocol: Any, writer: Any) -> None:
        # aiohttp internals (pinned in requirements/dev.txt): without them, only the 128 KB limit.
        handler = request.protocol
        if not hasattr(handler, "_message_tail") or not hasattr(handler, "_payload_parser"):
            logger.warning("this aiohttp version hides its parser: the 32 KB frame limit is not enforced")
            super()._post_start(request, protocol, writer)
            return
        early = bytes(handler._message_tail)  # bytes that arrived before the parser existed
        super()._post_start(request, protocol, writer)
        guard = FrameSizeGuard(handler._payload_parser, self._reader, MAX_FRAME_BYTES)
        oversized_at = guard.scan(early)  # the parser has consumed them: only follow the frames
        handler._payload_parser = guard
        if oversized_at is not None:
            guard._failed = True
            self._reader.set_exception(WebSocketError(WSCloseCode.MESSAGE_TOO_BIG, "Frame size exceeds limit"))


class LocalConnection:
    """An established connection, as the management API and $disconnect know it."""

    def __init__(self, info: ConnectionInfo, socket: web.WebSocketResponse) -> None:
        self.info = info
        self.socket = socket
        # The idle timer starts once the handshake is done, not while $connect ran.
        self.last_active_ms = now_ms()
        self.server_close: tuple[int, str] | None = None
        self.finished = asyncio.Event()
        self._close_task: asyncio.Task[Any] | None = None
        self._send_lock = asyncio.Lock()

    @property
    def connection_id(self) -> str:
        return self.info.connection_id

    @property
    def is_open(self) -> bool:
        return self.server_close is None and not self.socket.closed

    async def send(self, data: bytes) -> bool:
        """A text frame when the data is UTF-8 (what API Gateway sends), else a binary one."""
        if not self.is_open:
            return False
        try:
            async with self._send_lock:
                try:
                    await self.socket.send_str(data.decode("utf-8"))
                except UnicodeDecodeError:
                    await self.socket.send_bytes(data)
        except (ConnectionError, RuntimeError):
            return False
        return True

    def request_close(self, code: int, reason: str) -> None:
        """Server-side close (management DELETE, shutdown); $disconnect follows from the reader."""
        if self.server_close is not None:
            return
        self.server_close = (code, reason)
        self._close_task = asyncio.create_task(self.socket.close(code=code, message=reason.encode()))

    async def wait_closed(self) -> None:
        if self._close_task is not None:
            with contextlib.suppress(Exception):
                await self._close_task


def select_route_key(expression: str, body: str) -> str | None:
    """Evaluates `$request.body.<path>` against a JSON body; None means "use $default"."""
    expression = expression.strip()
    if expression.startswith("${") and expression.endswith("}"):
        expression = "$" + expression[2:-1]
    prefix = "$request.body."
    if not expression.startswith(prefix):
        return None
    try:
        value: Any = json.loads(body)
    except ValueError:
        return None
    for part in expression[len(prefix) :].split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    if not isinstance(value, str) or value.startswith("$"):
        return None
    return value


def choose_route(api: WebSocketApi, body: str) -> Route | None:
    route_key = select_route_key(api.route_selection_expression, body)
    if route_key is not None and route_key in api.routes:
        return api.routes[route_key]
    return api.routes.get(DEFAULT_ROUTE)


def authorizer_context(result: Any, arn: str, latency_ms: int) -> dict[str, Any]:
    """Reads a REQUEST authorizer's answer; raises the refusal API Gateway would answer with."""
    policy = result.get("policyDocument") if isinstance(result, Mapping) else None
    if not isinstance(policy, Mapping):
        raise _gateway_error(500, "Internal server error")
    statements = policy.get("Statement") or []
    if isinstance(statements, Mapping):
        statements = [statements]
    allowed = False
    for statement in statements:
        resources = statement.get("Resource") or []
        resources = [resources] if isinstance(resources, str) else resources
        if not any(fnmatchcase(arn, str(resource)) for resource in resources):
            continue
        effect = str(statement.get("Effect", "")).lower()
        if effect == "deny":
            raise _gateway_error(403, "Forbidden")
        allowed = allowed or effect == "allow"
    if not allowed:
        raise _gateway_error(403, "Forbidden")
    context = result.get("context") or {}
    if not isinstance(context, Mapping) or any(isinstance(v, (Mapping, list)) for v in context.values()):
        raise _gateway_error(500, "Internal server error")
    # API Gateway hands context values on as strings.
    stringified = {str(key): _context_text(value) for key, value in context.items()}
    return {
        **stringified,
        "principalId": str(result.get("principalId", "")),
        "integrationLatency": latency_ms,
    }


def _context_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _connect_status(result: Any) -> int:
    if not isinstance(result, Mapping) or "statusCode" not in result:
        return 200
    try:
        return int(result["statusCode"])
    except (TypeError, ValueError):
        return 500


class WebSocketGateway:
    def __init__(self, api: WebSocketApi, context: ApiContext, functions: Functions, limits: GatewayLimits) -> None:
        self.api = api
        self.context = context
        self.functions = functions
        self.limits = limits
        self.connections: dict[str, LocalConnection] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._handlers: set[asyncio.Task[Any]] = set()  # every WebSocket request, handshakes included
        self._stopping = False

    def live_connection(self, connection_id: str) -> LocalConnection | None:
        connection = self.connections.get(connection_id)
        return connection if connection is not None and connection.is_open else None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        socket = GatewayWebSocketResponse()
        if not socket.can_prepare(request).ok:
            return web.json_response({"message": "Upgrade Required"}, status=426)
        if self._stopping:
            return web.json_response({"message": "Service Unavailable"}, status=503)
        handler_task = asyncio.current_task()
        assert handler_task is not None
        self._handlers.add(handler_task)
        try:
            return await self._handle_upgrade(request, socket)
        finally:
            self._handlers.discard(handler_task)

    async def _handle_upgrade(self, request: web.Request, socket: GatewayWebSocketResponse) -> web.StreamResponse:
        peer = request.remote or ""
        info = ConnectionInfo(
            connection_id=new_connection_id(),
            connected_at_ms=now_ms(),
            source_ip=peer,
            user_agent=request.headers.get("User-Agent", ""),
            headers={"Host": request.host},
        )
        headers = self._forwarded_headers(request, peer)
        query = list(request.query.items())
        try:
            await self._run_connect(info, headers, query)
        except HandshakeRefusedError as refusal:
            logger.info("connect %s refused with %s", info.connection_id, refusal.status)
            return web.Response(status=refusal.status, text=refusal.body, content_type="application/json")
        try:
            await socket.prepare(request)
        except (ConnectionError, RuntimeError):
            await self._run_disconnect(info, CloseCode.ABNORMAL, _REASONS[CloseCode.ABNORMAL])
            return socket
        connection = LocalConnection(info, socket)
        self.connections[info.connection_id] = connection
        logger.info("connect %s accepted", info.connection_id)
        status, reason = CloseCode.ABNORMAL, _REASONS[CloseCode.ABNORMAL]
        try:
            if self._stopping:
                connection.request_close(CloseCode.GOING_AWAY, GOING_AWAY_REASON)
            status, reason = await self._serve(connection)
        finally:
            self.connections.pop(info.connection_id, None)
            if connection.server_close is not None:
                status, reason = connection.server_close
            await connection.wait_closed()
            await self._run_disconnect(info, status, reason)
            connection.finished.set()
        return socket

    def _forwarded_headers(self, request: web.Request, peer: str) -> list[tuple[str, str]]:
        headers = [(name, value) for name, value in request.headers.items()]
        port = str(request.url.port or "")
        headers += [("X-Forwarded-For", peer), ("X-Forwarded-Port", port), ("X-Forwarded-Proto", "http")]
        return headers

    async def _run_connect(
        self, info: ConnectionInfo, headers: list[tuple[str, str]], query: list[tuple[str, str]]
    ) -> None:
        route = self.api.routes.get(CONNECT_ROUTE)
        if route is None:
            return
        if route.authorizer is not None:
            info.authorizer = await self._authorize(route.authorizer, info, headers, query)
        try:
            result = await self.functions.invoke(route.function_id, connect_event(self.context, info, headers, query))
        except InvocationError:
            raise _gateway_error(500, "Internal server error") from None
        status = _connect_status(result)
        if not 200 <= status < 300:
            body = result.get("body") if isinstance(result, Mapping) else None
            raise HandshakeRefusedError(status, body if isinstance(body, str) else "")

    async def _authorize(
        self,
        authorizer: Authorizer,
        info: ConnectionInfo,
        headers: list[tuple[str, str]],
        query: list[tuple[str, str]],
    ) -> dict[str, Any]:
        if not _identity_sources_present(authorizer.identity_sources, headers, query):
            raise _gateway_error(401, UNAUTHORIZED_MESSAGE)
        event = authorizer_event(self.context, info, headers, query)
        started = time.monotonic()
        try:
            result = await self.functions.invoke(authorizer.function_id, event)
        except FunctionError as error:
            if error.error_message == UNAUTHORIZED_MESSAGE:
                raise _gateway_error(401, UNAUTHORIZED_MESSAGE) from None
            raise _gateway_error(500, "Internal server error") from None
        except InvocationError:
            raise _gateway_error(500, "Internal server error") from None
        latency_ms = int((time.monotonic() - started) * 1000)
        return authorizer_context(result, method_arn(self.context, CONNECT_ROUTE), latency_ms)

    async def _serve(self, connection: LocalConnection) -> tuple[int, str]:
        """Reads until the connection ends; returns the disconnect status and reason."""
        socket = connection.socket
        hard_deadline = connection.info.connected_at_ms / 1000 + self.limits.max_connection_seconds
        while True:
            idle_deadline = connection.last_active_ms / 1000 + self.limits.idle_timeout_seconds
            remaining = min(idle_deadline, hard_deadline) - time.time()
            if remaining <= 0:
                await socket.close(code=CloseCode.GOING_AWAY, message=GOING_AWAY_REASON.encode())
                return CloseCode.GOING_AWAY, GOING_AWAY_REASON
            try:
                message = await socket.receive(timeout=remaining)
            except TimeoutError:
                continue
            if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                connection.last_active_ms = now_ms()
                body = message.data if message.type == WSMsgType.TEXT else message.data.decode("utf-8", "replace")
                self._spawn(self._handle_message(connection, body, binary=message.type == WSMsgType.BINARY))
            elif message.type == WSMsgType.PING:
                await socket.pong(message.data)
            elif message.type == WSMsgType.CLOSE:
                code = int(message.data) if message.data else CloseCode.NO_STATUS
                return code, message.extra or _REASONS.get(code, "")
            elif message.type == WSMsgType.ERROR:
                code = getattr(message.data, "code", None) or CloseCode.ABNORMAL
                return code, _REASONS.get(code, "")
            elif message.type in (WSMsgType.CLOSING, WSMsgType.CLOSED):
                return CloseCode.ABNORMAL, _REASONS[CloseCode.ABNORMAL]

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle_message(self, connection: LocalConnection, body: str, *, binary: bool) -> None:
        request_id = new_request_id()
        route = self.api.routes.get(DEFAULT_ROUTE) if binary else choose_route(self.api, body)
        if route is None:
            await self._send_gateway_message(connection, "Forbidden", request_id)
            return
        event = message_event(
            self.context, connection.info, route_key=route.route_key, body=body, request_id=request_id
        )
        try:
            await self.functions.invoke(route.function_id, event, request_id)
        except InvocationError as error:
            logger.info("route %s on %s failed: %s", route.route_key, connection.connection_id, error)
            await self._send_gateway_message(connection, "Internal server error", request_id)

    async def _send_gateway_message(self, connection: LocalConnection, message: str, request_id: str) -> None:
        payload = {"message": message, "connectionId": connection.connection_id, "requestId": request_id}
        await connection.send(json.dumps(payload).encode())

    async def _run_disconnect(self, info: ConnectionInfo, status: int, reason: str) -> None:
        logger.info("disconnect %s (%s)", info.connection_id, int(status))
        route = self.api.routes.get(DISCONNECT_ROUTE)
        if route is None:
            return
        event = disconnect_event(self.context, info, status_code=int(status), reason=reason)
        with contextlib.suppress(InvocationError):
            await self.functions.invoke(route.function_id, event)

    async def close_all(self) -> None:
        """Shutdown: every client gets 1001, every $disconnect runs, in-flight messages finish."""
        self._stopping = True
        for connection in list(self.connections.values()):
            connection.request_close(CloseCode.GOING_AWAY, GOING_AWAY_REASON)
        # Handshakes still running $connect close as soon as they complete (see _handle_upgrade).
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=SHUTDOWN_INFLIGHT_SECONDS)
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=DISCONNECT_WAIT_SECONDS)


_HEADER_SOURCE = "route.request.header."
_QUERY_SOURCE = "route.request.querystring."


def _identity_sources_present(
    sources: tuple[str, ...], headers: list[tuple[str, str]], query: list[tuple[str, str]]
) -> bool:
    """API Gateway answers 401 without calling the authorizer when a listed source is missing."""
    present = {_HEADER_SOURCE + name.lower() for name, value in headers if value}
    present |= {_QUERY_SOURCE + name for name, value in query if value}
    for source in sources:
        if source.startswith(_HEADER_SOURCE):
            source = _HEADER_SOURCE + source.removeprefix(_HEADER_SOURCE).lower()
        elif not source.startswith(_QUERY_SOURCE):
            continue  # context and stage variables are always there locally
        if source not in present:
            return False
    return True
