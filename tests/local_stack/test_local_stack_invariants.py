"""The invariant checker finds every kind of violation it promises to, and none in a sound state:
tables on a real moto server, read over HTTP with boto3."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from local_stack.invariants import Told, check_invariants

NOW = int(time.time())


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield boto3.client(
        "dynamodb",
        endpoint_url=f"http://{host}:{port}",
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    server.stop()


@pytest.fixture
def tables(client: Any) -> dict[str, str]:
    """The template's three tables (keys and TTL attributes), fresh per test."""
    suffix = uuid.uuid4().hex[:8]
    names = {
        "SessionsTable": f"sessions-{suffix}",
        "ConnectionsTable": f"connections-{suffix}",
        "RateLimitsTable": f"rate-limits-{suffix}",
    }
    for logical_id, key, ttl in (
        ("SessionsTable", "sessionId", "expiresAt"),
        ("ConnectionsTable", "connectionId", "ttl"),
        ("RateLimitsTable", "identifier", "expiresAt"),
    ):
        client.create_table(
            TableName=names[logical_id],
            AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
            KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        client.update_time_to_live(
            TableName=names[logical_id], TimeToLiveSpecification={"AttributeName": ttl, "Enabled": True}
        )
    return names


def put(client: Any, table: str, **attributes: Any) -> None:
    client.put_item(TableName=table, Item={name: _value(value) for name, value in attributes.items()})


def _value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": str(value)}
    if isinstance(value, dict):
        return {"M": {name: _value(inner) for name, inner in value.items()}}
    return {"S": str(value)}


def session(client: Any, tables: dict[str, str], session_id: str = "s-1", **overrides: Any) -> None:
    attributes = {
        "sessionId": session_id,
        "speakerConnectionId": "speaker-1",
        "speakerUserId": "user-1",
        "isActive": True,
        "listenerCount": 0,
        "expiresAt": NOW + 3600,
        "createdAt": NOW * 1000,
    }
    put(client, tables["SessionsTable"], **{**attributes, **overrides})


def connection(client: Any, tables: dict[str, str], connection_id: str, **attributes: Any) -> None:
    put(client, tables["ConnectionsTable"], connectionId=connection_id, ttl=NOW + 7200, **attributes)


def seated(client: Any, tables: dict[str, str], count: int, session_id: str = "s-1") -> None:
    session(client, tables, session_id, listenerCount=count)
    connection(client, tables, "speaker-1", role="speaker", sessionId=session_id, userId="user-1")
    for index in range(count):
        language = ("es", "fr")[index % 2]
        connection(client, tables, f"l-{index}", role="listener", sessionId=session_id, targetLanguage=language)


def rules(violations: list[Any]) -> list[str]:
    return sorted(violation.rule for violation in violations)


def test_a_sound_state_has_no_violation(client, tables):
    seated(client, tables, 3)
    connection(client, tables, "free-1")
    put(client, tables["RateLimitsTable"], identifier="ip#1", joins=4, expiresAt=NOW + 60)
    told = {f"l-{index}": Told.joined("s-1") for index in range(3)} | {"free-1": Told.error("SESSION_FULL")}
    assert check_invariants(client, tables, told) == []


def test_a_count_above_the_seats(client, tables):
    seated(client, tables, 2)
    session(client, tables, listenerCount=3)
    assert rules(check_invariants(client, tables)) == ["count-equals-seats"]


def test_a_seat_the_count_misses(client, tables):
    seated(client, tables, 2)
    connection(client, tables, "l-extra", role="listener", sessionId="s-1", targetLanguage="es")
    assert rules(check_invariants(client, tables)) == ["count-equals-seats"]


def test_a_count_below_zero(client, tables):
    session(client, tables, listenerCount=-1)
    connection(client, tables, "speaker-1", role="speaker", sessionId="s-1", userId="user-1")
    assert rules(check_invariants(client, tables)) == ["count-equals-seats", "count-not-below-zero"]


def test_a_rate_limit_counter_below_zero(client, tables):
    put(client, tables["RateLimitsTable"], identifier="ip#1", joins=-2, expiresAt=NOW + 60)
    assert rules(check_invariants(client, tables)) == ["count-not-below-zero"]


def test_per_language_counts_that_disagree_with_the_seats(client, tables):
    seated(client, tables, 2)  # one es, one fr
    session(client, tables, listenerCount=2, listeners_es=2, listeners_fr=0)
    assert rules(check_invariants(client, tables)) == ["language-counts-equal-seats"]


def test_per_language_counts_that_agree(client, tables):
    seated(client, tables, 2)
    session(client, tables, listenerCount=2, listeners_es=1, listeners_fr=1, listeners_de=0)
    assert check_invariants(client, tables) == []


def test_an_ended_session_still_held_after_cleanup(client, tables):
    session(client, tables, isActive=False, listenerCount=0, endedAt=NOW * 1000)
    connection(client, tables, "l-0", role="listener", sessionId="s-1", targetLanguage="es")
    assert rules(check_invariants(client, tables)) == ["ended-session-released"]
    assert check_invariants(client, tables, after_cleanup=False) == []


def test_a_seat_in_a_session_that_does_not_exist(client, tables):
    connection(client, tables, "l-0", role="listener", sessionId="gone-1", targetLanguage="es")
    assert rules(check_invariants(client, tables)) == ["seat-has-session"]


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({"ttl": (NOW + 60) * 1000}, "ttl-epoch-seconds"),  # milliseconds
        ({"ttl": "2026-12-01T00:00:00Z"}, "ttl-epoch-seconds"),
        ({"ttl": NOW + 0.5}, "ttl-epoch-seconds"),
    ],
)
def test_a_ttl_that_is_not_epoch_seconds(client, tables, item, expected):
    put(client, tables["ConnectionsTable"], connectionId="c-1", **item)
    assert rules(check_invariants(client, tables)) == [expected]


def test_an_item_without_its_ttl(client, tables):
    put(client, tables["RateLimitsTable"], identifier="ip#1", joins=1)
    assert rules(check_invariants(client, tables)) == ["ttl-epoch-seconds"]


def test_a_speaker_connection_of_another_users_session(client, tables):
    session(client, tables)
    connection(client, tables, "speaker-1", role="speaker", sessionId="s-1", userId="user-1")
    connection(client, tables, "intruder", role="speaker", sessionId="s-1", userId="user-2")
    assert rules(check_invariants(client, tables)) == ["speaker-owns-session"]


def test_a_speaker_connection_of_a_missing_session(client, tables):
    connection(client, tables, "speaker-9", role="speaker", sessionId="gone-1", userId="user-1")
    assert rules(check_invariants(client, tables)) == ["speaker-owns-session"]


def test_a_phone_told_joined_without_a_seat(client, tables):
    seated(client, tables, 1)
    connection(client, tables, "l-lied-to")
    told = {"l-0": Told.joined("s-1"), "l-lied-to": Told.joined("s-1")}
    assert rules(check_invariants(client, tables, told)) == ["count-equals-told-joined", "told-joined-holds-seat"]


def test_a_phone_told_an_error_that_holds_a_seat(client, tables):
    """Issue 13's falsehood: seated, and told it was not."""
    seated(client, tables, 2)
    told = {"l-0": Told.joined("s-1"), "l-1": Told.error("INVALID_ACTION")}
    found = check_invariants(client, tables, told)
    assert rules(found) == ["count-equals-told-joined", "seat-was-told-joined", "told-error-holds-none"]
    assert {violation.subject for violation in found if violation.rule == "told-error-holds-none"} == {"l-1"}


def test_a_seat_nobody_was_told_about(client, tables):
    """A phone told an error whose connection id it never learnt still cannot hide a seat."""
    seated(client, tables, 2)
    told = {"l-0": Told.joined("s-1"), "unidentified-7": Told.error("Internal server error")}
    assert rules(check_invariants(client, tables, told)) == ["count-equals-told-joined", "seat-was-told-joined"]


def test_partial_knowledge_of_the_phones(client, tables):
    seated(client, tables, 2)
    assert check_invariants(client, tables, {"l-0": Told.joined("s-1")}, told_is_everyone=False) == []


def test_the_tables_it_needs(client, tables):
    with pytest.raises(ValueError, match="SessionsTable"):
        check_invariants(client, {"ConnectionsTable": tables["ConnectionsTable"]})
