"""One WebSocket connection to the service: its reader, its heartbeat, and request/answer.

A client holds one link at a time, two while a refresh overlaps them. Messages that answer a
request go to the request; everything else goes to the client's `on_message`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import urllib.parse
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from live_session_client.errors import ConnectFailedError, LinkClosedError, NoAnswerError
from live_session_client.protocol import Action, MessageType, parse_frame
from live_session_client.sentences import UNREACHABLE_SENTENCE, explain_handshake

logger = logging.getLogger("live_session_client")

# A protocol message is at most 128 KB (API Gateway's limit).
MAX_MESSAGE_BYTES = 128 * 1024


@dataclass(frozen=True)
class LinkTimings:
    heartbeat_interval_seconds: float = 30.0
    # No heartbeatAck this long after a heartbeat: the connection is dead, even if TCP has not noticed.
    heartbeat_ack_timeout_seconds: float = 20.0
    request_timeout_seconds: float = 20.0
    open_timeout_seconds: float = 15.0
    # Passed to websockets.connect as they are: `additional_headers`, `ssl`, `local_addr`, ...
    connect_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("heartbeat_interval_seconds", "heartbeat_ack_timeout_seconds", "request_timeout_seconds"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")


def address_without_token(url: str) -> str:
    """The URL to show a person: no query string (a speaker's token travels there)."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def check_url(url: str) -> str:
    """The URL unchanged, or ValueError naming what is wrong with it."""
    try:
        websockets.uri.parse_uri(url)
    except InvalidURI as bad:
        raise ValueError(f"{address_without_token(url)!r} is not a ws:// or wss:// address") from bad
    return url


class Link:
    def __init__(
        self,
        connection: ClientConnection,
        timings: LinkTimings,
        on_message: Callable[[Link, dict[str, Any]], None],
        on_closed: Callable[[Link], None],
    ) -> None:
        self.connection = connection
        self.timings = timings
        self._on_message = on_message
        self._on_closed = on_closed
        self.closed = asyncio.Event()
        self.intentional_close = False
        self.missed_ack = False
        # What the server's close frame said (None: no close frame, e.g. a dropped network).
        self.close_code: int | None = None
        self.close_reason = ""
        self._ack = asyncio.Event()
        # (answer types, the future, the lineId the request names or None)
        self._pending: tuple[frozenset[str], asyncio.Future[dict[str, Any]], Any] | None = None
        self._request_lock = asyncio.Lock()
        self._reader = asyncio.create_task(self._read())
        self._heartbeats: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        url: str,
        token: str | None,
        timings: LinkTimings,
        on_message: Callable[[Link, dict[str, Any]], None],
        on_closed: Callable[[Link], None],
    ) -> Link:
        """Raises ConnectFailedError with the sentence for a refused or failed handshake."""
        address = url if token is None else _with_query(url, {"token": token})
        try:
            connection = await websockets.connect(
                address,
                proxy=None,
                ping_interval=None,  # the protocol's own heartbeat is what the server counts
                open_timeout=timings.open_timeout_seconds,
                max_size=MAX_MESSAGE_BYTES,
                **timings.connect_options,
            )
        except InvalidStatus as refused:
            status = refused.response.status_code
            raise ConnectFailedError(explain_handshake(status), status) from None
        except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed):
            raise ConnectFailedError(UNREACHABLE_SENTENCE.format(url=address_without_token(url))) from None
        return cls(connection, timings, on_message, on_closed)

    @property
    def is_closed(self) -> bool:
        return self.closed.is_set()

    # ------------------------------------------------------------ sending

    async def send(self, action: Action, **fields: Any) -> None:
        await self.connection.send(json.dumps({"action": action.value, **fields}))

    async def request(self, action: Action, answers: Collection[MessageType], **fields: Any) -> dict[str, Any]:
        """Send an action; return the first message of an answering type or an `error`.
        Raises LinkClosedError or NoAnswerError."""
        async with self._request_lock:
            if self.is_closed:
                raise LinkClosedError("The connection closed before the server answered.")
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self._pending = (frozenset(answers) | {MessageType.ERROR.value}, future, fields.get("lineId"))
            try:
                with contextlib.suppress(ConnectionClosed):
                    await self.send(action, **fields)
                try:
                    return await asyncio.wait_for(asyncio.shield(future), self.timings.request_timeout_seconds)
                except TimeoutError:
                    raise NoAnswerError(
                        f"The server did not answer {action.value} within "
                        f"{self.timings.request_timeout_seconds:g} seconds."
                    ) from None
            finally:
                self._pending = None

    def start_heartbeats(self) -> None:
        if self._heartbeats is None and not self.is_closed:
            self._heartbeats = asyncio.create_task(self._heartbeat())

    # ------------------------------------------------------------ closing

    async def close(self) -> None:
        """Close on purpose: the client does not treat it as a drop."""
        self.intentional_close = True
        self._stop_heartbeats()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.connection.close(), self.timings.open_timeout_seconds)
        self.abort()
        await self._reader

    def abort(self) -> None:
        """Drop the connection at once, as a dead network would."""
        transport = self.connection.transport
        if transport is not None:
            transport.abort()

    def _stop_heartbeats(self) -> None:
        if self._heartbeats is not None:
            self._heartbeats.cancel()

    # ------------------------------------------------------------ tasks

    async def _read(self) -> None:
        cancelled = False
        try:
            async for frame in self.connection:
                self._handle(parse_frame(frame))
        except ConnectionClosed:
            pass
        except asyncio.CancelledError:
            cancelled = True  # the program is shutting down: nobody is to reconnect
            raise
        except Exception:  # a bug in a handler must not leave the link half-alive
            logger.exception("live_session_client: message handler failed")
            self.abort()
        finally:
            self._stop_heartbeats()
            received = self.connection.protocol.close_rcvd
            self.close_code = received.code if received else None
            self.close_reason = received.reason if received else ""
            logger.info("live_session_client: connection closed (%s %s)", self.close_code, self.close_reason)
            self.closed.set()
            if self._pending is not None and not self._pending[1].done():
                self._pending[1].set_exception(LinkClosedError("The connection closed before the server answered."))
            if not cancelled:
                self._on_closed(self)

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == MessageType.HEARTBEAT_ACK:
            self._ack.set()
            return
        if self._pending is not None and kind in self._pending[0] and not self._pending[1].done():
            # A captionAccepted for another line answers an earlier request that timed out (its
            # line sent again, decision 78): not this request's answer.
            line_id = self._pending[2]
            if line_id is None or message.get("lineId", line_id) == line_id:
                self._pending[1].set_result(message)
                return
        self._on_message(self, message)

    async def _heartbeat(self) -> None:
        timings = self.timings
        next_beat = time.monotonic() + timings.heartbeat_interval_seconds
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.sleep(max(0.0, next_beat - time.monotonic()))
                self._ack.clear()
                await self.send(Action.HEARTBEAT)
                # The cadence counts from each send, so a slow ack does not slow the heartbeat down.
                next_beat = time.monotonic() + timings.heartbeat_interval_seconds
                try:
                    await asyncio.wait_for(self._ack.wait(), timings.heartbeat_ack_timeout_seconds)
                except TimeoutError:
                    self.missed_ack = True
                    logger.info("live_session_client: no heartbeatAck; treating the connection as dead")
                    self.abort()
                    return


def _with_query(url: str, query: dict[str, str]) -> str:
    parts = urllib.parse.urlsplit(url)
    extra = urllib.parse.urlencode(query)
    return urllib.parse.urlunsplit(parts._replace(query=f"{parts.query}&{extra}" if parts.query else extra))
