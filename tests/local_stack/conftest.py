"""Shared fixtures: the fixture stack, WebSocket clients and the records its probe functions keep."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from websockets.sync.client import ClientConnection, connect  # noqa: E402

from local_stack.testing import running_stack  # noqa: E402

FIXTURE_TEMPLATE = Path(__file__).resolve().parent / "fixtures" / "template.yaml"
REPLY_TIMEOUT_SECONDS = 10.0


@pytest.fixture(scope="module")
def stack() -> Iterator[dict[str, Any]]:
    with running_stack(template=FIXTURE_TEMPLATE) as ready:
        yield ready


def open_socket(stack: dict[str, Any], query: str = "") -> ClientConnection:
    url = stack["websocketUrl"] + (f"?{query}" if query else "")
    return connect(url, open_timeout=15, close_timeout=5, max_size=None, user_agent_header="probe-client/1.0")


def receive_json(socket: ClientConnection, timeout: float = REPLY_TIMEOUT_SECONDS) -> dict[str, Any]:
    return json.loads(socket.recv(timeout=timeout))


def echo(socket: ClientConnection, **fields: Any) -> dict[str, Any]:
    """Sends an `echo` action; the echo function posts back what it saw."""
    socket.send(json.dumps({"action": "echo", **fields}))
    return receive_json(socket)


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """A moto server of its own on loopback (not a local stack's), for one test module."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def dynamodb(endpoint: str, **config: Any) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(**config) if config else None,
    )


def management_client(stack: dict[str, Any]) -> Any:
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=stack["managementEndpoint"],
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


@pytest.fixture(scope="module")
def wait_for_record(stack: dict[str, Any]) -> Callable[..., dict[str, Any]]:
    """The event a probe function recorded under `<kind>#<key>`, waiting for it to appear."""
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=stack["motoEndpoint"],
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    table = stack["tables"]["RecordsTable"]

    def wait(kind: str, key: str, timeout: float = REPLY_TIMEOUT_SECONDS) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            item = dynamodb.get_item(TableName=table, Key={"pk": {"S": f"{kind}#{key}"}}).get("Item")
            if item is not None:
                return json.loads(item["event"]["S"])
            time.sleep(0.05)
        raise AssertionError(f"no {kind} record for {key} within {timeout} s")

    wait.dynamodb = dynamodb  # type: ignore[attr-defined]
    wait.table = table  # type: ignore[attr-defined]
    return wait
