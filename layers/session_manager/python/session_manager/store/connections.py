"""The Connections table: one item per open WebSocket connection."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from session_manager.models import Connection
from session_manager.outcomes import Refusal, WriteResult, Written
from session_manager.store.dynamodb import (
    SCAN_PAGE_SIZE,
    ConditionFailedError,
    DynamoDB,
    from_item,
    to_attribute_values,
)

LISTENERS_INDEX = "sessionId-targetLanguage-index"
ALL_OLD = {"ReturnValuesOnConditionCheckFailure": "ALL_OLD"}


class DynamoDBConnectionStore:
    def __init__(self, table: str, dynamodb: DynamoDB) -> None:
        self.table = table
        self.db = dynamodb

    def register(self, connection_id: str, connected_at_ms: int, ttl: int, user_id: str | None) -> bool:
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
        except ConditionFailedError:
            return False
        return True

    def get(self, connection_id: str) -> Connection | None:
        response = self.db.call(
            "get_item",
            [self.table],
            TableName=self.table,
            Key=to_attribute_values({"connectionId": connection_id}),
            ConsistentRead=True,
        )
        item = from_item(response.get("Item"))
        return Connection.from_item(item) if item else None

    def record_heartbeat(self, connection_id: str, now_ms: int, limit_per_minute: int) -> WriteResult:
        """One write: mark the connection alive and add to this minute's counter (the previous
        minute's removed), while the counter is below the limit."""
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
                **ALL_OLD,
            )
        except ConditionFailedError as failure:
            old = failure.item_at(0)
            return Refusal(connection_failed=True, connection=Connection.from_item(old) if old else None)
        return _written(response["Attributes"])

    def delete(self, connection_id: str) -> Connection | None:
        response = self.db.call(
            "delete_item",
            [self.table],
            TableName=self.table,
            Key=to_attribute_values({"connectionId": connection_id}),
            ReturnValues="ALL_OLD",
        )
        item = from_item(response.get("Attributes"))
        return Connection.from_item(item) if item else None

    def delete_if_idle(self, connection_id: str) -> WriteResult:
        try:
            response = self.db.call(
                "delete_item",
                [self.table],
                TableName=self.table,
                Key=to_attribute_values({"connectionId": connection_id}),
                ConditionExpression="attribute_not_exists(sessionId)",
                ReturnValues="ALL_OLD",
                **ALL_OLD,
            )
        except ConditionFailedError as failure:
            old = failure.item_at(0)
            return Refusal(connection_failed=True, connection=Connection.from_item(old) if old else None)
        return _written(response.get("Attributes"))

    def detach_from_session(self, connection_id: str, session_id: str) -> bool:
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
        except ConditionFailedError:
            return False
        return True

    def listeners_of(self, session_id: str) -> Iterator[tuple[str, str]]:
        for item in self.db.paginate(
            "query",
            self.table,
            TableName=self.table,
            IndexName=LISTENERS_INDEX,
            KeyConditionExpression="sessionId = :session",
            ExpressionAttributeValues=to_attribute_values({":session": session_id}),
            # Not the session id every item repeats: a room's answer is parsed item by item.
            ProjectionExpression="connectionId, targetLanguage",
        ):
            yield item["connectionId"], item["targetLanguage"]

    def listeners_in(self, session_id: str, language: str) -> Iterator[str]:
        for item in self.db.paginate(
            "query",
            self.table,
            TableName=self.table,
            IndexName=LISTENERS_INDEX,
            KeyConditionExpression="sessionId = :session AND targetLanguage = :language",
            ExpressionAttributeValues=to_attribute_values({":session": session_id, ":language": language}),
            ProjectionExpression="connectionId",
        ):
            yield item["connectionId"]

    def scan(self) -> Iterator[Connection]:
        for item in self.db.paginate("scan", self.table, TableName=self.table, Limit=SCAN_PAGE_SIZE):
            yield Connection.from_item(item)


def _written(attributes: dict[str, Any] | None) -> Written:
    item = from_item(attributes)
    return Written(connection=Connection.from_item(item) if item else None)
