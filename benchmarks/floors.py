"""The floors, measured in the same run as the scenarios: the DynamoDB requests an operation needs at
least, issued directly to the stack's own moto (on scratch tables of the same shape), and a bare
WebSocket echo over loopback. A scenario's latency divided by its floor is what our code adds."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import websockets
from botocore.config import Config

from benchmarks.figures import percentiles


class MotoFloor:
    """Scratch Sessions and Connections tables on the stack's moto, and the minimal requests."""

    def __init__(self, endpoint: str) -> None:
        self.client = boto3.client(
            "dynamodb",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
            config=Config(max_pool_connections=64, retries={"mode": "standard", "max_attempts": 1}),
        )
        suffix = uuid.uuid4().hex[:8]
        self.sessions, self.connections = f"floor-sessions-{suffix}", f"floor-connections-{suffix}"
        for name, key in ((self.sessions, "sessionId"), (self.connections, "connectionId")):
            self.client.create_table(
                TableName=name,
                AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
                KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
                BillingMode="PAY_PER_REQUEST",
            )

    def close(self) -> None:
        for name in (self.sessions, self.connections):
            self.client.delete_table(TableName=name)

    # One function per operation: the requests it cannot do without.
    def connect(self, connection_id: str) -> None:
        self.client.put_item(
            TableName=self.connections,
            Item={"connectionId": {"S": connection_id}, "ttl": {"N": str(int(time.time()) + 7200)}},
            ConditionExpression="attribute_not_exists(connectionId)",
        )

    def create(self, session_id: str, connection_id: str) -> None:
        """The create transaction alone: the speaker's $connect happened before, as in the scenario."""
        self.client.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": self.sessions,
                        "Item": {
                            "sessionId": {"S": session_id},
                            "listenerCount": {"N": "0"},
                            "isActive": {"BOOL": True},
                        },
                        "ConditionExpression": "attribute_not_exists(sessionId)",
                    }
                },
                self._claim(connection_id, session_id),
            ]
        )

    def join(self, session_id: str, connection_id: str) -> None:
        self.client.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": self.sessions,
                        "Key": {"sessionId": {"S": session_id}},
                        "UpdateExpression": "ADD listenerCount :one",
                        "ConditionExpression": "isActive = :true AND listenerCount < :cap",
                        "ExpressionAttributeValues": {
                            ":one": {"N": "1"},
                            ":true": {"BOOL": True},
                            ":cap": {"N": "100000"},
                        },
                    }
                },
                self._claim(connection_id, session_id),
            ]
        )

    def heartbeat(self, connection_id: str) -> None:
        self.client.update_item(
            TableName=self.connections,
            Key={"connectionId": {"S": connection_id}},
            UpdateExpression="SET lastSeenAt = :now",
            ConditionExpression="attribute_exists(connectionId)",
            ExpressionAttributeValues={":now": {"N": str(int(time.time() * 1000))}},
        )

    def disconnect(self, session_id: str, connection_id: str) -> None:
        self.client.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": self.sessions,
                        "Key": {"sessionId": {"S": session_id}},
                        "UpdateExpression": "ADD listenerCount :minus",
                        "ConditionExpression": "listenerCount > :zero",
                        "ExpressionAttributeValues": {":minus": {"N": "-1"}, ":zero": {"N": "0"}},
                    }
                },
                {
                    "Delete": {
                        "TableName": self.connections,
                        "Key": {"connectionId": {"S": connection_id}},
                        "ConditionExpression": "sessionId = :session",
                        "ExpressionAttributeValues": {":session": {"S": session_id}},
                    }
                },
            ]
        )

    def detach(self, session_id: str, connection_id: str) -> None:
        """The fan-out's per-listener write (decision 25): a conditional detach."""
        self.client.update_item(
            TableName=self.connections,
            Key={"connectionId": {"S": connection_id}},
            UpdateExpression="REMOVE sessionId",
            ConditionExpression="sessionId = :session",
            ExpressionAttributeValues={":session": {"S": session_id}},
        )

    def _claim(self, connection_id: str, session_id: str) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self.connections,
                "Key": {"connectionId": {"S": connection_id}},
                "UpdateExpression": "SET sessionId = :session",
                "ConditionExpression": "attribute_exists(connectionId) AND attribute_not_exists(sessionId)",
                "ExpressionAttributeValues": {":session": {"S": session_id}},
            }
        }


def timed_concurrently(count: int, in_flight: int, operation: Callable[[int], None]) -> dict[str, Any]:
    """Runs operation(i) for i < count, in_flight at a time; latency percentiles and elapsed time."""
    latencies: list[float] = []

    def one(index: int) -> None:
        started = time.perf_counter()
        operation(index)
        latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=in_flight) as pool:
        list(pool.map(one, range(count)))
    return {**percentiles(latencies), "seconds": time.perf_counter() - started}


def moto_floors(endpoint: str, *, listeners: int, in_flight: int, sequential: int) -> dict[str, dict[str, Any]]:
    """The DynamoDB floor of every scenario, with the scenario's own concurrency."""
    floor = MotoFloor(endpoint)
    try:
        floors: dict[str, dict[str, Any]] = {}
        session = "floor-session"
        creators = ["floor-speaker"] + [f"floor-creator-{i}" for i in range(100)]
        creators += [f"floor-seq-speaker-{i}" for i in range(sequential)]
        creators += [f"floor-seq-listener-{i}" for i in range(sequential)]
        for connection_id in creators:
            floor.connect(connection_id)
        floor.create(session, "floor-speaker")
        ids = [f"storm-{index}" for index in range(listeners)]

        def connect_and_join(index: int) -> None:
            floor.connect(ids[index])
            floor.join(session, ids[index])

        floors["join storm"] = timed_concurrently(listeners, in_flight, connect_and_join)
        floors["heartbeat"] = timed_concurrently(listeners, in_flight, lambda index: floor.heartbeat(ids[index]))
        floors["fan-out"] = timed_concurrently(listeners, in_flight, lambda index: floor.detach(session, ids[index]))
        for index in range(listeners):  # seated again, so disconnects have seats to give up
            floor.client.update_item(
                TableName=floor.connections,
                Key={"connectionId": {"S": ids[index]}},
                UpdateExpression="SET sessionId = :session",
                ExpressionAttributeValues={":session": {"S": session}},
            )
        floors["disconnects"] = timed_concurrently(
            listeners, in_flight, lambda index: floor.disconnect(session, ids[index])
        )
        floors["creations"] = timed_concurrently(
            100, 100, lambda index: floor.create(f"floor-created-{index}", f"floor-creator-{index}")
        )
        floors["sequential join"] = timed_concurrently(
            sequential, 1, lambda index: floor.join(session, f"floor-seq-listener-{index}")
        )
        floors["sequential create"] = timed_concurrently(
            sequential, 1, lambda index: floor.create(f"floor-seq-{index}", f"floor-seq-speaker-{index}")
        )
        floors["sequential heartbeat"] = timed_concurrently(
            sequential, 1, lambda index: floor.heartbeat("floor-speaker")
        )
        return floors
    finally:
        floor.close()


async def echo_floor(*, round_trips: int, in_flight: int) -> dict[str, Any]:
    """A bare websockets echo server and client on loopback: what any WebSocket costs here."""

    async def echo(connection: Any) -> None:
        async for message in connection:
            await connection.send(message)

    async with websockets.serve(echo, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        gate = asyncio.Semaphore(in_flight)
        latencies: list[float] = []

        async def one(connection: Any) -> None:
            async with gate:
                started = time.perf_counter()
                await connection.send('{"action":"heartbeat"}')
                await connection.recv()
                latencies.append((time.perf_counter() - started) * 1000)

        connections = [await websockets.connect(f"ws://127.0.0.1:{port}") for _ in range(min(in_flight, 50))]
        try:
            started = time.perf_counter()
            await asyncio.gather(*(one(connections[index % len(connections)]) for index in range(round_trips)))
            elapsed = time.perf_counter() - started
        finally:
            for connection in connections:
                await connection.close()
    return {**percentiles(latencies), "seconds": elapsed}
