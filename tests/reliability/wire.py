"""Clients of the local stack from many source addresses, and reads of its tables.

Linux routes all of 127.0.0.0/8 to loopback, and the local gateway takes `identity.sourceIp`
from the socket's peer address (local_stack/gateway.py), so a client bound to 127.x.y.z is a
client from its own address: per-IP limits of one test never touch another test's."""

from __future__ import annotations

import itertools
import urllib.parse
from typing import Any

import boto3
import websockets
from websockets.exceptions import InvalidStatus

from tests.e2e.client import ProtocolClient, Stack, _open_clients

# 127.0.0.1 is left to the other suites; each test takes fresh addresses from 127.20.0.0/14.
_addresses = (f"127.{20 + n // 65536 % 4}.{n // 256 % 256}.{n % 256}" for n in itertools.count(256))


def new_address() -> str:
    return next(_addresses)


async def connect_from(
    stack: Stack,
    address: str,
    token: str | None = None,
    *,
    bearer: str | None = None,
    query: dict[str, str] | None = None,
    keepalive: float | None = None,
) -> ProtocolClient:
    """A connection whose source address is `address` (a speaker when a token is given)."""
    parameters = dict(query or {})
    if token is not None:
        parameters["token"] = token
    url = stack.url + (f"?{urllib.parse.urlencode(parameters)}" if parameters else "")
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else None
    connection = await websockets.connect(
        url,
        additional_headers=headers,
        proxy=None,
        ping_interval=None,
        open_timeout=60,
        max_size=None,
        local_addr=(address, 0),
    )
    client = ProtocolClient(connection, keepalive)
    _open_clients.append(client)
    return client


async def handshake_status(stack: Stack, address: str, token: str | None = None, **options: Any) -> int:
    """101 when the handshake upgraded (the connection is closed again), else the HTTP status."""
    try:
        client = await connect_from(stack, address, token, **options)
    except InvalidStatus as refused:
        return refused.response.status_code
    await client.close()
    return 101


def dynamodb_of(stack: Stack):
    return boto3.client(
        "dynamodb",
        endpoint_url=stack.info["motoEndpoint"],
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
