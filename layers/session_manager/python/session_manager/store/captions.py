"""The Captions table: the last CAPTION_HISTORY_SECONDS of lines per session and language.

Partition key ``stream`` (``<sessionId>#<language>``), sort key ``seq``; ``ttl`` in epoch seconds.
This is the only text the system keeps, and only for that window (docs/decisions.md, 52)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from session_manager.models import CaptionLine
from session_manager.store.dynamodb import DynamoDB, to_attribute_values

BATCH_WRITE_LIMIT = 25  # items per BatchWriteItem


def stream_of(session_id: str, language: str) -> str:
    return f"{session_id}#{language}"


class DynamoDBCaptionStore:
    def __init__(self, table: str, dynamodb: DynamoDB) -> None:
        self.table = table
        self.db = dynamodb

    def record(self, lines: Iterable[CaptionLine], expires_at: int) -> None:
        requests = [{"PutRequest": {"Item": to_attribute_values(_item(line, expires_at))}} for line in lines]
        for start in range(0, len(requests), BATCH_WRITE_LIMIT):
            pending = {self.table: requests[start : start + BATCH_WRITE_LIMIT]}
            # botocore retries throttled requests, not the unprocessed part of an accepted batch.
            for _ in range(5):
                response = self.db.call("batch_write_item", [self.table], RequestItems=pending)
                pending = response.get("UnprocessedItems") or {}
                if not pending:
                    break

    def since(self, session_id: str, language: str, after_seq: int, not_before_ms: int) -> list[CaptionLine]:
        lines = [
            _line(item)
            for item in self.db.paginate(
                "query",
                self.table,
                TableName=self.table,
                KeyConditionExpression="#stream = :stream AND seq > :after",
                # TTL deletes lazily: the window is enforced on read.
                FilterExpression="#timestamp >= :notBefore",
                ExpressionAttributeNames={"#stream": "stream", "#timestamp": "timestamp"},
                ExpressionAttributeValues=to_attribute_values(
                    {":stream": stream_of(session_id, language), ":after": after_seq, ":notBefore": not_before_ms}
                ),
                ConsistentRead=True,
            )
        ]
        return sorted(lines, key=lambda line: line.seq)


def _item(line: CaptionLine, expires_at: int) -> dict[str, Any]:
    item = {
        "stream": stream_of(line.session_id, line.language),
        "seq": line.seq,
        "lineId": line.line_id,
        "text": line.text,
        "final": line.final,
        "timestamp": line.timestamp,
        "ttl": expires_at,
    }
    if line.untranslated:
        item["untranslated"] = True
    if line.previous_seq is not None:
        item["previousSeq"] = line.previous_seq
    return item


def _line(item: dict[str, Any]) -> CaptionLine:
    session_id, language = item["stream"].rsplit("#", 1)
    return CaptionLine(
        session_id=session_id,
        seq=int(item["seq"]),
        line_id=item["lineId"],
        language=language,
        text=item["text"],
        final=bool(item["final"]),
        timestamp=int(item["timestamp"]),
        untranslated=bool(item.get("untranslated", False)),
        previous_seq=int(item["previousSeq"]) if "previousSeq" in item else None,
    )
