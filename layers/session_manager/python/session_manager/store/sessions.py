"""The Sessions table, and the writes that change a session and a connection together.

Every change of membership is one DynamoDB transaction over both tables, so a seat is never
counted without its connection item, nor the other way round.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from enum import Enum
from typing import Any

from session_manager.errors import ServiceUnavailableError
from session_manager.models import Session
from session_manager.protocol import EndReason, Role
from session_manager.store.dynamodb import ConditionFailed, DynamoDB, from_item, to_attribute_values

_CONFLICT_RETRIES = 6


class Outcome(str, Enum):
    DONE = "done"
    ID_TAKEN = "id_taken"
    CONNECTION_BUSY = "connection_busy"  # already holds a role in a session, or is gone
    SESSION_GONE = "session_gone"  # missing, ended or expired
    SESSION_FULL = "session_full"
    NOT_SPEAKER = "not_speaker"
    ALREADY_DONE = "already_done"  # a duplicate: someone else did it first


class SessionStore:
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

    def get_live(self, session_id: str, now_seconds: float | None = None) -> Session | None:
        """The session if it can still be joined: active and not past expiresAt."""
        session = self.get(session_id)
        now_seconds = time.time() if now_seconds is None else now_seconds
        return session if session and session.is_live(now_seconds) else None

    def scan(self) -> Iterator[Session]:
        for item in self.db.paginate("scan", self.sessions_table, TableName=self.sessions_table):
            yield Session.from_item(item)

    # ------------------------------------------------------------ speaker

    def create(self, session: Session) -> Outcome:
        """Insert the session and make its speaker connection hold it, or neither."""
        try:
            self._transact(
                {
                    "Put": {
                        "TableName": self.sessions_table,
                        "Item": to_attribute_values(session.to_item()),
                        "ConditionExpression": "attribute_not_exists(sessionId)",
                    }
                },
                self._claim_connection(session.speaker_connection_id, session.session_id, Role.SPEAKER, None),
            )
        except ConditionFailed as failure:
            if failure.failed_at(0) and self.get(session.session_id) is not None:
                return Outcome.ID_TAKEN
            return Outcome.CONNECTION_BUSY
        return Outcome.DONE

    def move_speaker(
        self, session_id: str, user_id: str, new_connection_id: str, now_ms: int, expires_at: int
    ) -> Outcome:
        """Swap the session's speaker connection to a new one of the same user, and push its
        expiry forward; the old connection's later close no longer ends the session."""
        try:
            self._transact(
                {
                    "Update": {
                        "TableName": self.sessions_table,
                        "Key": to_attribute_values({"sessionId": session_id}),
                        "UpdateExpression": "SET speakerConnectionId = :new, expiresAt = :expires",
                        "ConditionExpression": ("isActive = :true AND expiresAt > :now AND speakerUserId = :user"),
                        "ExpressionAttributeValues": to_attribute_values(
                            {
                                ":new": new_connection_id,
                                ":expires": expires_at,
                                ":true": True,
                                ":now": now_ms // 1000,
                                ":user": user_id,
                            }
                        ),
                    }
                },
                self._claim_connection(new_connection_id, session_id, Role.SPEAKER, None),
            )
        except ConditionFailed:
            session = self.get_live(session_id, now_ms / 1000)
            if session is None:
                return Outcome.SESSION_GONE
            if session.speaker_user_id != user_id:
                return Outcome.NOT_SPEAKER
            return Outcome.CONNECTION_BUSY
        return Outcome.DONE

    def end(
        self,
        session_id: str,
        reason: EndReason,
        now_ms: int,
        *,
        speaker_connection_id: str | None = None,
        only_if_expired: bool = False,
    ) -> Session | None:
        """Mark the session ended, once. With speaker_connection_id, only if that connection is
        still the current speaker's; with only_if_expired, only if past expiresAt. The ended
        session, or None when it was not active (or another condition did not hold)."""
        conditions = ["isActive = :true"]
        values: dict[str, Any] = {":true": True, ":false": False, ":now": now_ms, ":reason": reason.value}
        if speaker_connection_id is not None:
            conditions.append("speakerConnectionId = :speaker")
            values[":speaker"] = speaker_connection_id
        if only_if_expired:
            conditions.append("expiresAt <= :nowSeconds")
            values[":nowSeconds"] = now_ms // 1000
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
            )
        except ConditionFailed:
            return None
        return Session.from_item(from_item(response["Attributes"]))

    # ------------------------------------------------------------ listeners

    def add_listener(
        self,
        session_id: str,
        connection_id: str,
        target_language: str,
        now_ms: int,
        *,
        capacity: int | None,
    ) -> Outcome:
        """Take a seat: increment listenerCount (below capacity, unless None for a refresh) and
        attach the connection, in one transaction."""
        condition = "isActive = :true AND expiresAt > :nowSeconds"
        values: dict[str, Any] = {":true": True, ":nowSeconds": now_ms // 1000, ":one": 1, ":now": now_ms}
        if capacity is not None:
            condition += " AND listenerCount < :capacity"
            values[":capacity"] = capacity
        try:
            self._transact(
                {
                    "Update": {
                        "TableName": self.sessions_table,
                        "Key": to_attribute_values({"sessionId": session_id}),
                        "UpdateExpression": "ADD listenerCount :one SET lastListenerChangeAt = :now",
                        "ConditionExpression": condition,
                        "ExpressionAttributeValues": to_attribute_values(values),
                    }
                },
                self._claim_connection(connection_id, session_id, Role.LISTENER, target_language),
            )
        except ConditionFailed as failure:
            if failure.reasons and not failure.failed_at(0):
                return Outcome.CONNECTION_BUSY
            session = self.get_live(session_id, now_ms / 1000)
            if session is None:
                return Outcome.SESSION_GONE
            if capacity is not None and session.listener_count >= capacity:
                return Outcome.SESSION_FULL
            return Outcome.CONNECTION_BUSY
        return Outcome.DONE

    def remove_listener(self, connection_id: str, session_id: str, now_ms: int, *, delete_connection: bool) -> Outcome:
        """Give up a seat exactly once: detach (or delete) the connection and decrement the count,
        never below zero. ALREADY_DONE when the connection no longer held that seat."""
        connection_write = self._release_connection(connection_id, session_id, delete_connection)
        try:
            self._transact(
                connection_write,
                {
                    "Update": {
                        "TableName": self.sessions_table,
                        "Key": to_attribute_values({"sessionId": session_id}),
                        "UpdateExpression": "ADD listenerCount :minusOne SET lastListenerChangeAt = :now",
                        "ConditionExpression": "listenerCount > :zero",
                        "ExpressionAttributeValues": to_attribute_values({":minusOne": -1, ":zero": 0, ":now": now_ms}),
                    }
                },
            )
        except ConditionFailed as failure:
            if failure.reasons and failure.failed_at(0):
                return Outcome.ALREADY_DONE
            if failure.reasons and not failure.failed_at(1):
                raise ServiceUnavailableError() from None  # neither condition failed: still contended
            # The count is already zero (or the session is gone): release the connection alone.
            try:
                self.db.call("transact_write_items", [self.connections_table], TransactItems=[connection_write])
            except ConditionFailed:
                return Outcome.ALREADY_DONE
        return Outcome.DONE

    def repair_listener_count(self, session_id: str, observed: int, actual: int, settled_before_ms: int) -> bool:
        """Set listenerCount to the number of listener items, only if nobody changed it since the
        sweeper looked and the last change is old enough for the index to have caught up."""
        try:
            self.db.call(
                "update_item",
                [self.sessions_table],
                TableName=self.sessions_table,
                Key=to_attribute_values({"sessionId": session_id}),
                UpdateExpression="SET listenerCount = :actual",
                ConditionExpression=(
                    "isActive = :true AND listenerCount = :observed AND "
                    "(attribute_not_exists(lastListenerChangeAt) OR lastListenerChangeAt < :settled)"
                ),
                ExpressionAttributeValues=to_attribute_values(
                    {":actual": actual, ":observed": observed, ":true": True, ":settled": settled_before_ms}
                ),
            )
        except ConditionFailed:
            return False
        return True

    # ------------------------------------------------------------ pieces

    def _claim_connection(
        self, connection_id: str, session_id: str, role: Role, target_language: str | None
    ) -> dict[str, Any]:
        """Give the connection its role in the session, unless it already holds one or is gone
        (a join racing its own $disconnect must not leave a ghost seat)."""
        names = {"#role": "role"}
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
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": to_attribute_values(values),
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

    def _transact(self, *items: dict[str, Any]) -> None:
        """TransactWriteItems, retried when it only lost a race with another transaction on the
        same item (a join storm on one session). botocore does not retry TransactionConflict:
        to the SDK it is a cancelled transaction like any other."""
        for attempt in range(_CONFLICT_RETRIES + 1):
            try:
                self.db.call(
                    "transact_write_items",
                    [self.sessions_table, self.connections_table],
                    TransactItems=list(items),
                )
                return
            except ConditionFailed as failure:
                conflicted = "TransactionConflict" in failure.reasons
                if not conflicted or "ConditionalCheckFailed" in failure.reasons:
                    raise
                if attempt == _CONFLICT_RETRIES:
                    raise ServiceUnavailableError() from None
                time.sleep(random.uniform(0, 0.025 * 2**attempt))
