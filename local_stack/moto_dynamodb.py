"""Where the embedded DynamoDB (moto) is made to keep DynamoDB's promises that the functions rely on.

Stock moto 5.2.5 breaks three of them under load, and the local stack fixes each here at start:

- Isolation. moto's server is threaded and its DynamoDB backend takes no lock, so two requests
  interleave: two conditional `ADD listenerCount` updates can both read the old count, and a failed
  transaction's rollback can restore a table over another request's committed write. DynamoDB
  serialises writes per item and isolates transactions; here every DynamoDB request runs under one
  lock (moto is a single process under the GIL anyway, so nothing parallel is lost).
- Cost. moto's `transact_write_items` deep-copies every table a transaction touches "in case any of
  the transactions fail", so each join costs time in proportion to every connection already stored
  and a join storm is quadratic. Here the transaction keeps copies of only the items it touches and
  puts those back on failure.
- Idempotency. DynamoDB makes a retried TransactWriteItems harmless through `ClientRequestToken`
  (botocore fills one in per call, and its retries carry the same token): the same token with the
  same request within 10 minutes succeeds without applying twice; the same token with a different
  request is an IdempotentParameterMismatchException. moto ignores the token, so a botocore retry
  after a read timeout applied a join twice. Here the token is honoured as DynamoDB documents it.

The replacement transaction is moto 5.2.5's own code with only the snapshot changed, so it is
installed only on that exact version: an upgrade fails at start until this module is checked
against the new moto."""

from __future__ import annotations

import copy
import functools
import json
import threading
import time
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

from moto.core.responses import ActionResult
from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    ERROR_TYPE_PREFIX,
    ConditionalCheckFailed,
    DynamodbException,
    MockValidationException,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler

from local_stack.errors import LocalStackError

SUPPORTED_MOTO_VERSION = "5.2.5"
IDEMPOTENCY_WINDOW_SECONDS = 600.0  # DynamoDB: a token is remembered for 10 minutes after its call

# One lock for every DynamoDB request of the process: requests are isolated from one another.
REQUEST_LOCK = threading.RLock()


class IdempotentParameterMismatch(DynamodbException):
    def __init__(self) -> None:
        super().__init__(
            ERROR_TYPE_PREFIX + "IdempotentParameterMismatchException",
            "The request uses the same client token as a previous, but non-identical request.",
        )


@dataclass
class _Completed:
    fingerprint: str
    completed_at: float


class IdempotencyLedger:
    """The client tokens of successful transactions, per account and region, for 10 minutes."""

    def __init__(self, window_seconds: float = IDEMPOTENCY_WINDOW_SECONDS) -> None:
        self.window_seconds = window_seconds
        self._completed: dict[tuple[str, str, str], _Completed] = {}

    def seen(self, key: tuple[str, str, str], fingerprint: str, now: float) -> bool:
        """True when this request already succeeded; raises on the same token for another request."""
        self._forget_before(now - self.window_seconds)
        completed = self._completed.get(key)
        if completed is None:
            return False
        if completed.fingerprint != fingerprint:
            raise IdempotentParameterMismatch()
        return True

    def record(self, key: tuple[str, str, str], fingerprint: str, now: float) -> None:
        self._completed[key] = _Completed(fingerprint, now)

    def clear(self) -> None:
        self._completed.clear()

    def _forget_before(self, cutoff: float) -> None:
        # Insertion order is completion order, so the expired tokens are at the front.
        while self._completed:
            key, completed = next(iter(self._completed.items()))
            if completed.completed_at >= cutoff:
                return
            del self._completed[key]


LEDGER = IdempotencyLedger()
_ORIGINALS: dict[str, Any] = {}


def install() -> None:
    """Idempotent. Raises LocalStackError on any moto other than the one this module was checked against."""
    installed = version("moto")
    if installed != SUPPORTED_MOTO_VERSION:
        raise LocalStackError(
            f"the embedded DynamoDB needs moto {SUPPORTED_MOTO_VERSION}, found {installed}: "
            "check local_stack/moto_dynamodb.py against the new moto's transact_write_items, then update it"
        )
    with REQUEST_LOCK:
        if _ORIGINALS:
            return
        _ORIGINALS["call_action"] = DynamoHandler.call_action
        _ORIGINALS["handler_transact"] = DynamoHandler.transact_write_items
        _ORIGINALS["backend_transact"] = DynamoDBBackend.transact_write_items
        DynamoHandler.call_action = _isolated(DynamoHandler.call_action)
        DynamoHandler.transact_write_items = _idempotent(DynamoHandler.transact_write_items)
        DynamoDBBackend.transact_write_items = transact_write_items


def uninstall() -> None:
    """Stock moto again (for tests that show what the fixes are for)."""
    with REQUEST_LOCK:
        if not _ORIGINALS:
            return
        DynamoHandler.call_action = _ORIGINALS.pop("call_action")
        DynamoHandler.transact_write_items = _ORIGINALS.pop("handler_transact")
        DynamoDBBackend.transact_write_items = _ORIGINALS.pop("backend_transact")
        LEDGER.clear()


def is_installed() -> bool:
    return bool(_ORIGINALS)


def _isolated(call_action: Any) -> Any:
    @functools.wraps(call_action)
    def locked(self: DynamoHandler) -> Any:
        with REQUEST_LOCK:
            return call_action(self)

    return locked


def _idempotent(handler_transact: Any) -> Any:
    @functools.wraps(handler_transact)
    def transact(self: DynamoHandler) -> Any:
        token = self.body.get("ClientRequestToken")
        if not token:
            return handler_transact(self)
        # Everything but the token: a retry is byte-for-byte the same request.
        fingerprint = json.dumps(
            {name: value for name, value in self.body.items() if name != "ClientRequestToken"},
            sort_keys=True,
            default=repr,
        )
        key = (self.current_account, self.region, str(token))
        # REQUEST_LOCK is held (call_action): a retry cannot overtake the attempt it repeats.
        if LEDGER.seen(key, fingerprint, time.monotonic()):
            return ActionResult({"ConsumedCapacity": [], "ItemCollectionMetrics": {}})
        result = handler_transact(self)
        LEDGER.record(key, fingerprint, time.monotonic())
        return result

    return transact


@dataclass
class _ItemCopy:
    table: Table
    hash_key: DynamoType
    range_key: DynamoType | None
    item: Item | None  # None: the item did not exist before the transaction

    def restore(self) -> None:
        store = self.table.items
        if self.range_key is not None:
            if self.item is None:
                store.get(self.hash_key, {}).pop(self.range_key, None)
            else:
                store[self.hash_key][self.range_key] = self.item
        elif self.item is None:
            store.pop(self.hash_key, None)
        else:
            store[self.hash_key] = self.item


def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    """moto 5.2.5's DynamoDBBackend.transact_write_items, rolling back copies of the touched items
    (taken just before each is written) instead of deep copies of whole tables."""
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    touched: list[_ItemCopy] = []

    def roll_back() -> None:
        for item_copy in reversed(touched):
            item_copy.restore()

    target_items: set[tuple[str, str]] = set()
    errors: list[tuple[str, str, dict[str, Any]] | tuple[None, None, None]] = []
    for item in transact_items:
        if len(list(item.keys())) > 1:
            raise TransactWriteSingleOpException
        failed_item: list[dict[str, Any]] = []
        try:
            _write_one(self, item, target_items, touched, failed_item)
            errors.append((None, None, None))
        except (MultipleTransactionsException, MockValidationException):
            roll_back()
            raise
        except ConditionalCheckFailed as error:
            errors.append(("ConditionalCheckFailed", str(error.message), _first(failed_item)))  # type: ignore[arg-type]
        except Exception as error:  # moto's own rule: any other failure cancels the transaction
            errors.append((type(error).__name__, str(error), _first(failed_item)))  # type: ignore[arg-type]
    if any(code is not None for code, _, _ in errors):
        roll_back()
        raise TransactionCanceledException(errors)


def _first(items: list[dict[str, Any]]) -> dict[str, Any] | None:
    return items[0] if items else None


def _write_one(
    backend: DynamoDBBackend,
    item: dict[str, Any],
    target_items: set[tuple[str, str]],
    touched: list[_ItemCopy],
    failed_item: list[dict[str, Any]],
) -> None:
    op_type, op = next(iter(item.items()))
    if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
        raise ValueError("Unsupported transaction operation")
    table_name = op["TableName"]
    condition_expression = op.get("ConditionExpression")
    names = op.get("ExpressionAttributeNames")
    values = op.get("ExpressionAttributeValues")
    if op_type == "Put":
        attrs = op["Item"]
        table = backend.get_table(table_name)
        key = {table.hash_key_attr: attrs[table.hash_key_attr]}
        if table.range_key_attr is not None:
            key[table.range_key_attr] = attrs[table.range_key_attr]
    else:
        key = op["Key"]
    unique = (str(table_name), str(dict(sorted(key.items()))))
    if unique in target_items:
        raise MultipleTransactionsException()
    target_items.add(unique)
    current = backend.get_item(table_name, key)
    if op_type != "ConditionCheck":
        table = backend.get_table(table_name)
        hash_key, range_key = backend.get_keys_value(table, key)
        touched.append(_ItemCopy(table, hash_key, range_key, copy.deepcopy(current)))
    if condition_expression is not None:
        if not get_filter_expression(condition_expression, names, values).expr(current):
            original_item = None
            if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                original_item = current.to_json()["Attributes"]
                failed_item.append(original_item)
            raise ConditionalCheckFailed(item=original_item)
    conditions = {
        "condition_expression": condition_expression,
        "expression_attribute_names": names,
        "expression_attribute_values": values,
    }
    if op_type == "Put":
        backend.put_item(table_name, op["Item"], **conditions)
    elif op_type == "Delete":
        backend.delete_item(table_name, key, **conditions)
    elif op_type == "Update":
        backend.update_item(table_name, key, update_expression=op["UpdateExpression"], **conditions)
