"""Builds the real domain over moto tables with a recording @connections API, and makes
API Gateway-shaped events for the handlers."""

from __future__ import annotations

import importlib.util
import itertools
import json
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from session_manager.caller import Caller
from session_manager.config import Settings
from session_manager.languages import NEURAL_VOICE_SNAPSHOT, TRANSLATE_SNAPSHOT, LanguageCatalog
from session_manager.protocol import (
    CreateSessionRequest,
    JoinSessionRequest,
    QualityTier,
    RefreshConnectionRequest,
    Role,
)
from session_manager.services import Services
from session_manager.store.dynamodb import from_item

_ids = itertools.count(1)


class SnapshotLanguages(LanguageCatalog):
    """The shipped snapshots, without asking AWS."""

    def _discover_translate(self):
        return TRANSLATE_SNAPSHOT

    def _discover_neural_voices(self):
        return NEURAL_VOICE_SNAPSHOT


def settings(**overrides: Any) -> Settings:
    base = Settings(
        rate_limit_key_secret="unit-test-secret",
        # The lifecycle tests pin the speaker-leaves-ends-the-session behaviour; the reconnect
        # grace has its own tests, which set it.
        speaker_reconnect_grace_seconds=0.0,
        sessions_table="SessionsTable",
        connections_table="ConnectionsTable",
        rate_limits_table="RateLimitsTable",
        management_api_endpoint="http://127.0.0.1:1/dev",
        user_pool_id="us-east-1_test",
        user_pool_client_id="client",
    )
    return replace(base, **overrides)


class SettableClock:
    """The services' one clock; tests point it at a FakeClock with use_clock()."""

    def __init__(self) -> None:
        self.source = time.time

    def time(self) -> float:
        return self.source()


class Acting:
    """Calls the domain the way the Lambda handlers do: the decision's replies are returned
    (the first, or all of them for heartbeats) and its notices carried out."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def _done(self, decision, *, all_replies: bool = False):
        self._services.delivery.carry_out(decision.notices)
        return list(decision.replies) if all_replies else decision.first

    def create_session(self, caller: Caller, request: CreateSessionRequest):
        return self._done(self._services.speaker.create_session(caller, request))

    def session_status(self, caller: Caller):
        return self._done(self._services.speaker.session_status(caller))

    def end_session(self, caller: Caller):
        return self._done(self._services.speaker.end_session(caller))

    def parse_join(self, caller: Caller, body: dict[str, Any]) -> JoinSessionRequest:
        return self._services.listener.parse_join(caller, body)

    def join_session(self, caller: Caller, request: JoinSessionRequest):
        return self._done(self._services.listener.join_session(caller, request))

    def leave_session(self, caller: Caller):
        return self._done(self._services.listener.leave_session(caller))

    def refresh_connection(self, caller: Caller, request: RefreshConnectionRequest):
        acting = self._services.speaker if request.role is Role.SPEAKER else self._services.listener
        return self._done(acting.refresh_connection(caller, request))

    def connect(self, caller: Caller) -> None:
        self._services.connections.connect(caller)

    def heartbeat(self, caller: Caller):
        return self._done(self._services.connections.heartbeat(caller), all_replies=True)

    def disconnect(self, connection_id: str) -> str:
        outcome = self._services.connections.disconnect(connection_id)
        self._services.delivery.carry_out(outcome.notices)
        return outcome.what

    def sweep(self):
        sweep = self._services.sweeper.sweep()
        self._services.delivery.carry_out(sweep.notices)
        return sweep.report


@dataclass
class World:
    """The real domain over real adapters, as the tests drive it."""

    services: Services
    clock: SettableClock

    def __post_init__(self) -> None:
        acting = Acting(self.services)
        self.sessions = acting
        self.connections = acting
        self.sweeper = acting
        self.stores = self.services.stores
        self.settings = self.services.settings
        self.delivery = self.services.delivery
        self.speaker = self.services.speaker
        self.listener = self.services.listener


def build(dynamodb_client, management_api, **overrides: Any) -> World:
    clock = SettableClock()
    services = Services.build(
        settings(**overrides),
        dynamodb_client=dynamodb_client,
        management_client=management_api,
        bulk_poster=management_api,
        languages=SnapshotLanguages(),
        clock=clock,
        translator=MarkingTranslator(),
    )
    return World(services, clock)


class MarkingTranslator:
    """Amazon Translate is not on moto: the text marked with its target language."""

    def translate(self, text, source_language, target_languages):
        return {target: f"[{target}] {text}" for target in target_languages}


@dataclass
class Client:
    """One WebSocket connection as the domain sees it."""

    services: Services
    caller: Caller

    @property
    def connection_id(self) -> str:
        return self.caller.connection_id


def connect(
    services: Services,
    *,
    user_id: str | None = None,
    source_ip: str = "203.0.113.7",
    connected_at: int | None = None,
) -> Client:
    caller = Caller(
        connection_id=f"conn-{next(_ids)}=",
        request_id=f"req-{next(_ids)}",
        source_ip=source_ip,
        connected_at=connected_at if connected_at is not None else int(time.time() * 1000),
        role=Role.SPEAKER if user_id else Role.LISTENER,
        user_id=user_id,
    )
    services.connections.connect(caller)
    return Client(services, caller)


def websocket_event(
    connection_id: str,
    route_key: str,
    body: dict[str, Any] | str | None = None,
    *,
    user_id: str | None = None,
    connected_at: int | None = None,
    source_ip: str = "203.0.113.7",
) -> dict[str, Any]:
    event_type = {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route_key, "MESSAGE")
    authorizer = {"principalId": user_id or "anonymous", "role": "speaker" if user_id else "listener"}
    if user_id:
        authorizer["userId"] = user_id
    event: dict[str, Any] = {
        "requestContext": {
            "routeKey": route_key,
            "eventType": event_type,
            "connectionId": connection_id,
            "connectedAt": connected_at or int(time.time() * 1000),
            "requestId": f"req-{next(_ids)}",
            "messageId": f"msg-{next(_ids)}",
            "requestTimeEpoch": int(time.time() * 1000),
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "stage": "dev",
            "apiId": "abc123",
            "identity": {"sourceIp": source_ip, "userAgent": "pytest"},
            "authorizer": authorizer,
        },
        "isBase64Encoded": False,
    }
    if body is not None:
        event["body"] = body if isinstance(body, str) else json.dumps(body)
    return event


# ---------------------------------------------------------------- added for the unit suite


class SerializedClient:
    """Runs each DynamoDB API call alone, as DynamoDB applies one request (a transaction
    included) atomically. moto's in-process backend does not: its transact_write_items checks,
    writes and rolls back whole-table deep copies without a lock, so threads racing on it lose
    writes (30 threads joining a 20-seat session: 21 'successes' but a count of 20). Threads still
    interleave between calls, which is where the domain's races live."""

    def __init__(self, client) -> None:
        self._client = client
        self._lock = threading.Lock()

    def __getattr__(self, name: str):
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args, **kwargs):
            with self._lock:
                return attribute(*args, **kwargs)

        return call


class FakeClock:
    """A controllable time.time()."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def use_clock(world: World, clock) -> None:
    """Make the services' one clock read time from `clock`."""
    world.clock.source = clock


def run_in_threads(target, arguments: list[Any]) -> list[Any]:
    """Call target(argument) for each argument, all threads started together; the results (or
    the exceptions raised) in argument order."""
    results: list[Any] = [None] * len(arguments)
    barrier = threading.Barrier(len(arguments))

    def run(index: int, argument: Any) -> None:
        barrier.wait()
        try:
            results[index] = target(argument)
        except Exception as error:  # reported to the test
            results[index] = error

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(arguments)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def create_session(
    services: Services,
    *,
    user_id: str = "speaker-1",
    source_language: str = "en",
) -> tuple[Client, str]:
    """A connected speaker and the id of the session it created."""
    speaker = connect(services, user_id=user_id)
    reply = services.sessions.create_session(
        speaker.caller, CreateSessionRequest(source_language, QualityTier.STANDARD)
    )
    return speaker, reply["sessionId"]


def join(services: Services, session_id: str, target_language: str = "es", **connect_args: Any) -> Client:
    """A connected listener that joined the session."""
    listener = connect(services, **connect_args)
    services.sessions.join_session(listener.caller, JoinSessionRequest(session_id, target_language))
    return listener


def session_item(dynamodb_client, session_id: str) -> dict[str, Any] | None:
    response = dynamodb_client.get_item(TableName="SessionsTable", Key={"sessionId": {"S": session_id}})
    return from_item(response.get("Item"))


def connection_item(dynamodb_client, connection_id: str) -> dict[str, Any] | None:
    response = dynamodb_client.get_item(TableName="ConnectionsTable", Key={"connectionId": {"S": connection_id}})
    return from_item(response.get("Item"))


def set_listener_count(dynamodb_client, session_id: str, count: int) -> None:
    dynamodb_client.update_item(
        TableName="SessionsTable",
        Key={"sessionId": {"S": session_id}},
        UpdateExpression="SET listenerCount = :count",
        ExpressionAttributeValues={":count": {"N": str(count)}},
    )


class LambdaContext:
    function_name = "test-function"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    aws_request_id = "lambda-request-1"


FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


def load_function(name: str) -> ModuleType:
    """functions/<name>/app.py as a module of its own (every handler file is called app.py)."""
    spec = importlib.util.spec_from_file_location(f"function_{name}", FUNCTIONS / name / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
