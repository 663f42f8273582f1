"""The RateLimits table: fixed-window counters, each check one atomic conditional update."""

from __future__ import annotations

from collections.abc import Mapping

from session_manager.outcomes import WindowFullError
from session_manager.store.dynamodb import ConditionFailedError, DynamoDB, to_attribute_values


class DynamoDBRateLimitStore:
    def __init__(self, table: str, dynamodb: DynamoDB) -> None:
        self.table = table
        self.db = dynamodb

    def consume(self, identifier: str, expires_at: int, counter: str, limits: Mapping[str, int]) -> None:
        conditions, names, values = [], {"#add": counter}, {":one": 1, ":expires": expires_at}
        for index, (name, limit) in enumerate(limits.items()):
            names[f"#c{index}"] = name
            values[f":l{index}"] = limit
            conditions.append(f"(attribute_not_exists(#c{index}) OR #c{index} < :l{index})")
        try:
            self.db.call(
                "update_item",
                [self.table],
                TableName=self.table,
                Key=to_attribute_values({"identifier": identifier}),
                UpdateExpression="ADD #add :one SET expiresAt = :expires",
                ConditionExpression=" AND ".join(conditions),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=to_attribute_values(values),
            )
        except ConditionFailedError:
            # Nobody reads the counters of a full window: no GetItem here.
            raise WindowFullError() from None

    def adjust(self, identifier: str, expires_at: int, deltas: Mapping[str, int]) -> None:
        names = {f"#c{i}": name for i, name in enumerate(deltas)}
        values = {f":d{i}": delta for i, delta in enumerate(deltas.values())}
        values[":expires"] = expires_at
        additions = ", ".join(f"#c{i} :d{i}" for i in range(len(deltas)))
        self.db.call(
            "update_item",
            [self.table],
            TableName=self.table,
            Key=to_attribute_values({"identifier": identifier}),
            UpdateExpression=f"ADD {additions} SET expiresAt = :expires",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=to_attribute_values(values),
        )
