"""Rate limits over fixed windows (requirement 13 and the venue decision of protocol.md)."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError

from session_manager.errors import (
    InvalidSessionIdError,
    MisconfigurationError,
    RateLimitExceededError,
    SessionNotFoundError,
)
from session_manager.protocol import JoinSessionRequest
from session_manager.ratelimit import RateLimiter, Window
from session_manager.store.dynamodb import DynamoDB
from session_manager.store.rate_limits import DynamoDBRateLimitStore
from tests.unit.harness import (
    FakeClock,
    SerializedClient,
    build,
    connect,
    create_session,
    join,
    run_in_threads,
    settings,
    use_clock,
)

IP = "198.51.100.23"


def _window_start() -> int:
    """The start of the current minute (also the start of an hour-aligned window when needed)."""
    return int(time.time()) // 3600 * 3600


@pytest.fixture
def limiter_for(dynamodb_client):
    def make(**overrides) -> RateLimiter:
        configured = settings(**overrides)
        return RateLimiter(
            configured,
            DynamoDBRateLimitStore(configured.rate_limits_table, DynamoDB(SerializedClient(dynamodb_client))),
            configured.rate_limit_key_secret.encode(),
        )

    return make


def _counted(dynamodb_client, limiter: RateLimiter, policy: str, key: str, now: float) -> int:
    window = Window.of(policy, key, 60, now, limiter.key_secret)
    item = dynamodb_client.get_item(TableName="RateLimitsTable", Key={"identifier": {"S": window.identifier}})
    return int(item.get("Item", {}).get("count", {}).get("N", 0))


def test_requests_within_the_limit_are_accepted(limiter_for, dynamodb_client):
    limiter = limiter_for(rate_limit_connection_attempts_per_min=3)
    start = _window_start()

    for second in range(3):
        limiter.connection_attempt(IP, start + second)

    assert _counted(dynamodb_client, limiter, "connect", IP, start) == 3


def test_a_request_over_the_limit_is_told_to_retry_at_the_window_end(limiter_for):
    limiter = limiter_for(rate_limit_connection_attempts_per_min=3)
    start = _window_start()
    for _ in range(3):
        limiter.connection_attempt(IP, start + 1)

    with pytest.raises(RateLimitExceededError) as raised:
        limiter.connection_attempt(IP, start + 10)

    assert (raised.value.code, raised.value.status) == ("RATE_LIMIT_EXCEEDED", 429)
    assert raised.value.retry_after == 50


def test_retry_after_is_at_least_one_second_at_the_very_end_of_a_window(limiter_for):
    limiter = limiter_for(rate_limit_connection_attempts_per_min=1)
    start = _window_start()
    limiter.connection_attempt(IP, start)

    with pytest.raises(RateLimitExceededError) as raised:
        limiter.connection_attempt(IP, start + 59.95)

    assert raised.value.retry_after == 1


def test_requests_are_accepted_again_in_the_next_window(limiter_for):
    limiter = limiter_for(rate_limit_connection_attempts_per_min=2)
    start = _window_start()
    limiter.connection_attempt(IP, start + 58)
    limiter.connection_attempt(IP, start + 59)
    with pytest.raises(RateLimitExceededError):
        limiter.connection_attempt(IP, start + 59.5)

    limiter.connection_attempt(IP, start + 60)


def test_limits_are_kept_per_source(limiter_for, dynamodb_client):
    limiter = limiter_for(rate_limit_connection_attempts_per_min=1)
    start = _window_start()
    limiter.connection_attempt(IP, start)

    limiter.connection_attempt("198.51.100.24", start)

    assert _counted(dynamodb_client, limiter, "connect", IP, start) == 1
    assert _counted(dynamodb_client, limiter, "connect", "198.51.100.24", start) == 1
    with pytest.raises(RateLimitExceededError):
        limiter.connection_attempt(IP, start + 1)


def test_concurrent_requests_never_exceed_the_limit(limiter_for):
    # GIVEN a limit of 10 a minute
    limiter = limiter_for(rate_limit_connection_attempts_per_min=10)
    start = _window_start()

    # WHEN 30 attempts from one IP arrive at once
    results = run_in_threads(lambda _: limiter.connection_attempt(IP, start + 5), list(range(30)))

    # THEN exactly 10 were admitted
    assert results.count(None) == 10
    assert len([r for r in results if isinstance(r, RateLimitExceededError)]) == 20


def test_session_creation_is_limited_per_user_per_hour(limiter_for):
    limiter = limiter_for()
    start = _window_start()
    for minute in range(50):
        limiter.session_creation("speaker-1", start + minute * 60)

    with pytest.raises(RateLimitExceededError) as raised:
        limiter.session_creation("speaker-1", start + 3000)

    assert raised.value.retry_after == 600
    limiter.session_creation("speaker-2", start + 3000)


def test_the_table_never_holds_an_ip_address_or_a_user_id(limiter_for, dynamodb_client):
    limiter = limiter_for()
    limiter.connection_attempt(IP, _window_start())
    limiter.session_creation("speaker-1", _window_start())

    stored = str(dynamodb_client.scan(TableName="RateLimitsTable")["Items"])

    assert IP not in stored
    assert "speaker-1" not in stored


# ---------------------------------------------------------------- the venue decision


def test_with_default_settings_500_listeners_behind_one_ip_all_join_within_a_minute(dynamodb_client, management_api):
    # GIVEN default settings, a 500-seat session, and a clock that stays inside one minute
    services = build(dynamodb_client, management_api)
    use_clock(services, FakeClock(time.time() // 60 * 60 + 1))
    _, session_id = create_session(services)

    # WHEN 500 phones behind one church NAT connect and join
    replies = []
    for _ in range(500):
        listener = connect(services, source_ip=IP)
        replies.append(services.sessions.join_session(listener.caller, JoinSessionRequest(session_id, "es")))

    # THEN every one of them is in
    assert [r["type"] for r in replies] == ["sessionJoined"] * 500
    assert services.stores.sessions.get(session_id).listener_count == 500


def test_an_ip_that_keeps_failing_joins_is_slowed_down(services):
    # GIVEN an IP that already failed RATE_LIMIT_FAILED_JOINS_PER_MIN joins on unknown ids this minute
    use_clock(services, FakeClock(time.time() // 60 * 60 + 1))
    for number in range(100, 160):
        guesser = connect(services, source_ip=IP)
        with pytest.raises(SessionNotFoundError):
            services.sessions.join_session(guesser.caller, JoinSessionRequest(f"guess-lamb-{number}", "es"))

    # WHEN it tries once more
    guesser = connect(services, source_ip=IP)
    with pytest.raises(RateLimitExceededError) as raised:
        services.sessions.join_session(guesser.caller, JoinSessionRequest("guess-lamb-160", "es"))

    # THEN it is told to wait until the minute is over, about the id it named
    assert raised.value.retry_after == 59
    assert raised.value.session_id == "guess-lamb-160"


def test_failed_joins_do_not_use_up_the_join_budget(dynamodb_client, management_api):
    # GIVEN an IP allowed 5 joins a minute that failed 10 joins on unknown ids
    services = build(SerializedClient(dynamodb_client), management_api, rate_limit_listener_joins_per_min=5)
    use_clock(services, FakeClock(time.time() // 60 * 60 + 1))
    _, session_id = create_session(services)
    for number in range(100, 110):
        with pytest.raises(SessionNotFoundError):
            services.sessions.join_session(
                connect(services, source_ip=IP).caller, JoinSessionRequest(f"guess-lamb-{number}", "es")
            )

    # WHEN it joins a real session 5 times THEN every join gets in
    for _ in range(5):
        join(services, session_id, source_ip=IP)
    assert services.stores.sessions.get(session_id).listener_count == 5


def test_malformed_session_ids_count_as_failed_joins(services):
    # GIVEN an IP that sent RATE_LIMIT_FAILED_JOINS_PER_MIN malformed session ids this minute
    use_clock(services, FakeClock(time.time() // 60 * 60 + 1))
    for _ in range(60):
        guesser = connect(services, source_ip=IP)
        with pytest.raises(InvalidSessionIdError):
            services.sessions.parse_join(guesser.caller, {"sessionId": "not an id", "targetLanguage": "es"})

    # WHEN it joins with a well-formed id THEN it is rate limited
    guesser = connect(services, source_ip=IP)
    request = services.sessions.parse_join(guesser.caller, {"sessionId": "holy-lamb-123", "targetLanguage": "es"})
    with pytest.raises(RateLimitExceededError):
        services.sessions.join_session(guesser.caller, request)


def test_failed_joins_from_one_ip_do_not_slow_down_another(services):
    use_clock(services, FakeClock(time.time() // 60 * 60 + 1))
    _, session_id = create_session(services)
    for _ in range(60):
        with pytest.raises(InvalidSessionIdError):
            services.sessions.parse_join(
                connect(services, source_ip=IP).caller, {"sessionId": "x", "targetLanguage": "es"}
            )

    listener = join(services, session_id, source_ip="198.51.100.99")

    assert services.stores.connections.get(listener.connection_id).session_id == session_id


class RateLimitsDown:
    """DynamoDB whose RateLimits table answers every write with ``code`` (the others work)."""

    def __init__(self, client, code: str, status: int) -> None:
        self._client = client
        self._error = ClientError(
            {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "UpdateItem"
        )

    def update_item(self, **kwargs):
        if kwargs.get("TableName") == "RateLimitsTable":
            raise self._error
        return self._client.update_item(**kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


@pytest.mark.parametrize(
    ("code", "status"), [("ProvisionedThroughputExceededException", 400), ("InternalServerError", 500)]
)
def test_when_the_rate_limit_table_is_down_requests_are_allowed_and_a_warning_logged(
    dynamodb_client, management_api, logs, code, status
):
    # GIVEN a RateLimits table that is throttled or failing (an outage, not our bug)
    services = build(SerializedClient(RateLimitsDown(dynamodb_client, code, status)), management_api)
    _, session_id = create_session(services)

    # WHEN a listener connects and joins
    listener = join(services, session_id)

    # THEN it got in, and the skipped limiting was logged as a warning
    assert services.stores.connections.get(listener.connection_id).session_id == session_id
    assert "rate limits unavailable; limiting skipped" in logs.messages("WARNING")


@pytest.mark.parametrize(("code", "status"), [("AccessDeniedException", 400), ("ResourceNotFoundException", 400)])
def test_a_rate_limit_table_the_function_may_not_use_is_an_error_not_an_open_door(
    dynamodb_client, management_api, logs, code, status
):
    # GIVEN a RateLimits table the function has no permission for, or that does not exist
    services = build(SerializedClient(RateLimitsDown(dynamodb_client, code, status)), management_api)

    # WHEN six connections arrive against a limit of five
    # THEN none gets past the limiter: each is refused as an internal error, logged at ERROR
    for _ in range(6):
        with pytest.raises(MisconfigurationError):
            connect(services)
    assert all(line["errorCode"] == code for line in logs.at("ERROR"))
    assert "rate limits unavailable; limiting skipped" not in logs.messages("WARNING")


# ---------------------------------------------------------------- heartbeats


def _heartbeat_clock(services):
    clock = FakeClock(time.time() // 60 * 60)
    use_clock(services, clock)
    return clock


@pytest.mark.parametrize("intervals", [[25], [35], [30], [25, 35], [35, 25, 25, 31, 29, 35, 27]])
def test_default_heartbeat_limit_lets_an_honest_client_through(services, intervals):
    # GIVEN a connection heartbeating every 30 s +/- 5 s for ten minutes
    clock = _heartbeat_clock(services)
    client = connect(services)
    sent, index = 0, 0

    # WHEN each heartbeat arrives THEN each is acknowledged
    while sent < 24:
        clock.advance(intervals[index % len(intervals)])
        index += 1
        replies = services.connections.heartbeat(client.caller)
        assert replies[0]["type"] == "heartbeatAck"
        sent += 1


def test_the_seventh_heartbeat_within_a_minute_is_refused(services):
    clock = _heartbeat_clock(services)
    client = connect(services)
    for _ in range(6):
        clock.advance(1)
        services.connections.heartbeat(client.caller)

    clock.advance(1)
    with pytest.raises(RateLimitExceededError) as raised:
        services.connections.heartbeat(client.caller)

    assert raised.value.status == 429
    assert raised.value.retry_after == 53


def test_heartbeats_are_accepted_again_in_the_next_minute(services):
    clock = _heartbeat_clock(services)
    client = connect(services)
    for _ in range(6):
        clock.advance(1)
        services.connections.heartbeat(client.caller)

    clock.advance(60)

    assert services.connections.heartbeat(client.caller)[0]["type"] == "heartbeatAck"


def test_a_heartbeat_marks_the_connection_alive(services):
    clock = _heartbeat_clock(services)
    client = connect(services)
    clock.advance(45)

    services.connections.heartbeat(client.caller)

    assert services.stores.connections.get(client.connection_id).last_seen_at == int(clock.now * 1000)


def test_a_heartbeat_from_an_unrecorded_connection_is_still_acknowledged(services):
    _heartbeat_clock(services)
    client = connect(services)
    services.stores.connections.delete(client.connection_id)

    replies = services.connections.heartbeat(client.caller)

    assert [r["type"] for r in replies] == ["heartbeatAck"]


def test_connection_attempts_over_the_limit_are_refused(dynamodb_client, management_api):
    services = build(dynamodb_client, management_api, rate_limit_connection_attempts_per_min=2)
    use_clock(services, FakeClock(time.time() // 60 * 60 + 30))
    connect(services, source_ip=IP)
    connect(services, source_ip=IP)

    with pytest.raises(RateLimitExceededError) as raised:
        connect(services, source_ip=IP)

    assert raised.value.retry_after == 30
