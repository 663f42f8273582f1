"""The Lambda functions with API Gateway-shaped events: every outcome reaches the client as a
JSON message posted to its connection (protocol.md)."""

from __future__ import annotations

import time

import pytest

from session_manager import handler as handler_module
from tests.unit.harness import (
    FakeClock,
    LambdaContext,
    SerializedClient,
    build,
    connect,
    create_session,
    join,
    load_function,
    use_clock,
    websocket_event,
)

ROUTES = {
    "createSession": "create_session",
    "joinSession": "join_session",
    "heartbeat": "heartbeat",
    "refreshConnection": "refresh_connection",
    "getSessionStatus": "get_session_status",
    "endSession": "end_session",
    "leaveSession": "leave_session",
    "$default": "default_route",
    "$connect": "connect",
    "$disconnect": "disconnect",
}
FUNCTIONS = {route: load_function(name) for route, name in ROUTES.items()}


class Gateway:
    """Invokes the functions as API Gateway would, and reads what was posted back."""

    def __init__(self, services, management_api) -> None:
        self.services = services
        self.management_api = management_api

    def send(self, client, route: str, body=None, **event_args) -> list[dict]:
        """Invoke the route for this client; the messages posted to it by this invocation."""
        connection_id = client if isinstance(client, str) else client.connection_id
        if not isinstance(client, str) and "user_id" not in event_args:
            event_args["user_id"] = client.caller.user_id
        if body is None and not route.startswith("$"):
            body = {"action": route}
        before = len(self.management_api.messages_to(connection_id))
        event = websocket_event(connection_id, route, body, **event_args)
        self.last_event = event
        self.last_response = FUNCTIONS[route].handler(event, LambdaContext())
        assert self.last_response == {"statusCode": 200}
        return self.management_api.messages_to(connection_id)[before:]

    def reply(self, client, route: str, body=None, **event_args) -> dict:
        (only,) = self.send(client, route, body, **event_args)
        return only


@pytest.fixture
def gateway(services, management_api, monkeypatch):
    monkeypatch.setattr(handler_module, "get_services", lambda: services.services)
    return Gateway(services, management_api)


def assert_error(reply: dict, request_id: str, code: str, status: int, *, session_id=None, field=None) -> None:
    assert reply["type"] == "error"
    assert (reply["code"], reply["status"], reply["requestId"]) == (code, status, request_id)
    assert isinstance(reply["message"], str)
    assert reply["message"]
    assert isinstance(reply["timestamp"], int)
    assert reply.get("sessionId") == session_id
    if field is None:
        assert "details" not in reply
    else:
        assert reply["details"]["field"] == field
        assert reply["details"]["reason"]


def request_id(gateway: Gateway) -> str:
    return gateway.last_event["requestContext"]["requestId"]


# ---------------------------------------------------------------- createSession


def test_create_session_posts_session_created_to_the_speaker(gateway):
    speaker = connect(gateway.services, user_id="speaker-1")

    reply = gateway.reply(speaker, "createSession", {"action": "createSession", "sourceLanguage": "en"})

    assert reply["type"] == "sessionCreated"
    assert reply["sourceLanguage"] == "en"
    assert reply["qualityTier"] == "standard"
    assert reply["connectionId"] == speaker.connection_id
    assert abs(reply["expiresAt"] - (time.time() + 7200)) < 5
    session = gateway.services.stores.sessions.get(reply["sessionId"])
    assert (session.speaker_connection_id, session.speaker_user_id) == (speaker.connection_id, "speaker-1")


def test_create_session_without_a_token_is_unauthorized(gateway):
    anonymous = connect(gateway.services)

    reply = gateway.reply(anonymous, "createSession", {"action": "createSession", "sourceLanguage": "en"})

    assert_error(reply, request_id(gateway), "UNAUTHORIZED", 401)


@pytest.mark.parametrize("body", [{"action": "createSession"}, {"action": "createSession", "sourceLanguage": "EN"}])
def test_create_session_without_a_token_is_unauthorized_whatever_the_body(gateway, body):
    anonymous = connect(gateway.services)

    reply = gateway.reply(anonymous, "createSession", body)

    assert_error(reply, request_id(gateway), "UNAUTHORIZED", 401)


def test_end_session_from_a_speaker_connection_replaced_by_a_refresh_is_forbidden(gateway, monkeypatch):
    # GIVEN a speaker whose refresh to a new connection lands between its endSession's checks
    speaker = connect(gateway.services, user_id="speaker-1")
    session_id = gateway.reply(speaker, "createSession", {"action": "createSession", "sourceLanguage": "en"})[
        "sessionId"
    ]
    store = gateway.services.stores.sessions
    original_end = store.end

    def refresh_first(*args, **kwargs):
        newer = connect(gateway.services, user_id="speaker-1")
        store.move_speaker(
            session_id, "speaker-1", newer.connection_id, int(time.time() * 1000), 2**31, away_since=None
        )
        return original_end(*args, **kwargs)

    monkeypatch.setattr(store, "end", refresh_first)

    # WHEN the old connection's endSession lands
    reply = gateway.reply(speaker, "endSession")

    # THEN it is told it no longer speaks for the session, which lives on
    assert_error(reply, request_id(gateway), "FORBIDDEN", 403, session_id=session_id)
    assert store.get(session_id).is_active


def test_create_session_without_a_source_language_names_the_field(gateway):
    speaker = connect(gateway.services, user_id="speaker-1")

    reply = gateway.reply(speaker, "createSession")

    assert_error(reply, request_id(gateway), "INVALID_PARAMETERS", 400, field="sourceLanguage")


def test_create_session_with_an_unknown_quality_tier_names_the_field(gateway):
    speaker = connect(gateway.services, user_id="speaker-1")

    reply = gateway.reply(
        speaker, "createSession", {"action": "createSession", "sourceLanguage": "en", "qualityTier": "gold"}
    )

    assert_error(reply, request_id(gateway), "INVALID_PARAMETERS", 400, field="qualityTier")


@pytest.mark.parametrize("language", ["EN", "eng", "e1"])
def test_create_session_with_a_malformed_source_language_is_an_invalid_language(gateway, language):
    speaker = connect(gateway.services, user_id="speaker-1")

    reply = gateway.reply(speaker, "createSession", {"action": "createSession", "sourceLanguage": language})

    assert_error(reply, request_id(gateway), "INVALID_LANGUAGE", 400, field="sourceLanguage")


def test_create_session_with_a_source_language_translate_lacks_is_an_invalid_language(gateway):
    speaker = connect(gateway.services, user_id="speaker-1")

    reply = gateway.reply(speaker, "createSession", {"action": "createSession", "sourceLanguage": "xx"})

    assert_error(reply, request_id(gateway), "INVALID_LANGUAGE", 400, field="sourceLanguage")


def test_a_second_create_session_on_the_same_connection_is_an_invalid_action(gateway):
    speaker = connect(gateway.services, user_id="speaker-1")
    gateway.reply(speaker, "createSession", {"action": "createSession", "sourceLanguage": "en"})

    reply = gateway.reply(speaker, "createSession", {"action": "createSession", "sourceLanguage": "en"})

    assert_error(reply, request_id(gateway), "INVALID_ACTION", 400)


def test_a_failed_create_session_may_be_retried_on_the_same_connection(gateway):
    speaker = connect(gateway.services, user_id="speaker-1")
    gateway.reply(speaker, "createSession", {"action": "createSession", "sourceLanguage": "EN"})

    reply = gateway.reply(speaker, "createSession", {"action": "createSession", "sourceLanguage": "en"})

    assert reply["type"] == "sessionCreated"


# ---------------------------------------------------------------- joinSession


def test_join_session_posts_session_joined_to_the_listener(gateway):
    _, session_id = create_session(gateway.services, source_language="de")
    listener = connect(gateway.services)

    reply = gateway.reply(
        listener, "joinSession", {"action": "joinSession", "sessionId": session_id, "targetLanguage": "es"}
    )

    assert {k: v for k, v in reply.items() if k != "timestamp"} == {
        "type": "sessionJoined",
        "sessionId": session_id,
        "targetLanguage": "es",
        "sourceLanguage": "de",
        "connectionId": listener.connection_id,
    }


def test_join_session_trims_and_lower_cases_the_session_id(gateway):
    _, session_id = create_session(gateway.services)
    listener = connect(gateway.services)

    reply = gateway.reply(
        listener,
        "joinSession",
        {"action": "joinSession", "sessionId": f"  {session_id.upper()} ", "targetLanguage": "es"},
    )

    assert (reply["type"], reply["sessionId"]) == ("sessionJoined", session_id)


def test_join_session_without_a_target_language_names_the_field_and_the_session(gateway):
    listener = connect(gateway.services)

    reply = gateway.reply(listener, "joinSession", {"action": "joinSession", "sessionId": "holy-lamb-123"})

    assert_error(
        reply, request_id(gateway), "INVALID_PARAMETERS", 400, session_id="holy-lamb-123", field="targetLanguage"
    )


def test_join_session_without_a_session_id_names_the_field(gateway):
    listener = connect(gateway.services)

    reply = gateway.reply(listener, "joinSession", {"action": "joinSession", "targetLanguage": "es"})

    assert_error(reply, request_id(gateway), "INVALID_PARAMETERS", 400, field="sessionId")


@pytest.mark.parametrize("language", ["EN", "eng", "e1"])
def test_join_session_with_a_malformed_target_language_is_an_invalid_language(gateway, language):
    _, session_id = create_session(gateway.services)
    listener = connect(gateway.services)

    reply = gateway.reply(
        listener, "joinSession", {"action": "joinSession", "sessionId": session_id, "targetLanguage": language}
    )

    assert_error(reply, request_id(gateway), "INVALID_LANGUAGE", 400, session_id=session_id, field="targetLanguage")


@pytest.mark.parametrize("language", ["sw", "ga"])
def test_join_session_with_a_target_language_lacking_a_neural_voice_is_unsupported(gateway, language):
    _, session_id = create_session(gateway.services)
    listener = connect(gateway.services)

    reply = gateway.reply(
        listener, "joinSession", {"action": "joinSession", "sessionId": session_id, "targetLanguage": language}
    )

    assert_error(reply, request_id(gateway), "UNSUPPORTED_LANGUAGE", 400, session_id=session_id, field="targetLanguage")


def test_join_session_with_a_malformed_session_id_is_an_invalid_session_id(gateway):
    listener = connect(gateway.services)

    reply = gateway.reply(
        listener, "joinSession", {"action": "joinSession", "sessionId": "Hello", "targetLanguage": "es"}
    )

    assert_error(reply, request_id(gateway), "INVALID_SESSION_ID", 400, session_id="hello", field="sessionId")


def test_join_session_of_an_unknown_session_is_session_not_found(gateway):
    listener = connect(gateway.services)

    reply = gateway.reply(
        listener, "joinSession", {"action": "joinSession", "sessionId": "holy-lamb-123", "targetLanguage": "es"}
    )

    assert_error(reply, request_id(gateway), "SESSION_NOT_FOUND", 404, session_id="holy-lamb-123")


def test_join_session_of_a_full_session_is_session_full(dynamodb_client, management_api, monkeypatch):
    services = build(SerializedClient(dynamodb_client), management_api, max_listeners_per_session=1)
    monkeypatch.setattr(handler_module, "get_services", lambda: services.services)
    gateway = Gateway(services, management_api)
    _, session_id = create_session(services)
    join(services, session_id)

    reply = gateway.reply(
        connect(services), "joinSession", {"action": "joinSession", "sessionId": session_id, "targetLanguage": "es"}
    )

    assert_error(reply, request_id(gateway), "SESSION_FULL", 503, session_id=session_id)


def test_join_session_over_the_rate_limit_says_when_to_retry(dynamodb_client, management_api, monkeypatch):
    services = build(SerializedClient(dynamodb_client), management_api, rate_limit_listener_joins_per_min=1)
    use_clock(services, FakeClock(time.time() // 60 * 60 + 20))
    monkeypatch.setattr(handler_module, "get_services", lambda: services.services)
    gateway = Gateway(services, management_api)
    _, session_id = create_session(services)
    join(services, session_id)

    reply = gateway.reply(
        connect(services), "joinSession", {"action": "joinSession", "sessionId": session_id, "targetLanguage": "es"}
    )

    assert_error(reply, request_id(gateway), "RATE_LIMIT_EXCEEDED", 429, session_id=session_id)
    assert reply["retryAfter"] == 40


def test_a_second_join_on_the_same_connection_is_an_invalid_action(gateway):
    _, session_id = create_session(gateway.services)
    listener = join(gateway.services, session_id)

    reply = gateway.reply(
        listener, "joinSession", {"action": "joinSession", "sessionId": session_id, "targetLanguage": "fr"}
    )

    assert_error(reply, request_id(gateway), "INVALID_ACTION", 400, session_id=session_id)


def test_after_leaving_a_connection_may_join_again(gateway):
    _, session_id = create_session(gateway.services)
    listener = join(gateway.services, session_id)
    assert gateway.reply(listener, "leaveSession")["type"] == "sessionLeft"

    reply = gateway.reply(
        listener, "joinSession", {"action": "joinSession", "sessionId": session_id, "targetLanguage": "fr"}
    )

    assert (reply["type"], reply["targetLanguage"]) == ("sessionJoined", "fr")


# ---------------------------------------------------------------- other actions


@pytest.mark.parametrize("frame", ["not json", "[1, 2]", '"hello"', ""])
def test_a_frame_that_is_not_a_json_object_is_an_invalid_action(gateway, frame):
    client = connect(gateway.services)

    reply = gateway.reply(client, "$default", frame)

    assert_error(reply, request_id(gateway), "INVALID_ACTION", 400)


@pytest.mark.parametrize("body", [{"action": "dance"}, {"action": ""}, {"action": 7}, {"sessionId": "holy-lamb-123"}])
def test_an_unknown_action_is_an_invalid_action(gateway, body):
    client = connect(gateway.services)

    reply = gateway.reply(client, "$default", body)

    # A request that named a session gets it back in the error, whatever went wrong (protocol.md).
    assert_error(reply, request_id(gateway), "INVALID_ACTION", 400, session_id=body.get("sessionId"))


@pytest.mark.parametrize("action", ["endSession", "getSessionStatus"])
def test_speaker_actions_from_a_listener_are_forbidden(gateway, action):
    _, session_id = create_session(gateway.services)
    listener = join(gateway.services, session_id)

    reply = gateway.reply(listener, action)

    assert_error(reply, request_id(gateway), "FORBIDDEN", 403)
    assert gateway.services.stores.sessions.get(session_id).is_active


@pytest.mark.parametrize("action", ["endSession", "getSessionStatus"])
def test_speaker_actions_from_a_speaker_without_a_session_are_forbidden(gateway, action):
    speaker = connect(gateway.services, user_id="speaker-1")

    reply = gateway.reply(speaker, action)

    assert_error(reply, request_id(gateway), "FORBIDDEN", 403)


def test_get_session_status_reports_listeners_by_language(gateway):
    speaker, session_id = create_session(gateway.services)
    for language in ("es", "es", "fr"):
        join(gateway.services, session_id, language)

    reply = gateway.reply(speaker, "getSessionStatus")

    assert reply["type"] == "sessionStatus"
    assert (reply["sessionId"], reply["listenerCount"]) == (session_id, 3)
    assert reply["languageDistribution"] == {"es": 2, "fr": 1}
    assert isinstance(reply["sessionDurationSeconds"], int)
    assert reply["sessionDurationSeconds"] >= 0


def test_end_session_tells_the_speaker_and_every_listener(gateway):
    speaker, session_id = create_session(gateway.services)
    listeners = [join(gateway.services, session_id) for _ in range(3)]

    reply = gateway.reply(speaker, "endSession")

    assert (reply["type"], reply["sessionId"], reply["reason"]) == ("sessionEnded", session_id, "speakerEnded")
    for listener in listeners:
        assert gateway.management_api.types_to(listener.connection_id) == ["sessionEnded"]
    assert not gateway.services.stores.sessions.get(session_id).is_active


def test_leave_session_without_a_session_is_an_invalid_action(gateway):
    reply = gateway.reply(connect(gateway.services), "leaveSession")

    assert_error(reply, request_id(gateway), "INVALID_ACTION", 400)


def test_an_unexpected_exception_becomes_an_internal_error_without_internals(gateway, monkeypatch, logs):
    # GIVEN a domain that fails in a way nobody planned for
    def explode(caller, request):
        raise RuntimeError("boom in arn:aws:dynamodb:us-east-1:123456789012:table/SessionsTable")

    monkeypatch.setattr(gateway.services.speaker, "create_session", explode)
    speaker = connect(gateway.services, user_id="speaker-1")

    # WHEN the speaker creates a session
    reply = gateway.reply(speaker, "createSession", {"action": "createSession", "sourceLanguage": "en"})

    # THEN it gets a generic 500 and the stack trace went to the log only
    assert_error(reply, request_id(gateway), "INTERNAL_ERROR", 500)
    assert "boom" not in str(reply)
    assert "SessionsTable" not in str(reply)
    (error,) = logs.at("ERROR")
    assert "RuntimeError" in error["exception"]
    assert error["correlation_id"] == request_id(gateway)


def test_a_reply_to_a_gone_connection_is_dropped_quietly(gateway, logs):
    speaker = connect(gateway.services, user_id="speaker-1")
    gateway.management_api.gone.add(speaker.connection_id)

    posted = gateway.send(speaker, "createSession", {"action": "createSession", "sourceLanguage": "en"})

    assert posted == []
    assert "reply not delivered: connection gone" in logs.messages("INFO")


# ---------------------------------------------------------------- heartbeat


NOW = (int(time.time()) // 60 + 1) * 60 + 30.0


@pytest.fixture
def fixed_clock(gateway):
    clock = FakeClock(NOW)
    use_clock(gateway.services, clock)
    return clock


def _aged(minutes: float) -> int:
    return int(NOW * 1000 - minutes * 60_000)


def test_a_heartbeat_is_acknowledged(gateway, fixed_clock):
    client = connect(gateway.services)

    replies = gateway.send(client, "heartbeat")

    assert [r["type"] for r in replies] == ["heartbeatAck"]


def test_a_listener_heartbeat_at_100_minutes_asks_for_a_refresh(gateway, fixed_clock):
    _, session_id = create_session(gateway.services)
    listener = join(gateway.services, session_id, "fr", connected_at=_aged(100))

    ack, refresh = gateway.send(listener, "heartbeat", connected_at=_aged(100))

    assert ack["type"] == "heartbeatAck"
    assert refresh["type"] == "connectionRefreshRequired"
    assert (refresh["sessionId"], refresh["role"], refresh["targetLanguage"]) == (session_id, "listener", "fr")
    assert refresh["message"]


def test_a_speaker_refresh_request_has_no_target_language(gateway, fixed_clock):
    speaker, session_id = create_session(gateway.services)

    _, refresh = gateway.send(speaker, "heartbeat", connected_at=_aged(101))

    assert (refresh["type"], refresh["sessionId"], refresh["role"]) == (
        "connectionRefreshRequired",
        session_id,
        "speaker",
    )
    assert "targetLanguage" not in refresh


def test_a_heartbeat_before_100_minutes_asks_for_nothing_more(gateway, fixed_clock):
    _, session_id = create_session(gateway.services)
    listener = join(gateway.services, session_id)

    replies = gateway.send(listener, "heartbeat", connected_at=_aged(99.9))

    assert [r["type"] for r in replies] == ["heartbeatAck"]


@pytest.mark.parametrize(("minutes", "remaining"), [(105, 15), (110.5, 9), (118, 2), (119.99, 0), (120, 0), (125, 0)])
def test_a_heartbeat_from_105_minutes_warns_with_the_whole_minutes_left(gateway, fixed_clock, minutes, remaining):
    _, session_id = create_session(gateway.services)
    listener = join(gateway.services, session_id)

    replies = gateway.send(listener, "heartbeat", connected_at=_aged(minutes))

    assert [r["type"] for r in replies] == ["heartbeatAck", "connectionRefreshRequired", "connectionWarning"]
    warning = replies[2]
    assert warning["remainingMinutes"] == remaining
    assert isinstance(warning["remainingMinutes"], int)
    assert warning["message"]


def test_the_seventh_heartbeat_in_a_minute_is_a_rate_limit_error(gateway, fixed_clock):
    client = connect(gateway.services)
    for _ in range(6):
        gateway.send(client, "heartbeat")

    reply = gateway.reply(client, "heartbeat")

    assert_error(reply, request_id(gateway), "RATE_LIMIT_EXCEEDED", 429)
    assert reply["retryAfter"] == 30


# ---------------------------------------------------------------- $connect / $disconnect


def test_connect_records_the_connection(gateway):
    event = websocket_event("conn-new=", "$connect", user_id="speaker-1")

    response = FUNCTIONS["$connect"].handler(event, LambdaContext())

    assert response == {"statusCode": 200}
    connection = gateway.services.stores.connections.get("conn-new=")
    assert (connection.user_id, connection.session_id) == ("speaker-1", None)


def test_connect_over_the_attempt_limit_is_refused_with_429(dynamodb_client, management_api, monkeypatch):
    services = build(dynamodb_client, management_api, rate_limit_connection_attempts_per_min=1)
    use_clock(services, FakeClock(time.time() // 60 * 60 + 1))
    monkeypatch.setattr(handler_module, "get_services", lambda: services.services)
    FUNCTIONS["$connect"].handler(websocket_event("conn-a=", "$connect"), LambdaContext())

    response = FUNCTIONS["$connect"].handler(websocket_event("conn-b=", "$connect"), LambdaContext())

    assert response == {"statusCode": 429}
    assert services.stores.connections.get("conn-b=") is None


def test_connect_sends_nothing(gateway):
    FUNCTIONS["$connect"].handler(websocket_event("conn-quiet=", "$connect"), LambdaContext())

    assert gateway.management_api.posts == []


def test_disconnect_of_a_listener_frees_its_seat(gateway):
    _, session_id = create_session(gateway.services)
    listener = join(gateway.services, session_id)

    response = FUNCTIONS["$disconnect"].handler(websocket_event(listener.connection_id, "$disconnect"), LambdaContext())

    assert response == {"statusCode": 200}
    assert gateway.services.stores.sessions.get(session_id).listener_count == 0
    assert gateway.services.stores.connections.get(listener.connection_id) is None


def test_the_sweeper_function_returns_its_report(gateway):
    report = load_function("sweeper").handler({"source": "aws.events"}, LambdaContext())

    assert report["ended_expired"] == 0
    assert report["errors"] == []
