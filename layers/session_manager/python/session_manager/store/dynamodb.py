"""The one gate every DynamoDB call goes through: circuit breaker and error translation."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from session_manager.errors import ServiceUnavailableError
from session_manager.store.circuit_breaker import CircuitBreaker
from session_manager.store.clients import dynamodb_client

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

# Errors that mean the table answered and said no: expected outcomes, not outages.
_OUTCOME_ERRORS = {"ConditionalCheckFailedException", "TransactionCanceledException"}
# Errors that are our own bug (bad expression, wrong key): surfaced as INTERNAL_ERROR.
_CALLER_ERRORS = {"ValidationException", "SerializationException"}


class ConditionFailed(Exception):
    """A condition expression did not hold. ``reasons`` has one code per transaction item
    (``"None"`` where that item's condition held) when DynamoDB reports them."""

    def __init__(self, reasons: list[str] | None = None, item: dict[str, Any] | None = None):
        super().__init__("condition failed")
        self.reasons = reasons or []
        self.item = item

    def failed_at(self, index: int) -> bool:
        if not self.reasons:
            return True  # unknown: the caller reads back to classify
        return index < len(self.reasons) and self.reasons[index] == "ConditionalCheckFailed"


def to_attribute_values(values: dict[str, Any]) -> dict[str, Any]:
    return {key: _serializer.serialize(value) for key, value in values.items()}


def from_item(item: dict[str, Any] | None) -> dict[str, Any] | None:
    if not item:
        return None
    return {key: _deserializer.deserialize(value) for key, value in item.items()}


class DynamoDB:
    """A thin wrapper over the low-level client that adds one breaker per table."""

    def __init__(self, client=None) -> None:
        self._client = client
        self._breakers: dict[str, CircuitBreaker] = {}
        self._lock = threading.Lock()

    @property
    def client(self):
        if self._client is None:
            self._client = dynamodb_client()
        return self._client

    def breaker(self, table: str) -> CircuitBreaker:
        with self._lock:
            if table not in self._breakers:
                self._breakers[table] = CircuitBreaker(f"dynamodb:{table}")
            return self._breakers[table]

    def _admit(self, tables: Iterable[str]) -> list[CircuitBreaker]:
        """The breakers of every table the call touches, if all of them let it through."""
        admitted: list[CircuitBreaker] = []
        for breaker in (self.breaker(table) for table in tables):
            if not breaker.allow():
                for granted in admitted:
                    granted.release()
                raise ServiceUnavailableError()
            admitted.append(breaker)
        return admitted

    def call(self, operation: str, tables: Iterable[str], **kwargs: Any) -> dict[str, Any]:
        breakers = self._admit(tables)
        try:
            response = getattr(self.client, operation)(**kwargs)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in _OUTCOME_ERRORS:
                for breaker in breakers:
                    breaker.record_success()
                raise ConditionFailed(_cancellation_reasons(error), from_item(error.response.get("Item"))) from None
            if code in _CALLER_ERRORS:
                for breaker in breakers:
                    breaker.record_success()  # DynamoDB answered: the fault is ours, not an outage
                raise
            for breaker in breakers:
                breaker.record_failure()
            raise ServiceUnavailableError() from error
        except BotoCoreError as error:
            for breaker in breakers:
                breaker.record_failure()
            raise ServiceUnavailableError() from error
        for breaker in breakers:
            breaker.record_success()
        return response

    def paginate(self, operation: str, table: str, **kwargs: Any) -> Iterable[dict[str, Any]]:
        """Yield each item of a Query or Scan, page by page, deserialised."""
        start_key = None
        while True:
            if start_key:
                kwargs["ExclusiveStartKey"] = start_key
            page = self.call(operation, [table], **kwargs)
            for item in page.get("Items", []):
                yield from_item(item)
            start_key = page.get("LastEvaluatedKey")
            if not start_key:
                return


def _cancellation_reasons(error: ClientError) -> list[str]:
    reasons = error.response.get("CancellationReasons") or []
    return [str(reason.get("Code", "None")) for reason in reasons]
