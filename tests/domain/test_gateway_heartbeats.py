"""Heartbeats answered by API Gateway (HEARTBEAT_ANSWERED_BY=gateway, decision 44): the sweeper
reads silence from the management API's lastActiveAt and pushes the refresh notices itself."""

from __future__ import annotations

import pytest

from session_manager.config import Settings
from session_manager.errors import ConfigurationError
from tests.domain.conftest import build_domain

TIMEOUT_SECONDS = 90.0


@pytest.fixture
def gateway():
    return build_domain(heartbeat_answered_by="gateway", heartbeat_timeout_seconds=TIMEOUT_SECONDS)


def now_ms(domain) -> int:
    return int(domain.clock.now * 1000)


def test_a_connection_silent_by_last_active_at_is_closed_and_an_active_one_kept(gateway):
    silent = gateway.connect()
    chatty = gateway.connect()
    gateway.clock.advance(TIMEOUT_SECONDS + 1)
    gateway.notifier.client_sent(chatty.connection_id, now_ms(gateway) - 20_000)

    report = gateway.sweep()

    assert gateway.notifier.closed == [silent.connection_id]
    assert report.closed_silent == 1


def test_last_seen_at_does_not_decide_in_gateway_mode(gateway):
    """The item's lastSeenAt is never written (no function sees a heartbeat): an active client
    whose item says it was seen only at connect stays."""
    listener = gateway.connect()
    gateway.clock.advance(10 * TIMEOUT_SECONDS)
    gateway.notifier.client_sent(listener.connection_id, now_ms(gateway) - 1000)
    assert gateway.tables.connections[listener.connection_id].last_seen_at < now_ms(gateway) - 9 * 90_000

    gateway.sweep()

    assert gateway.notifier.closed == []


def test_function_mode_still_reads_last_seen_at_and_ignores_the_management_api():
    domain = build_domain(heartbeat_timeout_seconds=TIMEOUT_SECONDS)
    listener = domain.connect()
    domain.clock.advance(TIMEOUT_SECONDS + 1)
    domain.notifier.client_sent(listener.connection_id, now_ms(domain))

    domain.sweep()

    assert domain.notifier.closed == [listener.connection_id]
    assert domain.notifier.lookups == []


def test_a_gone_exception_on_get_connection_cleans_up_as_a_missed_disconnect(gateway):
    speaker, session_id = gateway.create()
    listener = gateway.join(session_id)
    gateway.clock.advance(TIMEOUT_SECONDS + 1)
    gateway.notifier.client_sent(speaker.connection_id, now_ms(gateway))
    gateway.notifier.gone.add(listener.connection_id)

    report = gateway.sweep()

    assert report.cleaned_gone == 1 and report.closed_silent == 0
    assert listener.connection_id not in gateway.tables.connections
    assert gateway.session(session_id).listener_count == 0
    assert listener.connection_id not in gateway.notifier.closed


def test_only_connections_old_enough_to_be_silent_are_looked_up(gateway):
    old = gateway.connect()
    gateway.clock.advance(TIMEOUT_SECONDS + 1)
    young = gateway.connect()
    gateway.notifier.client_sent(old.connection_id, now_ms(gateway))

    report = gateway.sweep()

    assert gateway.notifier.lookups == [old.connection_id]
    assert report.activity_lookups == 1
    assert young.connection_id not in gateway.notifier.closed


def test_a_connection_seen_active_is_not_looked_up_again_until_it_could_be_silent(gateway):
    """30 s heartbeats, a 90 s timeout, a sweep a minute: every other sweep looks it up."""
    listener = gateway.connect()
    gateway.clock.advance(TIMEOUT_SECONDS + 1)
    lookups = []
    for _ in range(6):
        gateway.notifier.client_sent(listener.connection_id, now_ms(gateway) - 25_000)
        before = len(gateway.notifier.lookups)
        gateway.sweep()
        lookups.append(len(gateway.notifier.lookups) - before)
        gateway.clock.advance(60)

    assert lookups == [1, 0, 1, 0, 1, 0]
    assert gateway.notifier.closed == []


def test_a_client_that_stops_is_closed_within_a_sweep_of_the_timeout_despite_the_saved_lookups(gateway):
    listener = gateway.connect()
    gateway.clock.advance(TIMEOUT_SECONDS + 1)
    gateway.notifier.client_sent(listener.connection_id, now_ms(gateway))
    gateway.sweep()  # looked up: active just now
    stopped_at = now_ms(gateway)

    closed_at = None
    for _ in range(4):
        gateway.clock.advance(60)
        gateway.sweep()
        if gateway.notifier.closed:
            closed_at = now_ms(gateway)
            break

    assert gateway.notifier.closed == [listener.connection_id]
    assert stopped_at + TIMEOUT_SECONDS * 1000 < closed_at <= stopped_at + (TIMEOUT_SECONDS + 60) * 1000


def test_refresh_and_warning_are_pushed_when_due_and_not_before(gateway):
    settings = gateway.services.settings
    speaker, session_id = gateway.create()
    listener = gateway.join(session_id, "de")
    idle = gateway.connect()  # holds no role: warned, never told to refresh
    started = gateway.clock.now
    everyone = (speaker, listener, idle)

    def sweep_at(minutes: float) -> None:
        gateway.clock.now = started + minutes * 60
        for client in everyone:
            gateway.notifier.client_sent(client.connection_id, now_ms(gateway) - 1000)
        gateway.notifier.posts.clear()
        gateway.sweep()

    sweep_at(settings.connection_refresh_minutes - 0.1)
    assert all(gateway.notifier.types_to(client.connection_id) == [] for client in everyone)

    sweep_at(settings.connection_refresh_minutes)
    assert gateway.notifier.types_to(speaker.connection_id) == ["connectionRefreshRequired"]
    (required,) = gateway.notifier.messages_to(listener.connection_id)
    assert required == {
        "type": "connectionRefreshRequired",
        "timestamp": now_ms(gateway),
        "sessionId": session_id,
        "role": "listener",
        "targetLanguage": "de",
        "message": "Open a new connection and send refreshConnection to stay in the session.",
    }
    assert gateway.notifier.types_to(idle.connection_id) == []

    sweep_at(settings.connection_warning_minutes + 1.5)
    assert sorted(gateway.notifier.types_to(listener.connection_id)) == [
        "connectionRefreshRequired",
        "connectionWarning",
    ]
    (warning,) = [m for m in gateway.notifier.messages_to(idle.connection_id)]
    remaining = int(settings.connection_max_minutes - settings.connection_warning_minutes - 1.5)
    assert warning == {
        "type": "connectionWarning",
        "timestamp": now_ms(gateway),
        "remainingMinutes": remaining,
        "message": f"This connection closes in about {remaining} minutes; refresh it now.",
    }


def test_the_pushed_notices_are_those_a_heartbeat_reply_carries():
    """One builder for both modes (connections.lifetime_notices): the function's heartbeat reply
    at the same age and clock has the same messages after its heartbeatAck."""
    function_mode = build_domain()
    gateway = build_domain(heartbeat_answered_by="gateway")
    replies = {}
    for domain in (function_mode, gateway):
        domain.clock.now = 1_767_600_000.0
        speaker, _ = domain.create()
        domain.clock.advance(domain.services.settings.connection_warning_minutes * 60 + 30)
        if domain is function_mode:
            replies["function"] = list(domain.services.connections.heartbeat(speaker).replies[1:])
        else:
            domain.notifier.client_sent(speaker.connection_id, now_ms(domain))
            domain.sweep()
            replies["gateway"] = domain.notifier.messages_to(speaker.connection_id)
    for reply in (*replies["function"], *replies["gateway"]):
        reply.pop("sessionId", None)  # each domain drew its own id
    assert sorted(replies["gateway"], key=str) == sorted(replies["function"], key=str)
    assert [r["type"] for r in replies["function"]] == ["connectionRefreshRequired", "connectionWarning"]


def test_no_refresh_notice_is_pushed_in_function_mode():
    domain = build_domain()
    listener = domain.connect()
    domain.clock.advance(domain.services.settings.connection_warning_minutes * 60)
    domain.services.connections.heartbeat(listener)

    report = domain.sweep()

    assert domain.notifier.posts == [] and report.refresh_notices == 0


def test_a_bad_mode_fails_loudly_in_one_line():
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_environment({"HEARTBEAT_ANSWERED_BY": "lambda"})
    assert str(raised.value) == "HEARTBEAT_ANSWERED_BY=lambda must be one of function, gateway"
    assert Settings.from_environment({"HEARTBEAT_ANSWERED_BY": "gateway"}).heartbeats_answered_by_gateway
    assert not Settings.from_environment({}).heartbeats_answered_by_gateway


def test_a_failed_lookup_skips_that_connection_for_this_sweep_and_not_the_others(gateway):
    from session_manager.errors import ServiceUnavailableError

    broken, silent = gateway.connect(), gateway.connect()
    gateway.clock.advance(TIMEOUT_SECONDS + 1)
    answer = gateway.notifier.last_active_at

    def flaky(connection_id: str) -> int | None:
        if connection_id == broken.connection_id:
            raise ServiceUnavailableError()
        return answer(connection_id)

    gateway.notifier.last_active_at = flaky

    report = gateway.sweep()

    assert gateway.notifier.closed == [silent.connection_id]
    assert report.errors == ["ServiceUnavailableError"]
    assert broken.connection_id in gateway.tables.connections
