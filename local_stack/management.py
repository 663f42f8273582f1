"""The @connections management API (PostToConnection, GetConnection, DeleteConnection) on the
gateway's port, in the wire format botocore's `apigatewaymanagementapi` client parses."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

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


class ManagementApi:
    def __init__(self, gateway: WebSocketGateway) -> None:
        self._gateway = gateway

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
        if connection is None or not await connection.send(bytes(data)):
            return _gone()
        return web.Response(status=200)

    async def get_connection(self, request: web.Request) -> web.Response:
        connection = self._connection(request)
        if connection is None:
            return _gone()
        info = connection.info
        return web.json_response(
            {
                "connectedAt": _iso_8601(info.connected_at_ms),
                "identity": {"sourceIp": info.source_ip, "userAgent": info.user_agent},
                "lastActiveAt": _iso_8601(connection.last_active_ms),
            }
        )

    async def delete_connection(self, request: web.Request) -> web.Response:
        connection = self._connection(request)
        if connection is None:
            return _gone()
        connection.request_close(CloseCode.GOING_AWAY, GOING_AWAY_REASON)
        return web.Response(status=204)
