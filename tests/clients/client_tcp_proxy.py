"""A TCP relay between a client and the local stack that a test can cut (every connection at
once, as a Wi-Fi drop does) or take down (new connections refused, as a network that stays down)."""

from __future__ import annotations

import asyncio
import contextlib


class CuttableNetwork:
    def __init__(self, target_host: str, target_port: int, source_address: str | None = None) -> None:
        self.target = (target_host, target_port)
        # The address the stack sees the relayed connections come from.
        self.source_address = source_address
        self._server: asyncio.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self.port = 0
        self.connections_made = 0

    async def __aenter__(self) -> CuttableNetwork:
        await self.up()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.down()

    def url_for(self, websocket_url: str) -> str:
        scheme, rest = websocket_url.split("://", 1)
        path = rest.split("/", 1)[1]
        return f"{scheme}://127.0.0.1:{self.port}/{path}"

    async def up(self) -> None:
        """Carry connections (again, on the same port)."""
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        """Refuse new connections and cut the open ones."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        # Cut before waiting: since Python 3.12 wait_closed() also waits for open connections.
        self.cut()
        if server is not None:
            await server.wait_closed()

    def cut(self) -> None:
        """Drop every open connection without a closing handshake on either side."""
        for downstream, upstream in list(self._pairs):
            downstream.transport.abort()
            upstream.transport.abort()
        self._pairs.clear()

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections_made += 1
        try:
            local_addr = (self.source_address, 0) if self.source_address else None
            server_reader, server_writer = await asyncio.open_connection(*self.target, local_addr=local_addr)
        except OSError:
            client_writer.transport.abort()
            return
        pair = (client_writer, server_writer)
        self._pairs.add(pair)
        try:
            await asyncio.gather(_pipe(client_reader, server_writer), _pipe(server_reader, client_writer))
        finally:
            self._pairs.discard(pair)
            for writer in pair:
                writer.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()
