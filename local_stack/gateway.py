"""The WebSocket side of API Gateway, on the `websockets` library: the $connect handshake
(REQUEST authorizer, then the $connect integration deciding the upgrade, both inside
`process_request`), route selection, $disconnect, and the idle, hard, frame and message limits.

The management API and the page are HTTP with request bodies, which websockets does not serve;
they live on their own loopback port (local_stack/management.py, docs/local-stack.md)."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import http
import json
import logging
import socket
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response
from websockets.protocol import State

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
from local_stack.functions import INIT_TIMEOUT_SECONDS, FunctionError, Functions, InvocationError
from local_stack.template import Authorizer, Route, WebSocketApi

__all__ = ["CloseCode", "GatewayLimits", "LocalConnection", "WebSocketGateway"]

logger = logging.getLogger(__name__)
# websockets logs every open and close at INFO; the console is for the functions' logs.
_websockets_logger = logging.getLogger("local_stack.websockets")
_websockets_logger.setLevel(logging.WARNING)

MAX_MESSAGE_BYTES = 128 * 1024
MAX_FRAME_BYTES = 32 * 1024
CLOSE_HANDSHAKE_SECONDS = 3.0
# Reading the upgrade request itself; the $connect functions' own time limits come on top.
REQUEST_READ_SECONDS = 10.0
UNAUTHORIZED_MESSAGE = "Unauthorized"
DISCONNECT_WAIT_SECONDS = 60.0
# On shutdown, message invocations still running get this long before their workers are stopped
# (a hung handler must not hold Ctrl-C for its whole Timeout).
SHUTDOWN_INFLIGHT_SECONDS = 5.0
# Paths of the HTTP side that a browser or `make token` may try on the WebSocket port.
_LOCAL_ONLY_PREFIX = "/_local/"

GOING_AWAY_REASON = "Going away"
_REASONS = {
    CloseCode.NO_STATUS_RCVD: "Client-side close frame status not set",
    CloseCode.ABNORMAL_CLOSURE: "Connection closed abnormally",
    CloseCode.MESSAGE_TOO_BIG: "Message too big",
}


@dataclass(frozen=True)
class GatewayLimits:
    idle_timeout_seconds: float = 600.0
    max_connection_seconds: float = 7200.0


class HandshakeRefusedError(Exception):
    def __init__(self, status: int, body: str, why: str = "") -> None:
        super().__init__(f"handshake refused with {status}")
        self.status = status
        self.body = body
        self.why = why


def _gateway_error(status: int, message: str, why: str = "") -> HandshakeRefusedError:
    return HandshakeRefusedError(status, json.dumps({"message": message}), why)


def _http_response(status: int, body: str, *, extra_headers: tuple[tuple[str, str], ...] = ()) -> Response:
    """A handshake refusal as API Gateway sends it: JSON, any status the $connect integration chose."""
    data = body.encode()
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Length", str(len(data))),
            ("Content-Type", "application/json"),
            *extra_headers,
        ]
    )
    return Response(status, phrase, headers, data)


class LocalConnection:
    """An established connection, as the management API and $disconnect know it."""

    def __init__(self, info: ConnectionInfo, socket: ServerConnection) -> None:
        self.info = info
        self.socket = socket
        # The idle timer starts once the handshake is done, not while $connect ran.
        self.last_active_ms = now_ms()
        self.server_close: tuple[int, str] | None = None
        self._close_task: asyncio.Task[Any] | None = None

    @property
    def connection_id(self) -> str:
        return self.info.connection_id

    @property
    def is_open(self) -> bool:
        return self.server_close is None and self.socket.state is State.OPEN

    async def send(self, data: bytes) -> bool:
        """A text frame when the data is UTF-8 (what API Gateway sends), else a binary one."""
        if not self.is_open:
            return False
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        try:
            await self.socket.send(text if text is not None else data)
        except ConnectionClosed:
            return False
        return True

    def request_close(self, code: int, reason: str) -> None:
        """Server-side close (management DELETE, timeouts, shutdown); $disconnect follows from the reader."""
        if self.server_close is not None:
            return
        self.server_close = (code, reason)
        self._close_task = asyncio.create_task(self.socket.close(code, reason))

    async def wait_closed(self) -> None:
        if self._close_task is not None:
            with contextlib.suppress(Exception):
                await self._close_task
        await self.socket.wait_closed()


def close_status(socket: ServerConnection) -> tuple[int, str]:
    """The disconnectStatusCode and reason of a connection that closed without a server close."""
    protocol = socket.protocol
    received, sent = protocol.close_rcvd, protocol.close_sent
    if received is not None and (sent is None or protocol.close_rcvd_then_sent):
        code, reason = received.code, received.reason  # the client closed
    elif sent is not None:
        code, reason = sent.code, ""  # websockets failed it: 1009 for a frame or message too big
    else:
        code, reason = CloseCode.ABNORMAL_CLOSURE, ""  # the TCP connection dropped
    return int(code), reason or _REASONS.get(code, "")


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
        self._path = f"/{api.stage_name}"
        self._http_base_url = ""
        self._server: Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()  # message invocations
        # Handshakes that $connect accepted, until their connection handler claims them.
        self._accepted: dict[ServerConnection, ConnectionInfo] = {}
        self._watchers: set[asyncio.Task[Any]] = set()
        self._stopping = False

    def live_connection(self, connection_id: str) -> LocalConnection | None:
        connection = self.connections.get(connection_id)
        return connection if connection is not None and connection.is_open else None

    async def start(self, listener: socket.socket, http_base_url: str) -> None:
        """Serves on `listener`; `/` and `/_local/...` redirect to the HTTP side at `http_base_url`."""
        self._http_base_url = http_base_url
        self._server = await serve(
            self._serve_connection,
            sock=listener,
            process_request=self._process_request,
            # API Gateway negotiates no extension, so frame sizes are wire sizes.
            compression=None,
            max_size=(MAX_MESSAGE_BYTES, MAX_FRAME_BYTES),
            open_timeout=self._open_timeout(),
            ping_interval=None,  # API Gateway answers pings but sends none
            close_timeout=CLOSE_HANDSHAKE_SECONDS,
            server_header=None,
            logger=_websockets_logger,
        )

    def _open_timeout(self) -> float:
        """Long enough for a cold authorizer and a cold $connect at their full Timeout."""
        route = self.api.routes.get(CONNECT_ROUTE)
        function_ids = [] if route is None else [route.function_id]
        if route is not None and route.authorizer is not None:
            function_ids.append(route.authorizer.function_id)
        budget = REQUEST_READ_SECONDS
        for function_id in function_ids:
            pool = self.functions.pools.get(function_id)
            budget += INIT_TIMEOUT_SECONDS + (pool.function.timeout_seconds if pool is not None else 30.0)
        return budget

    async def _process_request(self, socket: ServerConnection, request: Request) -> Response | None:
        """Decides the upgrade before websockets answers it: path, then the REQUEST authorizer and
        the $connect integration, as API Gateway does."""
        path, _, query_text = request.path.partition("?")
        if path != self._path:
            if path == "/" or path.startswith(_LOCAL_ONLY_PREFIX):
                location = self._http_base_url + request.path
                return _http_response(307, json.dumps({"location": location}), extra_headers=(("Location", location),))
            return _http_response(404, json.dumps({"message": "Not Found"}))
        if self._stopping:
            return _http_response(503, json.dumps({"message": "Service Unavailable"}))
        upgrade = socket.protocol.accept(request)
        if upgrade.status_code != http.HTTPStatus.SWITCHING_PROTOCOLS:
            return upgrade  # not a WebSocket handshake: websockets' 426 or 400, before any function runs
        peer = socket.remote_address[0] if socket.remote_address else ""
        info = ConnectionInfo(
            connection_id=new_connection_id(),
            connected_at_ms=now_ms(),
            source_ip=peer,
            user_agent=request.headers.get("User-Agent", ""),
            headers={"Host": request.headers.get("Host", "")},
        )
        headers = list(request.headers.raw_items())
        local_port = str(socket.local_address[1]) if socket.local_address else ""
        headers += [("X-Forwarded-For", peer), ("X-Forwarded-Port", local_port), ("X-Forwarded-Proto", "http")]
        query = urllib.parse.parse_qsl(query_text, keep_blank_values=True)
        try:
            await self._run_connect(info, headers, query)
        except HandshakeRefusedError as refusal:
            because = f" ({refusal.why})" if refusal.why else ""
            logger.info("connect %s refused with %s%s", info.connection_id, refusal.status, because)
            return _http_response(refusal.status, refusal.body)
        self._accepted[socket] = info
        # websockets skips the connection handler when the client leaves (or the server stops)
        # between here and the 101; $connect has run, so $disconnect must run too.
        watcher = asyncio.create_task(self._disconnect_if_never_opened(socket, info))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        return upgrade

    async def _disconnect_if_never_opened(self, socket: ServerConnection, info: ConnectionInfo) -> None:
        await socket.wait_closed()
        if self._accepted.pop(socket, None) is not None:
            code = CloseCode.GOING_AWAY if self._stopping else CloseCode.ABNORMAL_CLOSURE
            await self._run_disconnect(info, code, GOING_AWAY_REASON if self._stopping else _REASONS[code])

    async def _serve_connection(self, socket: ServerConnection) -> None:
        info = self._accepted.pop(socket, None)
        if info is None:  # only handshakes that $connect accepted are upgraded
            await socket.close(CloseCode.INTERNAL_ERROR)
            return
        connection = LocalConnection(info, socket)
        self.connections[info.connection_id] = connection
        logger.info("connect %s accepted", info.connection_id)
        status, reason = CloseCode.ABNORMAL_CLOSURE, _REASONS[CloseCode.ABNORMAL_CLOSURE]
        try:
            if self._stopping:
                connection.request_close(CloseCode.GOING_AWAY, GOING_AWAY_REASON)
            status, reason = await self._read_messages(connection)
        finally:
            self.connections.pop(info.connection_id, None)
            if connection.server_close is not None:
                status, reason = connection.server_close
            await connection.wait_closed()
            await self._run_disconnect(info, status, reason)

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
                why = f"{authorizer.function_id} answered Unauthorized"
                raise _gateway_error(401, UNAUTHORIZED_MESSAGE, why=why) from None
            raise _gateway_error(500, "Internal server error") from None
        except InvocationError:
            raise _gateway_error(500, "Internal server error") from None
        latency_ms = int((time.monotonic() - started) * 1000)
        return authorizer_context(result, method_arn(self.context, CONNECT_ROUTE), latency_ms)

    async def _read_messages(self, connection: LocalConnection) -> tuple[int, str]:
        """Reads until the connection ends; returns the disconnect status and reason."""
        socket = connection.socket
        hard_deadline = connection.info.connected_at_ms / 1000 + self.limits.max_connection_seconds
        while True:
            idle_deadline = connection.last_active_ms / 1000 + self.limits.idle_timeout_seconds
            remaining = min(idle_deadline, hard_deadline) - time.time()
            if remaining <= 0:
                connection.request_close(CloseCode.GOING_AWAY, GOING_AWAY_REASON)
                remaining = CLOSE_HANDSHAKE_SECONDS * 2  # until the close handshake ends the reads
            try:
                async with asyncio.timeout(remaining):
                    message = await socket.recv()  # cancelling recv loses nothing (websockets docs)
            except TimeoutError:
                continue
            except ConnectionClosed:
                return close_status(socket)
            connection.last_active_ms = now_ms()
            if isinstance(message, str):
                self._spawn(self._handle_message(connection, message, binary=False))
            else:
                self._spawn(self._handle_message(connection, message.decode("utf-8", "replace"), binary=True))

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
        if route.mock is not None:
            # Answered here, as API Gateway answers a MOCK: no function runs. The connection's
            # lastActiveAt already moved when the message arrived (_read_messages).
            reply = route.mock.answer(event["requestContext"])
            if reply is not None:
                await connection.send(reply.encode())
            return
        assert route.function_id is not None  # only MOCK routes have none
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
        """Shutdown: every client gets 1001, every $disconnect runs, in-flight messages finish.

        A handshake whose $connect is still running gets 503 when it completes, and its
        $disconnect runs (see _disconnect_if_never_opened)."""
        self._stopping = True
        for connection in list(self.connections.values()):
            connection.request_close(CloseCode.GOING_AWAY, GOING_AWAY_REASON)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=SHUTDOWN_INFLIGHT_SECONDS)
        server, self._server = self._server, None
        if server is not None:
            server.close(code=CloseCode.GOING_AWAY, reason=GOING_AWAY_REASON)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), DISCONNECT_WAIT_SECONDS)
        if self._watchers:
            await asyncio.wait(list(self._watchers), timeout=DISCONNECT_WAIT_SECONDS)


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
