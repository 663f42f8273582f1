"""A listener's refresh in flight when the speaker ends the session, on the real local stack: the
refresh finds the session gone (SESSION_NOT_FOUND) while the end's notice is still on its way to
the listener's old connection, which never went away. The listener must end as any connected
listener does, with the speaker's reason, once; not as one that was disconnected.

The race is made certain, not hoped for, by a relay between the listener and the stack that holds
bytes on their way: the refresh's request until the End has been answered and its notice has
reached the relay, and the old connection's notice until the refresh's answer has been acted on."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import pytest
from client_event_log import EventLog
from client_stacks import new_address, options_for, speaker_token, started, warm_up
from client_tcp_proxy import CuttableNetwork

from live_session_client import ClientState, ListenerClient, SpeakerClient

pytestmark = pytest.mark.e2e

# A refresh is due at 3 s of a connection's age and noticed at the next heartbeat (every second);
# connections live 60 s and silence is given 60 s, so nothing else closes one during a test.
REFRESH_PARAMETERS = {
    "CONNECTION_REFRESH_MINUTES": "0.05",
    "CONNECTION_WARNING_MINUTES": "0.9",
    "CONNECTION_MAX_MINUTES": "1",
    "HEARTBEAT_INTERVAL_SECONDS": "1",
    "HEARTBEAT_TIMEOUT_SECONDS": "60",
    "RATE_LIMIT_HEARTBEATS_PER_MIN": "100",
}
# The end of a WebSocket handshake request; what a client sends after it is frames.
END_OF_HANDSHAKE = b"\r\n\r\n"
WAIT_SECONDS = 30.0


@pytest.fixture(scope="module")
def refresh_stack():
    with started(REFRESH_PARAMETERS) as info:
        asyncio.run(asyncio.wait_for(warm_up(info), 120))
        yield info


class Valve:
    """One direction of one relayed connection: carries bytes on, or holds them in order until
    released. Nothing held is lost: a side that closes meanwhile is closed after the release."""

    def __init__(self, writer: asyncio.StreamWriter, hold_after: bytes | None = None) -> None:
        self.writer = writer
        self.held = bytearray()
        self.holding = False
        # Hold from the first byte after this marker on (None: carry until told to hold).
        self._hold_after = hold_after
        self._passed = bytearray()
        self._changed = asyncio.Event()

    def hold(self) -> None:
        self.holding = True

    def release(self) -> None:
        self.holding = False
        self.writer.write(bytes(self.held))
        self.held.clear()
        self._signal()

    def carry(self, data: bytes) -> None:
        if self._hold_after is not None:
            self._passed += data
            end = self._passed.find(self._hold_after)
            if end < 0:
                self.writer.write(data)
                return
            cut = len(data) - (len(self._passed) - end - len(self._hold_after))
            self.writer.write(data[:cut])
            data, self._hold_after, self.holding = data[cut:], None, True
        if self.holding:
            self.held += data
            self._signal()
        elif data:
            self.writer.write(data)

    async def until(self, condition: Callable[[Valve], bool], timeout: float = WAIT_SECONDS) -> None:
        async def reached() -> None:
            while not condition(self):
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(reached(), timeout)

    def _signal(self) -> None:
        self._changed.set()


class RelayedConnection:
    def __init__(self, to_server: Valve, to_client: Valve) -> None:
        self.to_server, self.to_client = to_server, to_client
        self.finished = asyncio.Event()


class HoldingNetwork(CuttableNetwork):
    """The relay of client_tcp_proxy, with each connection's two directions behind valves. From
    connection `hold_frames_from` on (1-based, in the order opened), what the client sends after
    its handshake is held until the test releases it."""

    def __init__(self, *args: object, hold_frames_from: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.hold_frames_from = hold_frames_from
        self.connections: list[RelayedConnection] = []
        self._opened = asyncio.Event()

    async def connection(self, number: int, timeout: float = WAIT_SECONDS) -> RelayedConnection:
        async def opened() -> RelayedConnection:
            while len(self.connections) < number:
                self._opened.clear()
                await self._opened.wait()
            return self.connections[number - 1]

        return await asyncio.wait_for(opened(), timeout)

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(
                *self.target, local_addr=(self.source_address, 0) if self.source_address else None
            )
        except OSError:
            client_writer.transport.abort()
            return
        number = len(self.connections) + 1
        hold_after = END_OF_HANDSHAKE if number >= self.hold_frames_from else None
        relayed = RelayedConnection(Valve(server_writer, hold_after), Valve(client_writer))
        self.connections.append(relayed)
        self._opened.set()
        pair = (client_writer, server_writer)
        self._pairs.add(pair)
        try:
            await asyncio.gather(_pipe(client_reader, relayed.to_server), _pipe(server_reader, relayed.to_client))
        finally:
            self._pairs.discard(pair)
            for writer in pair:
                writer.transport.abort()
            relayed.finished.set()


async def _pipe(reader: asyncio.StreamReader, valve: Valve) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            valve.carry(data)
            await valve.writer.drain()
        await valve.until(lambda v: not v.holding)  # what is held still goes on before the close
        await valve.writer.drain()
    valve.writer.transport.abort()


async def test_a_listener_whose_refresh_meets_the_end_is_told_the_speakers_reason_once(refresh_stack):
    url = refresh_stack["websocketUrl"]
    # GIVEN a listener behind a relay that holds what it sends on every connection after its first
    async with HoldingNetwork(
        "127.0.0.1", refresh_stack["port"], source_address=new_address(), hold_frames_from=2
    ) as network:
        speaker = SpeakerClient(url, speaker_token(refresh_stack), options=options_for())
        session_id = await speaker.start()
        # Heartbeats every second bring the refresh; acks held for a few seconds must not look
        # like a dead connection.
        listener = ListenerClient(network.url_for(url), session_id, "es", options_for(heartbeat=1.0, ack_timeout=60.0))
        log = EventLog(listener)
        await listener.start()
        old = await network.connection(1)
        # WHEN the listener's refresh is in flight: its new connection is open, and its first
        # frame, the refreshConnection, waits in the relay
        refreshing = await network.connection(2)
        await refreshing.to_server.until(lambda valve: len(valve.held) > 0)
        assert listener.state == ClientState.LIVE and listener.refresh_count == 0
        # AND the speaker ends the session meanwhile; its notice to the old connection reaches the
        # relay (the local gateway, like API Gateway, sends frames uncompressed) and waits there
        old.to_client.hold()
        await speaker.end()
        await old.to_client.until(lambda valve: b'"sessionEnded"' in valve.held)
        # AND the refresh goes on, finds the session gone, and the listener acts on that answer
        # (it closes the refused connection first); only then does the old connection deliver
        refreshing.to_server.release()
        await asyncio.wait_for(refreshing.finished.wait(), WAIT_SECONDS)
        await asyncio.sleep(0.2)  # not a measurement: a client that did not wait would have ended by now
        old.to_client.release()
        # THEN the listener ends once, with the speaker's reason, as a connected listener does
        events = await log.finished()
        assert log.states().count(ClientState.ENDED) == 1, log.describe()
        assert (events[-1].sentence, events[-1].reason) == ("The speaker ended the session.", "speakerEnded")
        await listener.close()
        await speaker.close()
