"""The RateLimits table: fixed-window counters, each check one atomic conditional update."""

from __future__ import annotations

from collections.abc import Mapping

from session_manager.store.dynamodb import ConditionFailed, DynamoDB, from_item, to_attribute_values


class WindowFull(Exception):
    """A counter of the window is at its limit; ``counters`` is what the window holds."""

    def __init__(self, counters: Mapping[str, int]) -> None:
        super().__init__("rate limit window full")
        self.counters = dict(counters)


class RateLimitRepository:
    def __init__(self, table: str, dynamodb: DynamoDB) -> None:
        self.table = table
        self.db = dynamodb

    def consume(
        self,
        identifier: str,
        expires_at: int,
        counter: str,
        limits: Mapping[str, int],
    ) -> None:
        """Add one to ``counter`` of the window item, only while every counter named in
        ``limits`` is below its limit. Raises WindowFull otherwise."""
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
        except ConditionFailed:
            raise WindowFull(self.counters(identifier)) from None

    def adjust(self, identifier: str, expires_at: int, deltas: Mapping[str, int]) -> None:
        """Add the deltas to the window's counters, unconditionally."""
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

    def counters(self, identifier: str) -> dict[str, int]:
        response = self.db.call(
            "get_item",
            [self.table],
            TableName=self.table,
            Key=to_attribute_values({"identifier": identifier}),
            ConsistentRead=True,
        )
        item = from_item(response.get("Item")) or {}
        return {key: int(value) for key, value in item.items() if key not in ("identifier", "expiresAt")}
