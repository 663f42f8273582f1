"""The local stacks the client tests run against, and what tests need from them: speaker tokens,
client options with a fresh source address each, and a stand-in for caption fan-out that posts
through the stack's real management API to every listener connection the Connections table holds.

Linux routes all of 127.0.0.0/8 to loopback and the local gateway takes the source IP from the
socket, so each client from its own 127.44.x.y address keeps per-IP limits out of other tests."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
from boto3.dynamodb.conditions import Key

from live_session_client import ClientOptions, LinkTimings, ReconnectPolicy

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"

# Defaults of the template but for capacity (so a full session is quick to reach) and a small
# failed-join limit (so RATE_LIMIT_EXCEEDED is too); every client here has its own address.
DEFAULT_PARAMETERS = {"MAX_LISTENERS_PER_SESSION": "3", "RATE_LIMIT_FAILED_JOINS_PER_MIN": "3"}
# Seconds instead of minutes: refresh due at 1.2 s of age, warning at 1.8 s, closed at 6 s;
# heartbeats every second; a dropped speaker has 2 s to come back. Silence is given 15 s: on a
# loaded 2-core machine a heartbeat can wait seconds for its function, and a sweep that closes
# an honest connection would fail these tests for the wrong reason.
SHORT_PARAMETERS = {
    "CONNECTION_REFRESH_MINUTES": "0.02",
    "CONNECTION_WARNING_MINUTES": "0.03",
    "CONNECTION_MAX_MINUTES": "0.1",
    "HEARTBEAT_INTERVAL_SECONDS": "1",
    "HEARTBEAT_TIMEOUT_SECONDS": "15",
    "RATE_LIMIT_HEARTBEATS_PER_MIN": "100",
    "SESSION_MAX_DURATION_HOURS": "0.01",
    "SPEAKER_RECONNECT_GRACE_SECONDS": "2",
}

_addresses = (f"127.44.{n // 256 % 256}.{n % 256}" for n in itertools.count(257))


@contextmanager
def started(parameters: dict[str, str], **options: Any) -> Iterator[dict[str, Any]]:
    from local_stack.testing import running_stack

    with running_stack(template=TEMPLATE, env_vars={"Parameters": parameters}, warm_environments=1, **options) as info:
        yield info


def new_address() -> str:
    return next(_addresses)


def options_for(
    heartbeat: float = 30.0, give_up_after: float = 60.0, address: str | None = None, **timings: Any
) -> ClientOptions:
    return ClientOptions(
        timings=LinkTimings(
            heartbeat_interval_seconds=heartbeat,
            heartbeat_ack_timeout_seconds=timings.pop("ack_timeout", 10.0),
            request_timeout_seconds=30.0,
            open_timeout_seconds=30.0,
            connect_options={"local_addr": (address or new_address(), 0)},
        ),
        reconnect=ReconnectPolicy(base_seconds=0.2, cap_seconds=2.0, give_up_after_seconds=give_up_after),
        reorder_window_seconds=timings.pop("reorder_window", 0.5),
    )


_speakers = itertools.count(1)


def speaker_token(info: dict[str, Any], email: str | None = None) -> str:
    """A Cognito IdToken of a demo user (a new one each call unless `email` is given)."""
    email = email or f"client-speaker-{next(_speakers)}@example.org"
    query = urllib.parse.urlencode({"email": email})
    with urllib.request.urlopen(f"http://127.0.0.1:{info['port']}/_local/token?{query}", timeout=20) as response:
        return response.read().decode().strip()


async def delete_connection(info: dict[str, Any], connection_id: str) -> None:
    """DeleteConnection on the management API: the server closes that socket."""
    url = f"{info['managementEndpoint']}/@connections/{urllib.parse.quote(connection_id, safe='')}"

    def delete() -> int:
        with urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=20) as response:
            return response.status

    assert await asyncio.to_thread(delete) == 204


class CaptionFanOut:
    """Posts numbered captions to every listener of a session, found as the real fan-out finds
    them (the Connections table's sessionId index), through the stack's management API."""

    def __init__(self, info: dict[str, Any], session_id: str, language: str = "es") -> None:
        self.session_id, self.language = session_id, language
        credentials = {"region_name": "us-east-1", "aws_access_key_id": "local", "aws_secret_access_key": "local"}
        resource = boto3.resource("dynamodb", endpoint_url=info["motoEndpoint"], **credentials)
        self.table = resource.Table(info["tables"]["ConnectionsTable"])
        self.api = boto3.client("apigatewaymanagementapi", endpoint_url=info["managementEndpoint"], **credentials)
        self.delivered: list[int] = []  # seqs that reached at least one connection
        self._seq = 0

    def _listeners(self) -> list[str]:
        query = self.table.query(
            IndexName="sessionId-targetLanguage-index",
            KeyConditionExpression=Key("sessionId").eq(self.session_id) & Key("targetLanguage").eq(self.language),
        )
        return [item["connectionId"] for item in query["Items"]]

    def post_next(self) -> None:
        self._seq += 1
        seq = self._seq
        body = {
            "type": "caption",
            "timestamp": int(time.time() * 1000),
            "sessionId": self.session_id,
            "seq": seq,
            "lineId": f"line-{seq}",
            "language": self.language,
            "text": f"Línea {seq}",
            "final": True,
        }
        reached = 0
        for connection_id in self._listeners():
            try:
                self.api.post_to_connection(ConnectionId=connection_id, Data=json.dumps(body).encode())
                reached += 1
            except self.api.exceptions.GoneException:
                pass
        if reached:
            self.delivered.append(seq)

    async def run(self, stop: asyncio.Event, every: float = 0.05) -> None:
        while not stop.is_set():
            await asyncio.to_thread(self.post_next)
            await asyncio.sleep(every)


async def warm_up(info: dict[str, Any]) -> None:
    """One round of every action with patient timings, so each function has a warm execution
    environment before tests whose heartbeats count seconds (a cold start costs seconds here)."""
    from live_session_client import ListenerClient, LiveSessionError, SpeakerClient

    patient = {"heartbeat": 1.0, "ack_timeout": 30.0}
    speaker = SpeakerClient(info["websocketUrl"], speaker_token(info), options=options_for(**patient))
    listener = None
    try:
        session_id = await speaker.start()
        listener = ListenerClient(info["websocketUrl"], session_id, "es", options_for(**patient))
        await listener.start()
        await speaker.status()
        await listener.leave()
        await speaker.end()
    except LiveSessionError:
        pass  # best effort: while cold, the stack may be slow enough for the sweeper to close a link
    finally:
        await speaker.close()
        if listener is not None:
            await listener.close()
