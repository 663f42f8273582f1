"""The promises the tables keep, checked from outside: read every table (any DynamoDB endpoint, a
boto3 client) and report every violation, optionally against what each phone was told.

Usable from tests and from `make bench`: `violations = check_invariants(client, tables, told)`;
an empty list means the state is one the system promises. It reads with consistent scans, so run
it once the traffic it judges has settled (in-flight work can make a true state look wrong)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

SESSIONS = "SessionsTable"
CONNECTIONS = "ConnectionsTable"
RATE_LIMITS = "RateLimitsTable"
LISTENER = "listener"
SPEAKER = "speaker"
# Per-language seat counts: top-level attributes `listeners_<language>` on the session item
# (session_manager/models.py, LANGUAGE_COUNT_PREFIX), gathered here into one map.
LANGUAGE_COUNT_PREFIX = "listeners_"
# Epoch seconds from 2001 to 2286: milliseconds (13 digits) or a date string fall outside.
EPOCH_SECONDS_RANGE = (1_000_000_000, 10_000_000_000)

_deserializer = TypeDeserializer()


@dataclass(frozen=True)
class Told:
    """What one phone was told: `sessionJoined` for a session, or an error code (never both)."""

    joined_session_id: str | None = None
    error_code: str | None = None

    @classmethod
    def joined(cls, session_id: str) -> Told:
        return cls(joined_session_id=session_id)

    @classmethod
    def error(cls, code: str) -> Told:
        return cls(error_code=code)


@dataclass(frozen=True)
class Violation:
    rule: str
    subject: str  # the item (or connection) it is about
    detail: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.subject}: {self.detail}"


def check_invariants(
    dynamodb: Any,
    tables: Mapping[str, str],
    told: Mapping[str, Told] | None = None,
    *,
    after_cleanup: bool = True,
    told_is_everyone: bool = True,
) -> list[Violation]:
    """Every violation in the tables named by `tables` (logical id -> table name; SessionsTable
    and ConnectionsTable required, RateLimitsTable optional).

    after_cleanup: ended sessions must have released every connection (False while an end's
    fan-out may still be running). told: connection id -> what it was told; told_is_everyone:
    those are all the listeners of the sessions they name, so each such session's listenerCount
    must equal its told-joined phones."""
    for required in (SESSIONS, CONNECTIONS):
        if required not in tables:
            raise ValueError(f"tables must name {required}; got {sorted(tables)}")
    sessions, connections = _stable_read(dynamodb, tables[SESSIONS], tables[CONNECTIONS])
    rate_limits = list(_scan(dynamodb, tables[RATE_LIMITS])) if RATE_LIMITS in tables else []
    ttl_attributes = {logical_id: _ttl_attribute(dynamodb, name) for logical_id, name in tables.items()}
    violations: list[Violation] = []
    violations += _check_counts(sessions, connections, after_cleanup)
    violations += _check_speakers(sessions, connections)
    violations += _check_ttls(SESSIONS, sessions.values(), "sessionId", ttl_attributes.get(SESSIONS))
    violations += _check_ttls(CONNECTIONS, connections.values(), "connectionId", ttl_attributes.get(CONNECTIONS))
    violations += _check_ttls(RATE_LIMITS, rate_limits, "identifier", ttl_attributes.get(RATE_LIMITS))
    violations += _check_rate_limits(rate_limits, ttl_attributes.get(RATE_LIMITS))
    if told is not None:
        violations += _check_told(sessions, connections, told, told_is_everyone)
    return violations


def _stable_read(
    dynamodb: Any, sessions_table: str, connections_table: str, attempts: int = 10
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Sessions, then connections, then sessions again, until both session reads agree: two scans
    are not one snapshot, and a join or leave landing between them would read as a drifted count.
    Every membership change writes its session item, so agreeing reads bracket a quiet moment."""
    before = {item["sessionId"]: item for item in _scan(dynamodb, sessions_table)}
    for _ in range(attempts):
        connections = {item["connectionId"]: item for item in _scan(dynamodb, connections_table)}
        after = {item["sessionId"]: item for item in _scan(dynamodb, sessions_table)}
        if after == before:
            break
        before = after
    return after, connections


def _scan(dynamodb: Any, table: str) -> Iterator[dict[str, Any]]:
    for page in dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        for item in page["Items"]:
            yield {name: _deserializer.deserialize(value) for name, value in item.items()}


def _ttl_attribute(dynamodb: Any, table: str) -> str | None:
    description = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    if description.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
        return str(description["AttributeName"])
    return None


def _listeners_by_session(connections: Mapping[str, dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    seated: dict[str, list[dict[str, Any]]] = {}
    for item in connections.values():
        if item.get("role") == LISTENER and item.get("sessionId"):
            seated.setdefault(str(item["sessionId"]), []).append(item)
    return seated


def _check_counts(
    sessions: Mapping[str, dict[str, Any]], connections: Mapping[str, dict[str, Any]], after_cleanup: bool
) -> list[Violation]:
    violations = []
    seated = _listeners_by_session(connections)
    for session_id, session in sessions.items():
        count = session.get("listenerCount", 0)
        records = seated.get(session_id, [])
        if not _is_whole(count) or count < 0:
            violations.append(Violation("count-not-below-zero", session_id, f"listenerCount is {count}"))
        active = bool(session.get("isActive"))
        if active and count != len(records):
            violations.append(
                Violation(
                    "count-equals-seats", session_id, f"listenerCount {count} but {len(records)} listener records"
                )
            )
        by_language = {
            key.removeprefix(LANGUAGE_COUNT_PREFIX): value
            for key, value in session.items()
            if key.startswith(LANGUAGE_COUNT_PREFIX)
        }
        if by_language:
            violations += _check_language_counts(session_id, LANGUAGE_COUNT_PREFIX + "*", by_language, records, active)
        if not active and after_cleanup:
            holders = sorted(c for c, item in connections.items() if item.get("sessionId") == session_id)
            if holders:
                violations.append(
                    Violation(
                        "ended-session-released",
                        session_id,
                        f"ended, yet {len(holders)} connection records still hold it: {', '.join(holders[:5])}",
                    )
                )
    for session_id, records in seated.items():
        if session_id not in sessions:
            ids = ", ".join(sorted(str(item["connectionId"]) for item in records)[:5])
            violations.append(
                Violation("seat-has-session", session_id, f"{len(records)} listeners hold a missing session: {ids}")
            )
    return violations


def _check_language_counts(
    session_id: str, attribute: str, counts: Mapping[str, Any], records: list[dict[str, Any]], active: bool
) -> list[Violation]:
    violations = []
    actual = Counter(str(item.get("targetLanguage")) for item in records)
    for language, count in counts.items():
        if not _is_whole(count) or count < 0:
            violations.append(Violation("count-not-below-zero", session_id, f"{attribute}[{language}] is {count}"))
    if active:
        stated = {language: count for language, count in counts.items() if count}
        if stated != {language: Decimal(n) for language, n in actual.items()}:
            violations.append(
                Violation(
                    "language-counts-equal-seats",
                    session_id,
                    f"{attribute} {dict(sorted(stated.items()))} but seats {dict(sorted(actual.items()))}",
                )
            )
    return violations


def _check_speakers(
    sessions: Mapping[str, dict[str, Any]], connections: Mapping[str, dict[str, Any]]
) -> list[Violation]:
    violations = []
    for connection_id, item in connections.items():
        if item.get("role") != SPEAKER or not item.get("sessionId"):
            continue
        session = sessions.get(str(item["sessionId"]))
        if session is None:
            violations.append(
                Violation("speaker-owns-session", connection_id, f"speaks for missing session {item['sessionId']}")
            )
        elif item.get("userId") != session.get("speakerUserId"):
            violations.append(
                Violation(
                    "speaker-owns-session",
                    connection_id,
                    f"speaks for {item['sessionId']}, which belongs to another user",
                )
            )
    for session_id, session in sessions.items():
        speaker = connections.get(str(session.get("speakerConnectionId")))
        if session.get("isActive") and speaker is not None and speaker.get("sessionId") not in (None, session_id):
            violations.append(
                Violation(
                    "speaker-owns-session",
                    session_id,
                    f"its speaker connection {session['speakerConnectionId']} holds {speaker['sessionId']}",
                )
            )
    return violations


def _check_ttls(logical_id: str, items: Any, key: str, ttl_attribute: str | None) -> list[Violation]:
    if ttl_attribute is None:
        return [Violation("ttl-enabled", logical_id, "the table has no TTL attribute enabled")]
    violations = []
    low, high = EPOCH_SECONDS_RANGE
    for item in items:
        value = item.get(ttl_attribute)
        if value is None:
            violations.append(Violation("ttl-epoch-seconds", f"{logical_id} {item.get(key)}", f"no {ttl_attribute}"))
        elif not _is_whole(value) or not low <= value < high:
            violations.append(
                Violation(
                    "ttl-epoch-seconds",
                    f"{logical_id} {item.get(key)}",
                    f"{ttl_attribute} is {value!r}, not whole epoch seconds",
                )
            )
    return violations


def _check_rate_limits(items: list[dict[str, Any]], ttl_attribute: str | None) -> list[Violation]:
    violations = []
    for item in items:
        for name, value in item.items():
            if name in ("identifier", ttl_attribute) or not isinstance(value, Decimal):
                continue
            if value < 0:
                violations.append(
                    Violation("count-not-below-zero", f"RateLimitsTable {item['identifier']}", f"{name} is {value}")
                )
    return violations


def _check_told(
    sessions: Mapping[str, dict[str, Any]],
    connections: Mapping[str, dict[str, Any]],
    told: Mapping[str, Told],
    told_is_everyone: bool,
) -> list[Violation]:
    violations = []
    joined_per_session: Counter[str] = Counter()
    for connection_id, what in told.items():
        item = connections.get(connection_id, {})
        seat = item.get("sessionId") if item.get("role") == LISTENER else None
        if what.joined_session_id is not None:
            joined_per_session[what.joined_session_id] += 1
            if seat != what.joined_session_id:
                held = f"holds {seat}" if seat else "holds no seat"
                violations.append(
                    Violation(
                        "told-joined-holds-seat",
                        connection_id,
                        f"told sessionJoined {what.joined_session_id} but {held}",
                    )
                )
        elif seat is not None:
            violations.append(
                Violation("told-error-holds-none", connection_id, f"told {what.error_code} but holds a seat in {seat}")
            )
    if told_is_everyone:
        for session_id in joined_per_session:
            for connection_id, item in connections.items():
                if item.get("sessionId") != session_id or item.get("role") != LISTENER:
                    continue
                if (told.get(connection_id) or Told()).joined_session_id != session_id:
                    violations.append(
                        Violation(
                            "seat-was-told-joined",
                            connection_id,
                            f"holds a seat in {session_id} but was never told sessionJoined",
                        )
                    )
        for session_id, joined in joined_per_session.items():
            session = sessions.get(session_id)
            count = session.get("listenerCount", 0) if session else None
            if session is not None and session.get("isActive") and count != joined:
                violations.append(
                    Violation(
                        "count-equals-told-joined",
                        session_id,
                        f"listenerCount {count} but {joined} phones were told sessionJoined",
                    )
                )
    return violations


def _is_whole(value: Any) -> bool:
    return isinstance(value, Decimal | int) and not isinstance(value, bool) and value == int(value)
