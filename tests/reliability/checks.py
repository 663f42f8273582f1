"""What every reliability test ends with: the invariant check over the tables, and before/after
snapshots that show a rejected request changed nothing. Works on the local stack's embedded
DynamoDB and on the unit suite's in-process moto alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from local_stack.invariants import check_invariants
from tests.e2e.client import Stack

from .wire import dynamodb_of

# Attributes that change without any request being accepted: heartbeats mark liveness and
# count themselves per minute (`hb<minute>`, decision 7).
_VOLATILE = ("lastSeenAt",)
_deserializer = TypeDeserializer()


@dataclass(frozen=True)
class Tables:
    client: Any
    names: dict[str, str]  # logical id -> table name

    @classmethod
    def of_stack(cls, stack: Stack) -> Tables:
        return cls(dynamodb_of(stack), dict(stack.info["tables"]))

    def scan(self, logical_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        paginator = self.client.get_paginator("scan")
        for page in paginator.paginate(TableName=self.names[logical_id], ConsistentRead=True):
            items += [_plain(item) for item in page["Items"]]
        return items


def unit_tables(dynamodb_client: Any) -> Tables:
    """The unit suite's moto tables (tests/conftest.py names them by logical id), with the TTL
    attributes the template gives them, which the invariant checker requires."""
    from tests.conftest import template_tables

    for logical_id, properties in template_tables().items():
        ttl = properties.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            dynamodb_client.update_time_to_live(
                TableName=logical_id,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )
    return Tables(dynamodb_client, {logical_id: logical_id for logical_id in template_tables()})


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {
        key: _deserializer.deserialize(value)
        for key, value in item.items()
        if key not in _VOLATILE and not (key.startswith("hb") and key[2:].isdigit())
    }


def _tables(where: Stack | Tables) -> Tables:
    return where if isinstance(where, Tables) else Tables.of_stack(where)


def assert_invariants(where: Stack | Tables) -> None:
    """Every violation the checker (local_stack/invariants.py) finds in the tables."""
    tables = _tables(where)
    violations = _violations(tables)
    assert not violations, "invariants violated:\n" + "\n".join(map(str, violations))


def _violations(tables: Tables) -> list[Any]:
    return check_invariants(tables.client, tables.names)


def snapshot(where: Stack | Tables, session_ids: set[str] | None, since_ms: int = 0) -> dict[str, Any]:
    """The test's own state: its sessions' items (every session when None), and every connection
    item made since the test began (older items belong to other tests, which the sweeper may still
    be tidying)."""
    tables = _tables(where)
    sessions = {
        item["sessionId"]: item
        for item in tables.scan("SessionsTable")
        if session_ids is None or item["sessionId"] in session_ids
    }
    connections = {
        item["connectionId"]: item
        for item in tables.scan("ConnectionsTable")
        if int(item.get("connectedAt", 0)) >= since_ms
    }
    return {"sessions": sessions, "connections": connections}


def items_of(tables: Tables, session_ids: set[str], connection_ids: set[str]) -> dict[str, Any]:
    """The named items only, read one by one: cheap enough to take around every fuzzed request."""

    def get(logical_id: str, key: str, value: str) -> dict[str, Any] | None:
        response = tables.client.get_item(
            TableName=tables.names[logical_id], Key={key: {"S": value}}, ConsistentRead=True
        )
        return _plain(response["Item"]) if "Item" in response else None

    return {
        "sessions": {session_id: get("SessionsTable", "sessionId", session_id) for session_id in session_ids},
        "connections": {
            connection_id: get("ConnectionsTable", "connectionId", connection_id) for connection_id in connection_ids
        },
    }
