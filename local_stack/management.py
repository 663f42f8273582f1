"""The @connections management API (PostToConnection, GetConnection, DeleteConnection) on the
HTTP side's port, in the wire format botocore's `apigatewaymanagementapi` client parses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
from aiohttp import web

from local_stack.apigateway_events import now_ms
from local_stack.gateway import GOING_AWAY_REASON, CloseCode, LocalConnection, WebSocketGateway

MAX_POST_BYTES = 128 * 1024


def _error(status: int, error_type: str, message: str) -> web.Response:
    # botocore reads the error code from this header (restJson protocol).
    return web.json_response({"message": message}, status=status, headers={"x-amzn-ErrorType": error_type})


def _gone() -> web.Response:
    return _error(410, "GoneException", "The connection with the provided id no longer exists.")


def _payload_too_large() -> web.Response:
    return _error(413, "PayloadTooLargeException", "Message too long")


def _iso_8601(epoch_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class Call:
    """One management API call an invoked function made."""

    operation: str
    connection_id: str
    data: bytes
    outcome: str


class InvokeConnection:
    """`make invoke` has no client: the event's own connection is played here, so what the
    function posts to it is kept (and answered as a live client's connection would be); a call
    for any other connection goes to the running local stack whose tables the invocation uses,
    if there is one, and is otherwise answered 410 Gone."""

    def __init__(self, connection_id: str | None, forward_to: str | None) -> None:
        self.connection_id = connection_id
        self._forward_to = forward_to
        self._connected_at_ms = now_ms()
        self.calls: list[Call] = []

    def describe(self) -> list[str]:
        return [_describe(call, own=call.connection_id == self.connection_id) for call in self.calls]

    async def answer(self, request: web.Request, data: bytes) -> web.Response:
        connection_id = request.match_info["connection_id"]
        operation = {"POST": "post", "GET": "get", "DELETE": "delete"}[request.method]
        if connection_id == self.connection_id:
            self.calls.append(Call(operation, connection_id, data, "ok"))
            if operation == "get":
                return _description(self._connected_at_ms, "127.0.0.1", "local_stack invoke", now_ms())
            return web.Response(status=204 if operation == "delete" else 200)
        if self._forward_to is None:
            self.calls.append(Call(operation, connection_id, data, "gone"))
            return _gone()
        url = f"{self._forward_to}/@connections/{connection_id}"
        async with aiohttp.ClientSession() as client, client.request(request.method, url, data=data) as answer:
            body = await answer.read()
            self.calls.append(Call(operation, connection_id, data, "forwarded" if answer.status < 300 else "gone"))
            headers = {name: value for name, value in answer.headers.items() if name.lower().startswith("x-amzn")}
            return web.Response(status=answer.status, body=body, headers=headers, content_type=answer.content_type)


def _describe(call: Call, *, own: bool) -> str:
    whose = "the event's connection" if own else f"connection {call.connection_id}"
    outcome = {
        "ok": "",
        "forwarded": " (delivered by the running local stack)",
        "gone": " (410 Gone: no such connection)",
    }[call.outcome]
    if call.operation == "post":
        return f"posted to {whose}{outcome}: {call.data.decode('utf-8', 'replace')}"
    verb = "closed" if call.operation == "delete" else "looked up"
    return f"{verb} {whose}{outcome}"


def _description(connected_at_ms: int, source_ip: str, user_agent: str, last_active_ms: int) -> web.Response:
    return web.json_response(
        {
            "connectedAt": _iso_8601(connected_at_ms),
            "identity": {"sourceIp": source_ip, "userAgent": user_agent},
            "lastActiveAt": _iso_8601(last_active_ms),
        }
    )


class ManagementApi:
    def __init__(self, gateway: WebSocketGateway, invoke_connection: InvokeConnection | None = None) -> None:
        self._gateway = gateway
        self._invoke_connection = invoke_connection

    def add_routes(self, app: web.Application, stage: str) -> None:
        path = f"/{stage}/@connections/{{connection_id}}"
        app.router.add_post(path, self.post_to_connection)
        app.router.add_get(path, self.get_connection)
        app.router.add_delete(path, self.delete_connection)

    def _connection(self, request: web.Request) -> LocalConnection | None:
        return self._gateway.live_connection(request.match_info["connection_id"])

    async def post_to_connection(self, request: web.Request) -> web.Response:
        # Checked before reading: aiohttp would answer a body over its own 1 MB limit with a bare
        # 413 that botocore cannot name, and a huge body need not be buffered to be refused.
        if request.content_length is not None and request.content_length > MAX_POST_BYTES:
            return _payload_too_large()
        data = bytearray()  # a chunked body has no length: read at most one byte past the limit
        while len(data) <= MAX_POST_BYTES and (chunk := await request.content.read(MAX_POST_BYTES + 1 - len(data))):
            data += chunk
        if len(data) > MAX_POST_BYTES:
            return _payload_too_large()
        connection = self._connection(request)
        if connection is None and self._invoke_connection is not None:
            return await self._invoke_connection.answer(request, bytes(data))
        if connection is None or not await connection.send(bytes(data)):
            return _gone()
        return web.Response(status=200)

    async def get_connection(self, request: web.Request) -> web.Response:
        connection = self._connection(request)
        if connection is None and self._invoke_connection is not None:
            return await self._invoke_connection.answer(request, b"")
        if connection is None:
            return _gone()
        info = connection.info
        return _description(info.connected_at_ms, info.source_ip, info.user_agent, connection.last_active_ms)

    async def delete_connection(self, request: web.Request) -> web.Response:
        connection = self._connection(request)
        if connection is None and self._invoke_connection is not None:
            return await self._invoke_connection.answer(request, b"")
        if connection is None:
            return _gone()
        connection.request_close(CloseCode.GOING_AWAY, GOING_AWAY_REASON)
        return web.Response(status=204)
