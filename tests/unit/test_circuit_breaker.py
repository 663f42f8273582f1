"""The circuit breaker around DynamoDB, and what clients see when DynamoDB is down
(requirement 21)."""

from __future__ import annotations

import functools

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError

from session_manager import handler as handler_module
from session_manager.errors import MisconfigurationError, ServiceUnavailableError
from session_manager.store import dynamodb as dynamodb_module
from session_manager.store.circuit_breaker import BreakerState, CircuitBreaker
from session_manager.store.dynamodb import ConditionFailedError, DynamoDB
from tests.unit.harness import LambdaContext, build, load_function, websocket_event


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def breaker(clock):
    return CircuitBreaker("test", clock=clock)


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        assert breaker.allow()
        breaker.record_failure()


# ---------------------------------------------------------------- the breaker


def test_four_failures_leave_the_breaker_closed(breaker):
    fail(breaker, 4)

    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()


def test_five_consecutive_failures_open_the_breaker(breaker):
    fail(breaker, 5)

    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()


def test_a_success_resets_the_count_of_consecutive_failures(breaker):
    fail(breaker, 4)
    breaker.record_success()

    fail(breaker, 4)

    assert breaker.state is BreakerState.CLOSED


def test_the_breaker_stays_open_for_30_seconds(breaker, clock):
    fail(breaker, 5)

    clock.now += 29.9

    assert not breaker.allow()


def test_after_30_seconds_the_breaker_lets_one_trial_call_through(breaker, clock):
    fail(breaker, 5)
    clock.now += 30

    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()


def test_a_successful_trial_closes_the_breaker(breaker, clock):
    fail(breaker, 5)
    clock.now += 30
    breaker.allow()

    breaker.record_success()

    assert breaker.state is BreakerState.CLOSED
    assert all(breaker.allow() for _ in range(10))


def test_a_failed_trial_opens_the_breaker_for_another_30_seconds(breaker, clock):
    fail(breaker, 5)
    clock.now += 30
    breaker.allow()

    breaker.record_failure()

    assert breaker.state is BreakerState.OPEN
    clock.now += 29
    assert not breaker.allow()
    clock.now += 1
    assert breaker.allow()


# ---------------------------------------------------------------- around DynamoDB


class CountingClient:
    """A DynamoDB client that counts calls and answers as told."""

    def __init__(self) -> None:
        self.calls = 0
        self.failing = True
        self.error: Exception = EndpointConnectionError(endpoint_url="http://127.0.0.1:9")

    def get_item(self, **kwargs):
        self.calls += 1
        if self.failing:
            raise self.error
        return {}

    transact_write_items = get_item


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, "GetItem")


@pytest.fixture
def breakers_on(clock, monkeypatch):
    """DynamoDB breakers that read the manual clock."""
    monkeypatch.setattr(dynamodb_module, "CircuitBreaker", functools.partial(CircuitBreaker, clock=clock))


def test_dynamodb_failures_surface_as_service_unavailable():
    client = CountingClient()

    with pytest.raises(ServiceUnavailableError) as raised:
        DynamoDB(client).call("get_item", ["Sessions"], TableName="Sessions", Key={})

    assert (raised.value.code, raised.value.status) == ("SERVICE_UNAVAILABLE", 503)


def test_an_open_breaker_refuses_without_calling_dynamodb():
    # GIVEN five calls that failed because DynamoDB is unreachable
    client = CountingClient()
    db = DynamoDB(client)
    for _ in range(5):
        with pytest.raises(ServiceUnavailableError):
            db.call("get_item", ["Sessions"], TableName="Sessions", Key={})

    # WHEN another call is made
    with pytest.raises(ServiceUnavailableError):
        db.call("get_item", ["Sessions"], TableName="Sessions", Key={})

    # THEN DynamoDB was not called again
    assert client.calls == 5


def test_breakers_are_per_table():
    client = CountingClient()
    db = DynamoDB(client)
    for _ in range(5):
        with pytest.raises(ServiceUnavailableError):
            db.call("get_item", ["Sessions"], TableName="Sessions", Key={})
    client.failing = False

    db.call("get_item", ["Connections"], TableName="Connections", Key={})

    assert client.calls == 6


def test_after_30_seconds_a_successful_trial_closes_the_dynamodb_breaker(clock, breakers_on):
    client = CountingClient()
    db = DynamoDB(client)
    for _ in range(5):
        with pytest.raises(ServiceUnavailableError):
            db.call("get_item", ["Sessions"], TableName="Sessions", Key={})
    client.failing = False
    clock.now += 30

    db.call("get_item", ["Sessions"], TableName="Sessions", Key={})
    db.call("get_item", ["Sessions"], TableName="Sessions", Key={})

    assert client.calls == 7


def test_failed_conditions_are_outcomes_not_outages():
    client = CountingClient()
    client.error = client_error("ConditionalCheckFailedException")
    db = DynamoDB(client)

    for _ in range(10):
        with pytest.raises(ConditionFailedError):
            db.call("get_item", ["Sessions"], TableName="Sessions", Key={})

    assert db.breaker("Sessions").state is BreakerState.CLOSED


def test_a_breaker_recovers_after_a_multi_table_call_was_refused_by_another_breaker(clock, breakers_on):
    # GIVEN the Sessions breaker opened at t=0 and the Connections breaker at t=10
    client = CountingClient()
    db = DynamoDB(client)
    for table in ("Sessions", "Connections"):
        for _ in range(5):
            with pytest.raises(ServiceUnavailableError):
                db.call("get_item", [table], TableName=table, Key={})
        clock.now += 10
    client.failing = False

    # AND at t=31 a transaction over both tables was refused (Sessions half-open, Connections open)
    clock.now = 1000.0 + 31
    with pytest.raises(ServiceUnavailableError):
        db.call("transact_write_items", ["Sessions", "Connections"], TransactItems=[])

    # WHEN DynamoDB is healthy and both breakers are past their 30 s
    clock.now = 1000.0 + 45

    # THEN a call on Sessions is let through as its trial, and closes the breaker
    db.call("get_item", ["Sessions"], TableName="Sessions", Key={})
    assert db.breaker("Sessions").state is BreakerState.CLOSED


def test_a_breaker_recovers_after_its_trial_call_got_a_validation_error(clock, breakers_on):
    client = CountingClient()
    db = DynamoDB(client)
    for _ in range(5):
        with pytest.raises(ServiceUnavailableError):
            db.call("get_item", ["Sessions"], TableName="Sessions", Key={})
    clock.now += 30
    client.error = client_error("ValidationException")
    with pytest.raises(MisconfigurationError):
        db.call("get_item", ["Sessions"], TableName="Sessions", Key={})
    client.failing = False

    db.call("get_item", ["Sessions"], TableName="Sessions", Key={})

    assert db.breaker("Sessions").state is BreakerState.CLOSED


# ---------------------------------------------------------------- what clients see


@pytest.fixture
def unreachable_dynamodb(monkeypatch, management_api):
    """Services whose DynamoDB is a closed port on this machine, answered in milliseconds."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client(
        "dynamodb",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        config=Config(connect_timeout=0.2, read_timeout=0.2, retries={"mode": "standard", "max_attempts": 1}),
    )
    services = build(client, management_api)
    monkeypatch.setattr(handler_module, "get_services", lambda: services.services)
    return services


def test_create_session_with_dynamodb_down_is_service_unavailable(unreachable_dynamodb, management_api):
    event = websocket_event(
        "conn-down=", "createSession", {"action": "createSession", "sourceLanguage": "en"}, user_id="speaker-1"
    )

    load_function("create_session").handler(event, LambdaContext())

    (reply,) = management_api.messages_to("conn-down=")
    assert (reply["type"], reply["code"], reply["status"]) == ("error", "SERVICE_UNAVAILABLE", 503)
    assert reply["requestId"] == event["requestContext"]["requestId"]


def test_connect_with_dynamodb_down_is_refused_with_503(unreachable_dynamodb):
    response = load_function("connect").handler(websocket_event("conn-down=", "$connect"), LambdaContext())

    assert response == {"statusCode": 503}


def test_join_session_with_dynamodb_down_is_service_unavailable_about_the_session(unreachable_dynamodb, management_api):
    event = websocket_event(
        "conn-down=", "joinSession", {"action": "joinSession", "sessionId": "holy-lamb-123", "targetLanguage": "es"}
    )

    load_function("join_session").handler(event, LambdaContext())

    (reply,) = management_api.messages_to("conn-down=")
    assert (reply["code"], reply["status"]) == ("SERVICE_UNAVAILABLE", 503)
    assert reply["sessionId"] == "holy-lamb-123"
