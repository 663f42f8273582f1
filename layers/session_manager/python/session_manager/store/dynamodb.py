"""The one gate every DynamoDB call goes through: circuit breaker and error translation."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterable
from enum import Enum
from typing import Any

from aws_lambda_powertools import Logger
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from session_manager.errors import ServiceUnavailableError
from session_manager.store.circuit_breaker import CircuitBreaker
from session_manager.store.clients import dynamodb_client

logger = Logger(child=True)

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

_CONFLICT_RETRIES = 5
# Errors that are our own bug (bad expression, wrong key): surfaced as INTERNAL_ERROR.
_CALLER_ERRORS = {"ValidationException", "SerializationException"}
# The deployment is wrong (a missing permission): loud, and never mistaken for an outage that
# the rate limiter may fail open on.
_MISCONFIGURED = {"AccessDeniedException", "UnrecognizedClientException"}
# Cancellation reasons that are answers about the items, not trouble with the service.
_ITEM_REASONS = {"None", "ConditionalCheckFailed", "TransactionConflict"}


class _Answer(Enum):
    CONDITION = "condition"
    CALLER_ERROR = "caller_error"
    MISCONFIGURED = "misconfigured"
    OUTAGE = "outage"


def _code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def _classify(error: ClientError) -> _Answer:
    code = _code(error)
    if code == "ConditionalCheckFailedException":
        return _Answer.CONDITION
    if code == "TransactionCanceledException":
        # A transaction cancelled because an item was throttled is an outage, not an answer.
        reasons = set(_cancellation_reasons(error))
        return _Answer.CONDITION if reasons <= _ITEM_REASONS else _Answer.OUTAGE
    if code in _CALLER_ERRORS:
        return _Answer.CALLER_ERROR
    if code in _MISCONFIGURED:
        return _Answer.MISCONFIGURED
    return _Answer.OUTAGE


def _record(breakers: list[CircuitBreaker], *, success: bool) -> None:
    for breaker in breakers:
        if success:
            breaker.record_success()
        else:
            breaker.record_failure()


class ConditionFailed(Exception):
    """A condition expression did not hold. ``reasons`` has one code per transaction item
    (``"None"`` where that item's condition held) when DynamoDB reports them."""

    def __init__(self, reasons: list[str] | None = None):
        super().__init__("condition failed")
        self.reasons = reasons or []

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
        """One DynamoDB request. Conditions that do not hold raise ConditionFailed; outages
        raise ServiceUnavailableError and count against the tables' breakers."""
        breakers = self._admit(tables)
        try:
            response = self._request_with_conflict_retries(operation, kwargs)
        except ClientError as error:
            outcome = _classify(error)
            if outcome is _Answer.OUTAGE:
                _record(breakers, success=False)
                raise ServiceUnavailableError() from error
            _record(breakers, success=True)  # DynamoDB answered: not an outage
            if outcome is _Answer.CONDITION:
                raise ConditionFailed(_cancellation_reasons(error)) from None
            if outcome is _Answer.MISCONFIGURED:
                logger.error(
                    "DynamoDB refused the request: check the function's permissions and tables",
                    extra={"errorCode": _code(error), "operation": operation},
                )
                raise ServiceUnavailableError() from error
            raise
        except BotoCoreError as error:
            _record(breakers, success=False)
            raise ServiceUnavailableError() from error
        _record(breakers, success=True)
        return response

    def _request_with_conflict_retries(self, operation: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        """A single-item write that meets a running transaction on its item is refused with
        TransactionConflictException, which botocore does not retry; a join storm on one session
        makes that common, so it is retried here with jitter."""
        for attempt in range(_CONFLICT_RETRIES + 1):
            try:
                return getattr(self.client, operation)(**kwargs)
            except ClientError as error:
                if _code(error) != "TransactionConflictException" or attempt == _CONFLICT_RETRIES:
                    raise
                time.sleep(random.uniform(0, 0.025 * 2**attempt))
        raise AssertionError("unreachable")

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
