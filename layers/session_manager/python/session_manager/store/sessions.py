"""The Sessions table, and the writes that change a session and a connection together.

Every change of membership is one DynamoDB transaction over both tables, so a seat is never
counted without its connection item, nor the other way round. Each condition below is one of the
rules in ``rules.py``; a refused write comes back with the items as they were (ALL_OLD), so the
domain can tell why without another read.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from typing import Any

from session_manager.models import Connection, Session, language_count_attribute, language_left_attribute
from session_manager.outcomes import Outcome, Refusal, WriteResult, Written
from session_manager.protocol import EndReason, Role
from session_manager.store.dynamodb import (
    SCAN_PAGE_SIZE,
    ConditionFailedError,
    DynamoDB,
    from_item,
    to_attribute_values,
)

ALL_OLD = {"ReturnValuesOnConditionCheckFailure": "ALL_OLD"}


class DynamoDBSessionStore:
    def __init__(self, sessions_table: str, connections_table: str, dynamodb: DynamoDB) -> None:
        self.sessions_table = sessions_table
        self.connections_table = connections_table
        self.db = dynamodb

    # ------------------------------------------------------------ reads

    def get(self, session_id: str) -> Session | None:
        response = self.db.call(
            "get_item",
            [self.sessions_table],
            TableName=self.sessions_table,
            Key=to_attribute_values({"sessionId": session_id}),
            ConsistentRead=True,
        )
        item = from_item(response.get("Item"))
        return Session.from_item(item) if item else None

    def scan(self) -> Iterator[Session]:
        for item in self.db.paginate("scan", self.sessions_table, TableName=self.sessions_table, Limit=SCAN_PAGE_SIZE):
            yield Session.from_item(item)

    # ------------------------------------------------------------ speaker

    def create(self, session: Session) -> WriteResult:
        return self._transact(
            session_write={
                "Put": {
                    "TableName": self.sessions_table,
                    "Item": to_attribute_values(session.to_item()),
                    "ConditionExpression": "attribute_not_exists(sessionId)",
                    **ALL_OLD,
                }
            },
            connection_write=self._claim_connection(session.speaker_connection_id, session.session_id, Role.SPEAKER),
        )

    def move_speaker(
        self,
        session_id: str,
        user_id: str,
        new_connection_id: str,
        now_ms: int,
        expires_at: int,
        *,
        away_since: int | None,
    ) -> WriteResult:
        values: dict[str, Any] = {
            ":new": new_connection_id,
            ":expires": expires_at,
            ":true": True,
            ":now": now_ms // 1000,
            ":user": user_id,
        }
        condition = "isActive = :true AND expiresAt > :now AND speakerUserId = :user AND "
        if away_since is None:
            condition += "attribute_not_exists(speakerAwaySince)"
        else:
            condition += "speakerAwaySince = :away"
            values[":away"] = away_since
        return self._transact(
            session_write={
                "Update": {
                    "TableName": self.sessions_table,
                    "Key": to_attribute_values({"sessionId": session_id}),
                    "UpdateExpression": "SET speakerConnectionId = :new, expiresAt = :expires REMOVE speakerAwaySince",
                    "ConditionExpression": condition,
                    "ExpressionAttributeValues": to_attribute_values(values),
                    **ALL_OLD,
                }
            },
            connection_write=self._claim_connection(new_connection_id, session_id, Role.SPEAKER),
        )

    def mark_speaker_away(self, session_id: str, connection_id: str, now_ms: int) -> bool:
        try:
            self.db.call(
                "update_item",
                [self.sessions_table],
                TableName=self.sessions_table,
                Key=to_attribute_values({"sessionId": session_id}),
                UpdateExpression="SET speakerAwaySince = :now",
                ConditionExpression="isActive = :true AND speakerConnectionId = :speaker",
                ExpressionAttributeValues=to_attribute_values(
                    {":now": now_ms, ":true": True, ":speaker": connection_id}
                ),
            )
        except ConditionFailedError:
            return False
        return True

    def end(
        self,
        session_id: str,
        reason: EndReason,
        now_ms: int,
        *,
        speaker_connection_id: str | None = None,
        only_if_expired: bool = False,
        away_since: int | None = None,
    ) -> WriteResult:
        conditions = ["isActive = :true"]
        values: dict[str, Any] = {":true": True, ":false": False, ":now": now_ms, ":reason": reason.value}
        if speaker_connection_id is not None:
            conditions.append("speakerConnectionId = :speaker")
            values[":speaker"] = speaker_connection_id
        if only_if_expired:
            conditions.append("expiresAt <= :nowSeconds")
            values[":nowSeconds"] = now_ms // 1000
        if away_since is not None:
            conditions.append("speakerAwaySince = :away")
            values[":away"] = away_since
        try:
            response = self.db.call(
                "update_item",
                [self.sessions_table],
                TableName=self.sessions_table,
                Key=to_attribute_values({"sessionId": session_id}),
                UpdateExpression="SET isActive = :false, endedAt = :now, endReason = :reason",
                ConditionExpression=" AND ".join(conditions),
                ExpressionAttributeValues=to_attribute_values(values),
                ReturnValues="ALL_NEW",
                **ALL_OLD,
            )
        except ConditionFailedError as failure:
            return Refusal(session_failed=True, session=_session(failure.item_at(0)))
        return Written(Session.from_item(from_item(response["Attributes"])))

    def next_caption_seq(self, session_id: str, speaker_connection_id: str, now_ms: int, final: bool) -> WriteResult:
        """One atomic write numbers the caption, checks that the caller is the live session's
        speaker, and returns the session (its languages in use) as written.

        ADD is not idempotent, and the SDK resends a write whose answer timed out (botocore
        standard retries): the write carries a token of its own, refuses one that already landed,
        and that refusal's ALL_OLD is the session as the first attempt left it (decision 73).

        A final line also moves `lastFinalSeq` to its number and keeps the one before in
        `previousFinalSeq` (decision 80). DynamoDB evaluates every operand against the item as it
        was before the write; listing each SET before the one that changes what it reads gives
        the same result where actions were applied in order."""
        request = secrets.token_hex(8)
        numbering = "ADD captionSeq :one SET captionRequest = :request"
        if final:
            numbering = (
                "SET captionRequest = :request, previousFinalSeq = if_not_exists(lastFinalSeq, :zero),"
                " lastFinalSeq = if_not_exists(captionSeq, :zero) + :one,"
                " captionSeq = if_not_exists(captionSeq, :zero) + :one"
            )
        try:
            response = self.db.call(
                "update_item",
                [self.sessions_table],
                TableName=self.sessions_table,
                Key=to_attribute_values({"sessionId": session_id}),
                UpdateExpression=numbering,
                ConditionExpression=(
                    "isActive = :true AND expiresAt > :nowSeconds AND speakerConnectionId = :speaker"
                    " AND (attribute_not_exists(captionRequest) OR captionRequest <> :request)"
                ),
                ExpressionAttributeValues=to_attribute_values(
                    {
                        ":one": 1,
                        ":true": True,
                        ":nowSeconds": now_ms // 1000,
                        ":speaker": speaker_connection_id,
                        ":request": request,
                        **({":zero": 0} if final else {}),
                    }
                ),
                ReturnValues="ALL_NEW",
                **ALL_OLD,
            )
        except ConditionFailedError as failure:
            item = failure.item_at(0)
            if item and item.get("captionRequest") == request:
                return Written(Session.from_item(item))
            return Refusal(session_failed=True, session=_session(item))
        return Written(Session.from_item(from_item(response["Attributes"])))

    # ------------------------------------------------------------ listeners

    def add_listener(
        self, session_id: str, connection_id: str, target_language: str, now_ms: int, capacity: int
    ) -> WriteResult:
        values = {":true": True, ":nowSeconds": now_ms // 1000, ":one": 1, ":now": now_ms, ":capacity": capacity}
        return self._transact(
            session_write={
                "Update": {
                    "TableName": self.sessions_table,
                    "Key": to_attribute_values({"sessionId": session_id}),
                    "UpdateExpression": "ADD listenerCount :one, #language :one SET lastListenerChangeAt = :now",
                    "ExpressionAttributeNames": {"#language": language_count_attribute(target_language)},
                    # rules.is_live and rules.has_seat_for_one_more
                    "ConditionExpression": (
                        "isActive = :true AND expiresAt > :nowSeconds AND listenerCount < :capacity"
                    ),
                    "ExpressionAttributeValues": to_attribute_values(values),
                    **ALL_OLD,
                }
            },
            connection_write=self._claim_connection(connection_id, session_id, Role.LISTENER, target_language),
        )

    def remove_listener(
        self, connection_id: str, session_id: str, target_language: str, now_ms: int, *, delete_connection: bool
    ) -> Outcome:
        connection_write = self._release_connection(connection_id, session_id, delete_connection)
        try:
            self.db.call(
                "transact_write_items",
                [self.connections_table, self.sessions_table],
                TransactItems=[
                    connection_write,
                    {
                        "Update": {
                            "TableName": self.sessions_table,
                            "Key": to_attribute_values({"sessionId": session_id}),
                            "UpdateExpression": (
                                "ADD listenerCount :minusOne, #language :minusOne "
                                "SET lastListenerChangeAt = :now, #left = :now"
                            ),
                            "ConditionExpression": "listenerCount > :zero",
                            "ExpressionAttributeNames": {
                                "#language": language_count_attribute(target_language),
                                "#left": language_left_attribute(target_language),
                            },
                            "ExpressionAttributeValues": to_attribute_values(
                                {":minusOne": -1, ":zero": 0, ":now": now_ms}
                            ),
                        }
                    },
                ],
            )
        except ConditionFailedError as failure:
            if failure.failed_at(0):
                return Outcome.ALREADY_DONE
            # The count is already zero (or the session is gone): release the connection alone.
            try:
                self.db.call("transact_write_items", [self.connections_table], TransactItems=[connection_write])
            except ConditionFailedError:
                return Outcome.ALREADY_DONE
        return Outcome.DONE

    def repair_listener_count(
        self, session_id: str, observed: int, actual: Mapping[str, int], settled_before_ms: int
    ) -> bool:
        names = {f"#l{i}": language_count_attribute(language) for i, language in enumerate(actual)}
        counts = {f":l{i}": count for i, count in enumerate(actual.values())}
        assignments = "".join(f", #l{i} = :l{i}" for i in range(len(actual)))
        try:
            self.db.call(
                "update_item",
                [self.sessions_table],
                TableName=self.sessions_table,
                Key=to_attribute_values({"sessionId": session_id}),
                UpdateExpression=f"SET listenerCount = :actual{assignments}",
                **({"ExpressionAttributeNames": names} if names else {}),
                ConditionExpression=(
                    "isActive = :true AND listenerCount = :observed AND "
                    "(attribute_not_exists(lastListenerChangeAt) OR lastListenerChangeAt < :settled)"
                ),
                ExpressionAttributeValues=to_attribute_values(
                    {
                        ":actual": sum(actual.values()),
                        ":observed": observed,
                        ":true": True,
                        ":settled": settled_before_ms,
                        **counts,
                    }
                ),
            )
        except ConditionFailedError:
            return False
        return True

    # ------------------------------------------------------------ pieces

    def _transact(self, *, session_write: dict[str, Any], connection_write: dict[str, Any]) -> WriteResult:
        """One transaction over a session item (index 0) and a connection item (index 1)."""
        try:
            self.db.call(
                "transact_write_items",
                [self.sessions_table, self.connections_table],
                TransactItems=[session_write, connection_write],
            )
        except ConditionFailedError as failure:
            return Refusal(
                session_failed=failure.failed_at(0),
                session=_session(failure.item_at(0)),
                connection_failed=failure.failed_at(1),
                connection=_connection(failure.item_at(1)),
            )
        return Written()

    def _claim_connection(
        self, connection_id: str, session_id: str, role: Role, target_language: str | None = None
    ) -> dict[str, Any]:
        """rules.is_free: the connection exists and holds no role."""
        values: dict[str, Any] = {":session": session_id, ":role": role.value}
        expression = "SET sessionId = :session, #role = :role"
        if target_language is not None:
            expression += ", targetLanguage = :language"
            values[":language"] = target_language
        return {
            "Update": {
                "TableName": self.connections_table,
                "Key": to_attribute_values({"connectionId": connection_id}),
                "UpdateExpression": expression,
                "ConditionExpression": "attribute_exists(connectionId) AND attribute_not_exists(sessionId)",
                "ExpressionAttributeNames": {"#role": "role"},
                "ExpressionAttributeValues": to_attribute_values(values),
                **ALL_OLD,
            }
        }

    def _release_connection(self, connection_id: str, session_id: str, delete: bool) -> dict[str, Any]:
        key = to_attribute_values({"connectionId": connection_id})
        condition = {
            "ConditionExpression": "sessionId = :session AND #role = :listener",
            "ExpressionAttributeNames": {"#role": "role"},
            "ExpressionAttributeValues": to_attribute_values(
                {":session": session_id, ":listener": Role.LISTENER.value}
            ),
        }
        if delete:
            return {"Delete": {"TableName": self.connections_table, "Key": key, **condition}}
        return {
            "Update": {
                "TableName": self.connections_table,
                "Key": key,
                "UpdateExpression": "REMOVE sessionId, #role, targetLanguage",
                **condition,
            }
        }


def _session(item: dict[str, Any] | None) -> Session | None:
    return Session.from_item(item) if item else None


def _connection(item: dict[str, Any] | None) -> Connection | None:
    return Connection.from_item(item) if item else None
