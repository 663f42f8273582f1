"""The one gate every DynamoDB call goes through: circuit breakers, conflict retries, and the one
place that classifies DynamoDB's answers.

- A condition that did not hold is an answer: ``ConditionFailedError``, with the items as they
  were where the request asked for them (``ReturnValuesOnConditionCheckFailure``).
- A write that only lost a race with a transaction on the same item is retried here with jitter:
  botocore does not retry ``TransactionConflict`` (to the SDK it is a cancelled request).
- Throttling, 5xx and network trouble are outages: ``ServiceUnavailableError``, counted against
  the breakers (and the rate limiter may fail open on them).
- Anything else DynamoDB refuses (a missing permission or table, a request it calls invalid) is
  the deployment's fault: ``MisconfigurationError``, logged at ERROR and counted as the
  ``MisconfigurationErrors`` metric, never mistaken for an outage.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from session_manager.errors import MisconfigurationError, ServiceUnavailableError
from session_manager.observability import metrics
from session_manager.store.circuit_breaker import CircuitBreaker
from session_manager.store.clients import dynamodb_client

logger = Logger(child=True)

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

CONFLICT_RETRIES = 6
_THROTTLED = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "LimitExceededException",
}
# Cancellation reasons that are answers about the items, not trouble with the service.
_CONDITION_REASONS = {"None", "ConditionalCheckFailed"}

T = TypeVar("T")


# The sweep's Scans read small pages. DynamoDB charges per item, not per page; the local stack's
# embedded DynamoDB serves one request at a time (local_stack/moto_dynamodb.py), and one page of
# thousands of connections would hold every join of a storm for seconds.
SCAN_PAGE_SIZE = 250


class ConditionFailedError(Exception):
    """A condition expression did not hold. ``reasons`` has one code per transaction item
    (``"None"`` where that item's condition held); ``items`` the item as it was, per index
    (single-item writes: index 0), where DynamoDB returned it."""

    def __init__(self, reasons: list[str], items: dict[int, dict[str, Any]]):
        super().__init__("condition failed")
        self.reasons = reasons
        self.items = items

    def failed_at(self, index: int) -> bool:
        if not self.reasons:
            return index == 0
        return index < len(self.reasons) and self.reasons[index] == "ConditionalCheckFailed"

    def item_at(self, index: int) -> dict[str, Any] | None:
        return self.items.get(index)


class _ConflictError(Exception):
    """Lost a race with another transaction on the same item: worth another try."""


def to_attribute_values(values: dict[str, Any]) -> dict[str, Any]:
    return {key: _serializer.serialize(value) for key, value in values.items()}


def from_item(item: dict[str, Any] | None) -> dict[str, Any] | None:
    if not item:
        return None
    return {key: _deserializer.deserialize(value) for key, value in item.items()}


def _code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def _status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def _cancellation_reasons(error: ClientError) -> list[dict[str, Any]]:
    return error.response.get("CancellationReasons") or []


def retry_conflicts(attempt: Callable[[], T], *, retries: int = CONFLICT_RETRIES) -> T:
    """The one conflict-retry loop: run ``attempt`` until it stops losing races with other
    transactions on its items, with exponential backoff and full jitter; then an outage."""
    for number in range(retries + 1):
        try:
            return attempt()
        except _ConflictError as conflict:
            if number == retries:
                raise ServiceUnavailableError() from conflict.__cause__
            time.sleep(random.uniform(0, 0.025 * 2**number))
    raise AssertionError("unreachable")


class DynamoDB:
    """A thin wrapper over the low-level client that adds one breaker per table."""

    def __init__(self, client=None, *, client_factory: Callable[[], Any] = dynamodb_client) -> None:
        self._client = client
        self._client_factory = client_factory
        self._breakers: dict[str, CircuitBreaker] = {}
        self._lock = threading.Lock()

    @property
    def client(self):
        if self._client is None:
            self._client = self._client_factory()
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
        """One DynamoDB request (retried while it only loses races with transactions)."""
        tables = list(tables)
        return retry_conflicts(lambda: self._call_once(operation, tables, kwargs))

    def _call_once(self, operation: str, tables: list[str], kwargs: dict[str, Any]) -> dict[str, Any]:
        breakers = self._admit(tables)
        try:
            response = getattr(self.client, operation)(**kwargs)
        except ClientError as error:
            self._answer(error, operation, breakers)
        except BotoCoreError as error:
            _record(breakers, success=False)
            raise ServiceUnavailableError() from error
        _record(breakers, success=True)
        return response

    def _answer(self, error: ClientError, operation: str, breakers: list[CircuitBreaker]) -> None:
        """Raise what DynamoDB's refusal means to the domain."""
        code = _code(error)
        if code == "TransactionCanceledException":
            reasons = _cancellation_reasons(error)
            codes = [str(reason.get("Code", "None")) for reason in reasons]
            if set(codes) <= _CONDITION_REASONS | {"TransactionConflict"}:
                _record(breakers, success=True)  # DynamoDB answered: not an outage
                if "ConditionalCheckFailed" in codes:
                    items = {i: from_item(r["Item"]) for i, r in enumerate(reasons) if r.get("Item")}
                    raise ConditionFailedError(codes, items) from error
                raise _ConflictError() from error
            if any(c in _THROTTLED or c == "ThrottlingError" for c in codes):
                # A transaction cancelled because an item was throttled is an outage.
                _record(breakers, success=False)
                raise ServiceUnavailableError() from error
            self._misconfigured(error, operation, breakers, detail=",".join(sorted(set(codes))))
        if code == "ConditionalCheckFailedException":
            _record(breakers, success=True)
            item = from_item(error.response.get("Item"))
            raise ConditionFailedError([], {0: item} if item else {}) from error
        if code == "TransactionConflictException":
            _record(breakers, success=True)
            raise _ConflictError() from error
        if code in _THROTTLED or _status(error) >= 500:
            _record(breakers, success=False)
            raise ServiceUnavailableError() from error
        self._misconfigured(error, operation, breakers, detail=code)

    @staticmethod
    def _misconfigured(error: ClientError, operation: str, breakers: list[CircuitBreaker], *, detail: str) -> None:
        _record(breakers, success=True)  # DynamoDB answered: the breaker must not open on our bug
        logger.error(
            "DynamoDB refused the request: check the function's permissions, tables and expressions",
            extra={"errorCode": _code(error), "detail": detail, "operation": operation},
        )
        metrics.add_metric(name="MisconfigurationErrors", unit=MetricUnit.Count, value=1)
        raise MisconfigurationError() from error

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


def _record(breakers: list[CircuitBreaker], *, success: bool) -> None:
    for breaker in breakers:
        if success:
            breaker.record_success()
        else:
            breaker.record_failure()
