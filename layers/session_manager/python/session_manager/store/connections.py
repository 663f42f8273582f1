"""The Connections table: one item per open WebSocket connection."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from session_manager.errors import RateLimitExceededError
from session_manager.models import Connection
from session_manager.store.dynamodb import ConditionFailed, DynamoDB, from_item, to_attribute_values

LISTENERS_INDEX = "sessionId-targetLanguage-index"


class ConnectionRepository:
    def __init__(self, table: str, dynamodb: DynamoDB) -> None:
        self.table = table
        self.db = dynamodb

    def register(self, connection_id: str, connected_at_ms: int, ttl: int, user_id: str | None) -> bool:
        """Record a new connection; False when it was already recorded (a duplicate $connect)."""
        item: dict[str, Any] = {
            "connectionId": connection_id,
            "connectedAt": connected_at_ms,
            "lastSeenAt": connected_at_ms,
            "ttl": ttl,
        }
        if user_id:
            item["userId"] = user_id
        try:
            self.db.call(
                "put_item",
                [self.table],
                TableName=self.table,
                Item=to_attribute_values(item),
                ConditionExpression="attribute_not_exists(connectionId)",
            )
        except ConditionFailed:
            return False
        return True

    def get(self, connection_id: str, *, now_seconds: float | None = None) -> Connection | None:
        response = self.db.call(
            "get_item",
            [self.table],
            TableName=self.table,
            Key=to_attribute_values({"connectionId": connection_id}),
            ConsistentRead=True,
        )
        item = from_item(response.get("Item"))
        if item is None:
            return None
        connection = Connection.from_item(item)
        now_seconds = time.time() if now_seconds is None else now_seconds
        if connection.ttl and connection.ttl <= now_seconds:
            return None  # TTL deletion is lazy; an expired item is already gone for us
        return connection

    def record_heartbeat(self, connection_id: str, now_ms: int, limit_per_minute: int) -> Connection | None:
        """Count a heartbeat against its per-minute limit and mark the connection alive, in one
        write. None when the connection is not recorded; RateLimitExceededError over the limit."""
        minute = now_ms // 60000
        try:
            response = self.db.call(
                "update_item",
                [self.table],
                TableName=self.table,
                Key=to_attribute_values({"connectionId": connection_id}),
                UpdateExpression="SET lastSeenAt = :now ADD #current :one REMOVE #previous",
                ConditionExpression=(
                    "attribute_exists(connectionId) AND (attribute_not_exists(#current) OR #current < :limit)"
                ),
                ExpressionAttributeNames={"#current": f"hb{minute}", "#previous": f"hb{minute - 1}"},
                ExpressionAttributeValues=to_attribute_values({":now": now_ms, ":one": 1, ":limit": limit_per_minute}),
                ReturnValues="ALL_NEW",
            )
        except ConditionFailed:
            if self.get(connection_id) is None:
                return None
            retry_after = 60 - (now_ms // 1000) % 60
            raise RateLimitExceededError(
                "Too many heartbeats; send one every 30 seconds.", retry_after=retry_after
            ) from None
        return Connection.from_item(from_item(response["Attributes"]))

    def delete(self, connection_id: str) -> Connection | None:
        """Remove the item; the removed connection, or None if there was none."""
        response = self.db.call(
            "delete_item",
            [self.table],
            TableName=self.table,
            Key=to_attribute_values({"connectionId": connection_id}),
            ReturnValues="ALL_OLD",
        )
        item = from_item(response.get("Attributes"))
        return Connection.from_item(item) if item else None

    def detach_from_session(self, connection_id: str, session_id: str) -> bool:
        """Take the connection's role in that session away, keeping the item (the socket may stay
        open). False when it held no role there: someone else detached it first."""
        try:
            self.db.call(
                "update_item",
                [self.table],
                TableName=self.table,
                Key=to_attribute_values({"connectionId": connection_id}),
                UpdateExpression="REMOVE sessionId, #role, targetLanguage",
                ConditionExpression="sessionId = :session",
                ExpressionAttributeNames={"#role": "role"},
                ExpressionAttributeValues=to_attribute_values({":session": session_id}),
            )
        except ConditionFailed:
            return False
        return True

    def listeners_of(self, session_id: str) -> Iterator[tuple[str, str]]:
        """(connectionId, targetLanguage) of every listener of the session, page by page."""
        for item in self.db.paginate(
            "query",
            self.table,
            TableName=self.table,
            IndexName=LISTENERS_INDEX,
            KeyConditionExpression="sessionId = :session",
            ExpressionAttributeValues=to_attribute_values({":session": session_id}),
        ):
            yield item["connectionId"], item["targetLanguage"]

    def scan(self) -> Iterator[Connection]:
        for item in self.db.paginate("scan", self.table, TableName=self.table):
            yield Connection.from_item(item)
