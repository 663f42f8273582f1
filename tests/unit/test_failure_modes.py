"""How the store reads DynamoDB's answers under real-world trouble that moto never produces:
transaction conflicts, throttled transactions, missing permissions; and how ending a session
tells each listener once, even with a stale listener index."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from session_manager.config import Settings
from session_manager.errors import MisconfigurationError, ServiceUnavailableError
from session_manager.observability import masked_ip
from session_manager.outcomes import Refusal, Written
from session_manager.protocol import EndReason, JoinSessionRequest
from session_manager.store.dynamodb import DynamoDB
from tests.unit.harness import SerializedClient, build, connect, connection_item, create_session, join, session_item


def client_error(code: str, operation: str, reasons: list[str] | None = None) -> ClientError:
    response = {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": 400}}
    if reasons is not None:
        response["CancellationReasons"] = [{"Code": reason} for reason in reasons]
    return ClientError(response, operation)


class Failing:
    """A DynamoDB client that answers the first `times` calls of `operation` with `error`."""

    def __init__(self, client, operation: str, error: ClientError, times: int = 1) -> None:
        self._client = client
        self.operation = operation
        self.error = error
        self.remaining = times
        self.calls = 0

    def __getattr__(self, name):
        method = getattr(self._client, name)
        if name != self.operation:
            return method

        def failing(**kwargs):
            self.calls += 1
            if self.remaining > 0:
                self.remaining -= 1
                raise self.error
            return method(**kwargs)

        return failing


def test_a_single_item_write_that_meets_a_running_transaction_is_retried(dynamodb_client, management_api):
    # GIVEN a live session, and DynamoDB refusing the first end() because a join's transaction holds the item
    services = build(SerializedClient(dynamodb_client), management_api)
    _, session_id = create_session(services)
    failing = Failing(dynamodb_client, "update_item", client_error("TransactionConflictException", "UpdateItem"))
    store = build(failing, management_api).stores.sessions

    # WHEN the speaker's disconnect ends it
    ended = store.end(session_id, EndReason.SPEAKER_DISCONNECTED, 1)

    # THEN the write was retried and the session ended
    assert isinstance(ended, Written) and failing.calls == 2
    assert session_item(dynamodb_client, session_id)["isActive"] is False


def test_a_transaction_cancelled_by_throttling_is_unavailable_not_a_refusal(dynamodb_client, management_api):
    # GIVEN a join whose transaction is cancelled because an item was throttled
    services = build(SerializedClient(dynamodb_client), management_api)
    _, session_id = create_session(services)
    throttled = client_error("TransactionCanceledException", "TransactWriteItems", ["ThrottlingError", "None"])
    failing = Failing(dynamodb_client, "transact_write_items", throttled, times=10)
    flaky = build(failing, management_api)
    listener = connect(flaky)

    # WHEN the listener joins
    # THEN it is told the service is unavailable, not that its connection already holds a role
    with pytest.raises(ServiceUnavailableError):
        flaky.sessions.join_session(listener.caller, JoinSessionRequest(session_id, "es"))
    assert session_item(dynamodb_client, session_id)["listenerCount"] == 0


def test_a_missing_permission_is_logged_as_an_error_not_hidden_as_an_outage(dynamodb_client, management_api, logs):
    denied = Failing(dynamodb_client, "update_item", client_error("AccessDeniedException", "UpdateItem"), times=99)
    database = DynamoDB(denied)

    with pytest.raises(MisconfigurationError) as raised:
        database.call("update_item", ["RateLimitsTable"], TableName="RateLimitsTable", Key={})

    assert not isinstance(raised.value, ServiceUnavailableError)
    assert raised.value.code == "INTERNAL_ERROR"

    (error,) = logs.at("ERROR")
    assert error["errorCode"] == "AccessDeniedException"
    assert database.breaker("RateLimitsTable").state.value == "closed"


def test_ending_a_session_leaves_a_listener_that_moved_on_to_another_session_alone(services, management_api):
    # GIVEN a listener of session A that left and joined session B, while A's index still lists it
    speaker_a, session_a = create_session(services, user_id="speaker-a")
    _, session_b = create_session(services, user_id="speaker-b")
    listener = join(services, session_a)
    services.sessions.leave_session(listener.caller)
    services.sessions.join_session(listener.caller, JoinSessionRequest(session_b, "fr"))
    stale_index = [(listener.connection_id, "es")]
    services.stores.connections.listeners_of = lambda session_id: iter(stale_index)

    # WHEN session A ends
    services.connections.disconnect(speaker_a.connection_id)

    # THEN the listener is neither told nor taken out of session B
    assert "sessionEnded" not in management_api.types_to(listener.connection_id)
    assert services.stores.connections.get(listener.connection_id).session_id == session_b


def test_a_listener_told_that_its_session_ended_can_join_another_at_once(services, management_api):
    speaker, first = create_session(services, user_id="speaker-a")
    _, second = create_session(services, user_id="speaker-b")
    listener = join(services, first)
    services.connections.disconnect(speaker.connection_id)

    reply = services.sessions.join_session(listener.caller, JoinSessionRequest(second, "es"))

    assert reply["type"] == "sessionJoined"


def test_a_leave_racing_the_same_connections_disconnect_leaves_no_item_behind(services, dynamodb_client):
    # GIVEN a listener whose leaveSession landed just before its $disconnect was handled
    _, session_id = create_session(services)
    listener = join(services, session_id)
    seen_by_disconnect = services.stores.connections.get(listener.connection_id)
    services.sessions.leave_session(listener.caller)
    stale_answer = Refusal(connection_failed=True, connection=seen_by_disconnect)
    services.stores.connections.delete_if_idle = lambda connection_id: stale_answer

    # WHEN the disconnect runs on what it read before the leave
    outcome = services.connections.disconnect(listener.connection_id)

    # THEN the seat was released once and the closed connection's item is gone
    assert outcome == "duplicate"
    assert connection_item(dynamodb_client, listener.connection_id) is None
    assert session_item(dynamodb_client, session_id)["listenerCount"] == 0


@pytest.mark.parametrize(
    ("address", "network"),
    [("203.0.113.7", "203.0.113.0/24"), ("2001:db8::abcd:1234", "2001:db8::/64"), ("not an ip", None)],
)
def test_logged_addresses_keep_only_the_network(address, network):
    assert masked_ip(address) == network


def test_the_issuer_follows_the_user_pools_own_region():
    settings = Settings(user_pool_id="eu-west-1_AbCdEf", region="us-east-1")

    assert settings.issuer == "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf"


def test_what_a_user_typed_never_reaches_the_logs(services, management_api, logs, monkeypatch):
    from session_manager import handler as handler_module
    from tests.unit.harness import LambdaContext, load_function, websocket_event

    monkeypatch.setattr(handler_module, "get_services", lambda: services.services)
    join_function = load_function("join_session")
    typed = "  Maria.Gonzalez@example.org "
    event = websocket_event(
        "conn-typed=", "joinSession", {"action": "joinSession", "sessionId": typed, "targetLanguage": "es"}
    )

    join_function.handler(event, LambdaContext())

    assert "maria" not in logs.text.lower()
    (reply,) = management_api.messages_to("conn-typed=")
    assert reply["code"] == "INVALID_SESSION_ID"
    assert json.dumps(reply)  # the client, and only the client, sees what it typed
