"""One contract, two implementations: every test here runs against the in-memory fakes and
against the DynamoDB adapters on moto (the notifier: against the local stack's management API),
so the fakes the domain tests use cannot drift."""

from __future__ import annotations

import contextlib
import itertools
import json
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from session_manager.models import Connection, Session
from session_manager.outcomes import Outcome, Refusal, WindowFullError, Written
from session_manager.protocol import EndReason, Role
from session_manager.store.connections import DynamoDBConnectionStore
from session_manager.store.dynamodb import DynamoDB
from session_manager.store.messenger import ManagementApiNotifier
from session_manager.store.rate_limits import DynamoDBRateLimitStore
from session_manager.store.sessions import DynamoDBSessionStore
from tests.conftest import create_tables
from tests.domain.fakes import FakeConnectionStore, FakeNotifier, FakeRateLimitStore, FakeSessionStore, Tables

_ids = itertools.count(1)
NOW_MS = int(time.time() * 1000)


class Stores:
    def __init__(self, sessions, connections, rate_limits) -> None:
        self.sessions = sessions
        self.connections = connections
        self.rate_limits = rate_limits


@pytest.fixture(params=["fake", "dynamodb"])
def stores(request):
    if request.param == "fake":
        tables = Tables()
        yield Stores(FakeSessionStore(tables), FakeConnectionStore(tables), FakeRateLimitStore())
        return
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_tables(client)
        db = DynamoDB(client)
        yield Stores(
            DynamoDBSessionStore("SessionsTable", "ConnectionsTable", db),
            DynamoDBConnectionStore("ConnectionsTable", db),
            DynamoDBRateLimitStore("RateLimitsTable", db),
        )


def connection(stores, *, user_id: str | None = None) -> str:
    connection_id = f"c{next(_ids)}="
    assert stores.connections.register(connection_id, NOW_MS, NOW_MS // 1000 + 7200, user_id)
    return connection_id


def session(stores, *, user_id: str = "u1", **fields) -> Session:
    speaker = connection(stores, user_id=user_id)
    created = Session(
        session_id=f"holy-lamb-{100 + next(_ids)}",
        speaker_connection_id=speaker,
        speaker_user_id=user_id,
        source_language="en",
        quality_tier="standard",
        created_at=NOW_MS,
        expires_at=NOW_MS // 1000 + 3600,
        **fields,
    )
    assert stores.sessions.create(created) == Written()
    return created


# ---------------------------------------------------------------- create


def test_create_claims_the_id_and_the_speaker_connection(stores):
    created = session(stores)

    assert stores.sessions.get(created.session_id) == created
    speaker = stores.connections.get(created.speaker_connection_id)
    assert (speaker.session_id, speaker.role) == (created.session_id, Role.SPEAKER)


def test_create_with_a_taken_id_returns_the_session_that_holds_it(stores):
    taken = session(stores)
    other = connection(stores, user_id="u2")

    result = stores.sessions.create(
        Session(taken.session_id, other, "u2", "en", "standard", NOW_MS, NOW_MS // 1000 + 60)
    )

    assert result == Refusal(session_failed=True, session=taken)
    assert stores.connections.get(other).session_id is None


def test_create_on_a_busy_connection_returns_the_connection_as_it_is(stores):
    taken = session(stores)

    result = stores.sessions.create(
        Session("new-lamb-999", taken.speaker_connection_id, "u1", "en", "standard", NOW_MS, NOW_MS // 1000 + 60)
    )

    assert isinstance(result, Refusal) and result.connection_failed and not result.session_failed
    assert result.connection.session_id == taken.session_id
    assert stores.sessions.get("new-lamb-999") is None


# ---------------------------------------------------------------- seats


def test_a_seat_is_counted_with_its_connection(stores):
    live = session(stores)
    listener = connection(stores)

    assert stores.sessions.add_listener(live.session_id, listener, "es", NOW_MS, 5) == Written()

    assert stores.sessions.get(live.session_id).listener_count == 1
    held = stores.connections.get(listener)
    assert (held.session_id, held.role, held.target_language) == (live.session_id, Role.LISTENER, "es")
    assert list(stores.connections.listeners_of(live.session_id)) == [(listener, "es")]


def test_a_full_session_refuses_a_seat_and_returns_itself(stores):
    live = session(stores)
    stores.sessions.add_listener(live.session_id, connection(stores), "es", NOW_MS, 1)
    late = connection(stores)

    result = stores.sessions.add_listener(live.session_id, late, "es", NOW_MS, 1)

    assert isinstance(result, Refusal) and result.session_failed and not result.connection_failed
    assert result.session.listener_count == 1
    assert stores.connections.get(late).session_id is None


def test_a_missing_session_refuses_a_seat_with_no_item(stores):
    result = stores.sessions.add_listener("no-such-lamb-123", connection(stores), "es", NOW_MS, 5)

    assert result == Refusal(session_failed=True, session=None)


def test_a_seated_connection_refuses_another_seat_and_returns_what_it_holds(stores):
    first, second = session(stores), session(stores, user_id="u2")
    listener = connection(stores)
    stores.sessions.add_listener(first.session_id, listener, "es", NOW_MS, 5)

    result = stores.sessions.add_listener(second.session_id, listener, "fr", NOW_MS, 5)

    assert isinstance(result, Refusal) and result.connection_failed and not result.session_failed
    assert (result.connection.session_id, result.connection.target_language) == (first.session_id, "es")
    assert stores.sessions.get(second.session_id).listener_count == 0


def test_a_gone_connection_refuses_a_seat_with_no_item(stores):
    live = session(stores)

    result = stores.sessions.add_listener(live.session_id, "gone=", "es", NOW_MS, 5)

    assert result == Refusal(connection_failed=True, connection=None)
    assert stores.sessions.get(live.session_id).listener_count == 0


def test_a_seat_is_released_once(stores):
    live = session(stores)
    listener = connection(stores)
    stores.sessions.add_listener(live.session_id, listener, "es", NOW_MS, 5)

    first = stores.sessions.remove_listener(listener, live.session_id, "es", NOW_MS, delete_connection=False)
    second = stores.sessions.remove_listener(listener, live.session_id, "es", NOW_MS, delete_connection=False)

    assert (first, second) == (Outcome.DONE, Outcome.ALREADY_DONE)
    assert stores.sessions.get(live.session_id).listener_count == 0
    assert stores.connections.get(listener).session_id is None


def test_releasing_a_seat_never_takes_the_count_below_zero(stores):
    live = session(stores)
    listener = connection(stores)
    stores.sessions.add_listener(live.session_id, listener, "es", NOW_MS, 5)
    stores.sessions.repair_listener_count(live.session_id, 1, {"es": 0}, NOW_MS + 1)

    assert (
        stores.sessions.remove_listener(listener, live.session_id, "es", NOW_MS, delete_connection=True) is Outcome.DONE
    )

    assert stores.sessions.get(live.session_id).listener_count == 0
    assert stores.connections.get(listener) is None


# ---------------------------------------------------------------- speaker


def test_only_the_sessions_user_moves_it_and_the_away_mark_must_match(stores):
    live = session(stores)
    other_user, same_user = connection(stores, user_id="u2"), connection(stores, user_id="u1")

    assert stores.sessions.move_speaker(live.session_id, "u2", other_user, NOW_MS, 1, away_since=None) == Refusal(
        session_failed=True, session=live
    )
    assert stores.sessions.mark_speaker_away(live.session_id, live.speaker_connection_id, NOW_MS + 5)
    stale = stores.sessions.move_speaker(live.session_id, "u1", same_user, NOW_MS, 2**31, away_since=None)
    assert isinstance(stale, Refusal) and stale.session.speaker_away_since == NOW_MS + 5

    moved = stores.sessions.move_speaker(live.session_id, "u1", same_user, NOW_MS, 2**31, away_since=NOW_MS + 5)

    assert moved == Written()
    now = stores.sessions.get(live.session_id)
    assert (now.speaker_connection_id, now.speaker_away_since, now.expires_at) == (same_user, None, 2**31)


def test_an_away_mark_needs_the_current_speaker(stores):
    live = session(stores)

    assert not stores.sessions.mark_speaker_away(live.session_id, "someone-else=", NOW_MS)
    assert stores.sessions.get(live.session_id).speaker_away_since is None


def test_a_session_ends_once_and_returns_itself_ended(stores):
    live = session(stores)

    ended = stores.sessions.end(
        live.session_id, EndReason.SPEAKER_ENDED, NOW_MS, speaker_connection_id=live.speaker_connection_id
    )
    again = stores.sessions.end(live.session_id, EndReason.SPEAKER_ENDED, NOW_MS)

    assert isinstance(ended, Written)
    assert (ended.session.is_active, ended.session.end_reason, ended.session.ended_at) == (
        False,
        EndReason.SPEAKER_ENDED,
        NOW_MS,
    )
    assert isinstance(again, Refusal) and again.session.is_active is False


@pytest.mark.parametrize(
    "condition",
    [{"speaker_connection_id": "not-the-speaker="}, {"only_if_expired": True}, {"away_since": 12345}],
)
def test_an_end_whose_condition_does_not_hold_returns_the_session_as_it_is(stores, condition):
    live = session(stores)

    result = stores.sessions.end(live.session_id, EndReason.EXPIRED, NOW_MS, **condition)

    assert result == Refusal(session_failed=True, session=live)


# ---------------------------------------------------------------- connections


def test_heartbeats_are_counted_per_minute_up_to_the_limit(stores):
    listener = connection(stores)

    first = stores.connections.record_heartbeat(listener, NOW_MS, 2)
    stores.connections.record_heartbeat(listener, NOW_MS + 1, 2)
    refused = stores.connections.record_heartbeat(listener, NOW_MS + 2, 2)

    assert isinstance(first, Written) and first.connection.last_seen_at == NOW_MS
    assert isinstance(refused, Refusal) and refused.connection.connection_id == listener
    assert stores.connections.record_heartbeat("gone=", NOW_MS, 2) == Refusal(connection_failed=True)


def test_an_idle_connection_is_deleted_a_seated_one_is_returned(stores):
    live = session(stores)
    idle, seated = connection(stores), connection(stores)
    stores.sessions.add_listener(live.session_id, seated, "es", NOW_MS, 5)

    deleted = stores.connections.delete_if_idle(idle)
    refused = stores.connections.delete_if_idle(seated)
    unknown = stores.connections.delete_if_idle("gone=")

    assert isinstance(deleted, Written) and deleted.connection.connection_id == idle
    assert stores.connections.get(idle) is None
    assert isinstance(refused, Refusal) and refused.connection.session_id == live.session_id
    assert unknown == Written(connection=None)


def test_a_connection_is_detached_only_from_the_session_it_holds(stores):
    live = session(stores)
    listener = connection(stores)
    stores.sessions.add_listener(live.session_id, listener, "es", NOW_MS, 5)

    assert not stores.connections.detach_from_session(listener, "other-lamb-123")
    assert stores.connections.detach_from_session(listener, live.session_id)
    assert not stores.connections.detach_from_session(listener, live.session_id)
    assert stores.connections.get(listener).session_id is None


def test_a_duplicate_registration_is_refused(stores):
    listener = connection(stores)

    assert not stores.connections.register(listener, NOW_MS, 1, None)
    assert isinstance(stores.connections.get(listener), Connection)


# ---------------------------------------------------------------- rate limits


def test_a_window_admits_up_to_each_limit(stores):
    for _ in range(2):
        stores.rate_limits.consume("join#k#0", 60, "admitted", {"admitted": 2, "failed": 1})
    with pytest.raises(WindowFullError):
        stores.rate_limits.consume("join#k#0", 60, "admitted", {"admitted": 2, "failed": 1})

    stores.rate_limits.adjust("join#k#0", 60, {"admitted": -1, "failed": 1})

    with pytest.raises(WindowFullError):  # the failed counter is at its limit now
        stores.rate_limits.consume("join#k#0", 60, "admitted", {"admitted": 2, "failed": 1})
    stores.rate_limits.consume("join#other#0", 60, "admitted", {"admitted": 2, "failed": 1})


# ---------------------------------------------------------------- scans


def test_a_scan_returns_every_item_across_its_pages(stores, monkeypatch):
    import session_manager.store.connections as connection_store
    import session_manager.store.sessions as session_store

    for module in (connection_store, session_store):
        monkeypatch.setattr(module, "SCAN_PAGE_SIZE", 3)  # seven items make three pages
    created = {session(stores).session_id for _ in range(7)}
    db = getattr(stores.sessions, "db", None)  # the DynamoDB adapters' one gate; the fakes have none
    pages: list[str] = []
    if db is not None:
        real_call = db.call

        def counted_call(operation, tables, **kwargs):
            if operation == "scan":
                pages.append(kwargs["TableName"])
            return real_call(operation, tables, **kwargs)

        monkeypatch.setattr(db, "call", counted_call)

    assert {found.session_id for found in stores.sessions.scan()} == created
    assert len(list(stores.connections.scan())) == 7  # each session's speaker connection
    if db is not None:  # seven items in pages of three: three requests per table
        assert sorted(pages) == ["ConnectionsTable"] * 3 + ["SessionsTable"] * 3


# ---------------------------------------------------------------- the @connections API
# The notifier against the local stack's management API (a real WebSocket client on the probe
# stack of tests/local_stack) and the fake, with what the sweeper relies on in gateway mode.

PROBE_TEMPLATE = Path(__file__).resolve().parents[1] / "local_stack" / "fixtures" / "template.yaml"


class FakeConnections:
    def __init__(self) -> None:
        self.notifier = FakeNotifier()

    def open(self) -> str:
        return f"c{next(_ids)}="

    def client_sends(self, connection_id: str) -> None:
        self.notifier.client_sent(connection_id, int(time.time() * 1000))

    def receive(self, connection_id: str) -> None:
        pass

    def drop(self, connection_id: str) -> None:
        self.notifier.gone.add(connection_id)


class LocalStackConnections:
    """Real clients of the probe stack: its echo function tells a client its connection id."""

    def __init__(self, ready: dict[str, Any]) -> None:
        self.ready = ready
        client = boto3.client(
            "apigatewaymanagementapi",
            endpoint_url=ready["managementEndpoint"],
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        self.notifier = ManagementApiNotifier(client)
        self.sockets: dict[str, Any] = {}
        self._open = contextlib.ExitStack()

    def open(self) -> str:
        from websockets.sync.client import connect

        socket = self._open.enter_context(connect(self.ready["websocketUrl"], open_timeout=15))
        socket.send(json.dumps({"action": "echo"}))
        connection_id = json.loads(socket.recv(timeout=10))["event"]["requestContext"]["connectionId"]
        self.sockets[connection_id] = socket
        return connection_id

    def client_sends(self, connection_id: str) -> None:
        self.sockets[connection_id].send(json.dumps({"action": "echo"}))
        self.receive(connection_id)  # the echo's reply: a server post, after the message

    def receive(self, connection_id: str) -> None:
        self.sockets[connection_id].recv(timeout=10)

    def drop(self, connection_id: str) -> None:
        self.sockets.pop(connection_id).close()

    def close_all(self) -> None:
        self._open.close()


@pytest.fixture(scope="module")
def probe_stack():
    from local_stack.testing import running_stack

    with running_stack(template=PROBE_TEMPLATE) as ready:
        yield ready


@pytest.fixture(params=["fake", "management_api"])
def clients(request):
    if request.param == "fake":
        yield FakeConnections()
        return
    connections = LocalStackConnections(request.getfixturevalue("probe_stack"))
    try:
        yield connections
    finally:
        connections.close_all()


def _eventually_gone(clients, connection_id: str) -> bool:
    """The gateway drops a closed connection when its close handshake ends, a moment later."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if clients.notifier.last_active_at(connection_id) is None:
            return True
        time.sleep(0.02)
    return False


def test_last_active_at_is_when_the_client_last_sent_a_message(clients):
    connection_id = clients.open()
    time.sleep(0.01)
    sent_after = int(time.time() * 1000)
    clients.client_sends(connection_id)
    answered_by = int(time.time() * 1000)

    assert sent_after <= clients.notifier.last_active_at(connection_id) <= answered_by


def test_a_server_post_does_not_move_last_active_at(clients):
    """What gateway mode assumes of API Gateway (decision 44, to be confirmed on a deployed
    stage, docs/deployment.md): only the client's messages count, or the sweeper's own notices
    would keep a vanished phone alive."""
    connection_id = clients.open()
    clients.client_sends(connection_id)
    active = clients.notifier.last_active_at(connection_id)
    time.sleep(0.02)

    assert clients.notifier.send(connection_id, {"type": "heartbeatAck", "timestamp": 1})
    clients.receive(connection_id)

    assert clients.notifier.last_active_at(connection_id) == active


def test_a_gone_connection_has_no_last_active_at(clients):
    dropped = clients.open()
    closed = clients.open()

    clients.drop(dropped)
    assert clients.notifier.close(closed)

    assert _eventually_gone(clients, dropped)
    assert _eventually_gone(clients, closed)
    assert not clients.notifier.close(dropped)
