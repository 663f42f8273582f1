"""Builds the real domain over moto tables with a recording @connections API, and makes
API Gateway-shaped events for the handlers."""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, replace
from typing import Any

from session_manager.caller import Caller
from session_manager.config import Settings
from session_manager.languages import NEURAL_VOICE_SNAPSHOT, TRANSLATE_SNAPSHOT, LanguageCatalog
from session_manager.protocol import Role
from session_manager.services import Services

_ids = itertools.count(1)


class SnapshotLanguages(LanguageCatalog):
    """The shipped snapshots, without asking AWS."""

    def _discover_translate(self):
        return TRANSLATE_SNAPSHOT

    def _discover_neural_voices(self):
        return NEURAL_VOICE_SNAPSHOT


def settings(**overrides: Any) -> Settings:
    base = Settings(
        sessions_table="SessionsTable",
        connections_table="ConnectionsTable",
        rate_limits_table="RateLimitsTable",
        management_api_endpoint="http://127.0.0.1:1/dev",
        user_pool_id="us-east-1_test",
        user_pool_client_id="client",
    )
    return replace(base, **overrides)


def build(dynamodb_client, management_api, **overrides: Any) -> Services:
    return Services.build(
        settings(**overrides),
        dynamodb_client=dynamodb_client,
        management_client=management_api,
        languages=SnapshotLanguages(),
    )


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
