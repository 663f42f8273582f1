"""The embedded DynamoDB keeps DynamoDB's promises: a retried transaction is applied once
(ClientRequestToken), a failed one leaves every table as it was without copying tables, and
concurrent requests are isolated. Against a real moto server over HTTP, with boto3."""

from __future__ import annotations

import http.client
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import ClientError
from conftest import dynamodb
from moto.dynamodb.models.table import Table

from local_stack import moto_dynamodb
from local_stack.errors import LocalStackError

SESSIONS = "Sessions"
CONNECTIONS = "Connections"


@pytest.fixture
def patched() -> Iterator[None]:
    moto_dynamodb.install()
    moto_dynamodb.LEDGER.clear()
    yield
    moto_dynamodb.LEDGER.clear()


@pytest.fixture
def stock() -> Iterator[None]:
    was_installed = moto_dynamodb.is_installed()
    moto_dynamodb.uninstall()
    yield
    if was_installed:
        moto_dynamodb.install()


@pytest.fixture
def tables(moto_endpoint: str) -> Iterator[dict[str, str]]:
    """A Sessions table and a Connections table, shaped like the template's, fresh per test."""
    client = dynamodb(moto_endpoint)
    suffix = uuid.uuid4().hex[:8]
    names = {SESSIONS: f"sessions-{suffix}", CONNECTIONS: f"connections-{suffix}"}
    for key, name in ((("sessionId"), names[SESSIONS]), ("connectionId", names[CONNECTIONS])):
        client.create_table(
            TableName=name,
            AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
            KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
    client.put_item(
        TableName=names[SESSIONS],
        Item={"sessionId": {"S": "s1"}, "listenerCount": {"N": "0"}, "isActive": {"BOOL": True}},
    )
    yield names
    for name in names.values():
        client.delete_table(TableName=name)


def join(names: dict[str, str], connection_id: str, capacity: int = 1000) -> list[dict[str, Any]]:
    """The shape of a join: take a seat below capacity and attach a connection that holds none."""
    return [
        {
            "Update": {
                "TableName": names[SESSIONS],
                "Key": {"sessionId": {"S": "s1"}},
                "UpdateExpression": "ADD listenerCount :one",
                "ConditionExpression": "isActive = :true AND listenerCount < :capacity",
                "ExpressionAttributeValues": {
                    ":one": {"N": "1"},
                    ":true": {"BOOL": True},
                    ":capacity": {"N": str(capacity)},
                },
            }
        },
        {
            "Put": {
                "TableName": names[CONNECTIONS],
                "Item": {"connectionId": {"S": connection_id}, "sessionId": {"S": "s1"}},
                "ConditionExpression": "attribute_not_exists(connectionId)",
            }
        },
    ]


def listener_count(client: Any, names: dict[str, str]) -> int:
    item = client.get_item(TableName=names[SESSIONS], Key={"sessionId": {"S": "s1"}}, ConsistentRead=True)
    return int(item["Item"]["listenerCount"]["N"])


def snapshot(client: Any, names: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    return {
        name: sorted(client.scan(TableName=name, ConsistentRead=True)["Items"], key=repr) for name in names.values()
    }


class SlowFirstTransactionProxy:
    """Forwards HTTP to moto; the first TransactWriteItems is answered only after the client's read
    timeout, as moto answered under the storm, so botocore retries a transaction moto has applied."""

    def __init__(self, upstream: str, delay_seconds: float) -> None:
        target = urlsplit(upstream)
        self.transactions_seen = 0
        proxy = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                upstream_connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                headers = {name: value for name, value in self.headers.items() if name.lower() != "host"}
                upstream_connection.request("POST", self.path, body=body, headers=headers)
                response = upstream_connection.getresponse()
                payload = response.read()
                upstream_connection.close()
                delay = False
                if self.headers.get("X-Amz-Target", "").endswith("TransactWriteItems"):
                    with lock:
                        proxy.transactions_seen += 1
                        delay = proxy.transactions_seen == 1
                if delay:
                    threading.Event().wait(delay_seconds)
                try:
                    self.send_response(response.status)
                    for name, value in response.getheaders():
                        if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                            self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up waiting: the point of the delay

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> SlowFirstTransactionProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


# The storm's client settings (layers/session_manager/python/session_manager/store/clients.py),
# with a shorter read timeout so the test is quick.
RETRYING = {"retries": {"mode": "standard", "max_attempts": 3}, "read_timeout": 0.5, "connect_timeout": 1}


def test_stock_moto_applies_a_retried_transaction_twice_and_the_caller_hears_failure(moto_endpoint, tables, stock):
    """Issue 13's mechanism, confirmed: botocore retries after a read timeout with the same
    ClientRequestToken; stock moto ignores it, so the retry finds its own first attempt's write,
    the claim's condition fails, and the caller is told the seat was not taken while it was."""
    with SlowFirstTransactionProxy(moto_endpoint, delay_seconds=1.5) as proxy:
        client = dynamodb(proxy.endpoint, **RETRYING)
        with pytest.raises(ClientError) as failure:
            client.transact_write_items(TransactItems=join(tables, "c1"))
        assert proxy.transactions_seen == 2  # the first attempt and botocore's retry
    assert failure.value.response["Error"]["Code"] == "TransactionCanceledException"
    reasons = [reason["Code"] for reason in failure.value.response["CancellationReasons"]]
    assert reasons == ["None", "ConditionalCheckFailed"]
    direct = dynamodb(moto_endpoint)
    assert listener_count(direct, tables) == 1  # seated, though the caller heard a failure
    assert "Item" in direct.get_item(TableName=tables[CONNECTIONS], Key={"connectionId": {"S": "c1"}})


def test_stock_moto_applies_the_same_token_twice(moto_endpoint, tables, stock):
    client = dynamodb(moto_endpoint)
    update = join(tables, "unused")[:1]
    for _ in range(2):
        client.transact_write_items(TransactItems=update, ClientRequestToken="same-token")
    assert listener_count(client, tables) == 2


def test_a_retried_transaction_is_applied_once_and_succeeds(moto_endpoint, tables, patched):
    with SlowFirstTransactionProxy(moto_endpoint, delay_seconds=1.5) as proxy:
        client = dynamodb(proxy.endpoint, **RETRYING)
        client.transact_write_items(TransactItems=join(tables, "c1"))
        assert proxy.transactions_seen == 2
    assert listener_count(dynamodb(moto_endpoint), tables) == 1


def test_the_same_token_and_request_succeed_without_applying_twice(moto_endpoint, tables, patched):
    client = dynamodb(moto_endpoint)
    for _ in range(3):
        client.transact_write_items(TransactItems=join(tables, "c1"), ClientRequestToken="token-1")
    assert listener_count(client, tables) == 1


def test_the_same_token_for_another_request_is_a_mismatch(moto_endpoint, tables, patched):
    client = dynamodb(moto_endpoint)
    client.transact_write_items(TransactItems=join(tables, "c1"), ClientRequestToken="token-1")
    with pytest.raises(client.exceptions.IdempotentParameterMismatchException):
        client.transact_write_items(TransactItems=join(tables, "c2"), ClientRequestToken="token-1")
    assert listener_count(client, tables) == 1
    assert "Item" not in client.get_item(TableName=tables[CONNECTIONS], Key={"connectionId": {"S": "c2"}})


def test_different_tokens_are_different_requests(moto_endpoint, tables, patched):
    client = dynamodb(moto_endpoint)
    update = join(tables, "unused")[:1]
    client.transact_write_items(TransactItems=update, ClientRequestToken="token-1")
    client.transact_write_items(TransactItems=update, ClientRequestToken="token-2")
    client.transact_write_items(TransactItems=update)  # botocore makes up a fresh token
    assert listener_count(client, tables) == 3


def test_a_token_is_forgotten_after_its_window(moto_endpoint, tables, patched, monkeypatch):
    monkeypatch.setattr(moto_dynamodb.LEDGER, "window_seconds", 0.0)
    client = dynamodb(moto_endpoint)
    update = join(tables, "unused")[:1]
    client.transact_write_items(TransactItems=update, ClientRequestToken="token-1")
    client.transact_write_items(TransactItems=update, ClientRequestToken="token-1")
    assert listener_count(client, tables) == 2


def test_a_failed_transaction_is_not_remembered_by_its_token(moto_endpoint, tables, patched):
    """DynamoDB short-circuits only a call that succeeded; a repeat of a failed one runs again."""
    client = dynamodb(moto_endpoint)
    client.put_item(TableName=tables[CONNECTIONS], Item={"connectionId": {"S": "c1"}})
    with pytest.raises(client.exceptions.TransactionCanceledException):
        client.transact_write_items(TransactItems=join(tables, "c1"), ClientRequestToken="token-1")
    client.delete_item(TableName=tables[CONNECTIONS], Key={"connectionId": {"S": "c1"}})
    client.transact_write_items(TransactItems=join(tables, "c1"), ClientRequestToken="token-1")
    assert listener_count(client, tables) == 1


def test_a_failed_transaction_leaves_every_table_unchanged(moto_endpoint, tables, patched):
    client = dynamodb(moto_endpoint)
    for connection_id in ("old-1", "old-2"):
        client.put_item(TableName=tables[CONNECTIONS], Item={"connectionId": {"S": connection_id}, "n": {"N": "1"}})
    before = snapshot(client, tables)
    transaction = [
        *join(tables, "new-1"),  # an update of an existing item and a put of a new one
        {"Delete": {"TableName": tables[CONNECTIONS], "Key": {"connectionId": {"S": "old-1"}}}},
        {
            "Update": {
                "TableName": tables[CONNECTIONS],
                "Key": {"connectionId": {"S": "old-2"}},
                "UpdateExpression": "SET n = n + :one, added = :one",
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            }
        },
        {
            "ConditionCheck": {  # fails last, after every other write has been applied
                "TableName": tables[SESSIONS],
                "Key": {"sessionId": {"S": "no-such-session"}},
                "ConditionExpression": "attribute_exists(sessionId)",
            }
        },
    ]
    with pytest.raises(client.exceptions.TransactionCanceledException):
        client.transact_write_items(TransactItems=transaction)
    assert snapshot(client, tables) == before


def test_a_transaction_failing_validation_midway_leaves_every_table_unchanged(moto_endpoint, tables, patched):
    client = dynamodb(moto_endpoint)
    client.put_item(TableName=tables[CONNECTIONS], Item={"connectionId": {"S": "old"}, "name": {"S": "text"}})
    before = snapshot(client, tables)
    transaction = [
        *join(tables, "new-1"),
        {
            "Update": {  # adding a number to a string is a ValidationException once applied
                "TableName": tables[CONNECTIONS],
                "Key": {"connectionId": {"S": "old"}},
                "UpdateExpression": "SET #name = #name + :one",
                "ExpressionAttributeNames": {"#name": "name"},
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            }
        },
    ]
    with pytest.raises(ClientError):
        client.transact_write_items(TransactItems=transaction)
    assert snapshot(client, tables) == before


def test_a_transaction_copies_no_table(moto_endpoint, tables, patched, monkeypatch):
    """The cost fix: neither a committed nor a cancelled transaction copies a whole table."""

    def refuse(table: Table, memo: dict[int, Any]) -> Table:
        raise AssertionError(f"table {table.name} was deep-copied")

    client = dynamodb(moto_endpoint)
    client.put_item(TableName=tables[CONNECTIONS], Item={"connectionId": {"S": "c1"}})
    monkeypatch.setattr(Table, "__deepcopy__", refuse, raising=False)
    client.transact_write_items(TransactItems=join(tables, "c2"))
    with pytest.raises(client.exceptions.TransactionCanceledException):
        client.transact_write_items(TransactItems=join(tables, "c1"))
    monkeypatch.undo()
    assert listener_count(client, tables) == 1


def test_concurrent_joins_never_overfill_a_session(moto_endpoint, tables, patched):
    """Isolation: 60 joins from 30 threads into 25 seats take exactly 25, each with its record,
    while 2,000 other connections are stored (stock moto's table copies then take long enough for
    a rollback to restore a table over another join's committed write)."""
    capacity = 25
    filler = dynamodb(moto_endpoint)
    for start in range(0, 2000, 25):
        filler.batch_write_item(
            RequestItems={
                tables[CONNECTIONS]: [
                    {"PutRequest": {"Item": {"connectionId": {"S": f"other-{index}"}}}}
                    for index in range(start, start + 25)
                ]
            }
        )

    def attempt(index: int) -> bool:
        client = dynamodb(moto_endpoint, retries={"mode": "standard", "max_attempts": 1}, read_timeout=30)
        try:
            client.transact_write_items(TransactItems=join(tables, f"c{index}", capacity))
            return True
        except client.exceptions.TransactionCanceledException:
            return False

    with ThreadPoolExecutor(max_workers=30) as pool:
        seated = sum(pool.map(attempt, range(60)))
    client = dynamodb(moto_endpoint)
    records = [
        item
        for item in client.get_paginator("scan").paginate(TableName=tables[CONNECTIONS], ConsistentRead=True)
        for item in item["Items"]
        if "sessionId" in item
    ]
    assert seated == capacity
    assert listener_count(client, tables) == capacity == len(records)


def test_another_moto_fails_loudly(stock):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(moto_dynamodb, "version", lambda name: "5.3.0")
        with pytest.raises(LocalStackError, match=r"moto 5\.2\.5, found 5\.3\.0"):
            moto_dynamodb.install()
        assert not moto_dynamodb.is_installed()
