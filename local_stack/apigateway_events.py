"""The events API Gateway sends to WebSocket integrations and to the REQUEST authorizer, field
for field as AWS shapes them."""

from __future__ import annotations

import base64
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from local_stack.intrinsics import ACCOUNT_ID, REGION

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

CONNECT_ROUTE = "$connect"
DISCONNECT_ROUTE = "$disconnect"
DEFAULT_ROUTE = "$default"


class EventType(StrEnum):
    CONNECT = "CONNECT"
    MESSAGE = "MESSAGE"
    DISCONNECT = "DISCONNECT"


def _gateway_id() -> str:
    """API Gateway's ids: 11 random bytes, URL-safe base64, e.g. "L0SM9cOFvHcCIhw="."""
    return base64.urlsafe_b64encode(os.urandom(11)).decode()


def new_connection_id() -> str:
    return _gateway_id()


def new_request_id() -> str:
    return _gateway_id()


def now_ms() -> int:
    return int(time.time() * 1000)


def request_time(epoch_ms: int) -> str:
    moment = time.gmtime(epoch_ms / 1000)
    return (
        f"{moment.tm_mday:02d}/{_MONTHS[moment.tm_mon - 1]}/{moment.tm_year}:"
        f"{moment.tm_hour:02d}:{moment.tm_min:02d}:{moment.tm_sec:02d} +0000"
    )


@dataclass(frozen=True)
class ApiContext:
    api_id: str
    stage: str
    domain_name: str


@dataclass
class ConnectionInfo:
    """What API Gateway remembers about a connection and repeats on every event."""

    connection_id: str
    connected_at_ms: int
    source_ip: str
    user_agent: str
    authorizer: dict[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


def _request_context(
    api: ApiContext,
    connection: ConnectionInfo,
    *,
    route_key: str,
    event_type: EventType,
    request_id: str,
) -> dict[str, Any]:
    epoch_ms = now_ms()
    context: dict[str, Any] = {
        "routeKey": route_key,
        "eventType": event_type.value,
        "extendedRequestId": request_id,
        "requestTime": request_time(epoch_ms),
        "messageDirection": "IN",
        "stage": api.stage,
        "connectedAt": connection.connected_at_ms,
        "requestTimeEpoch": epoch_ms,
        "identity": {"sourceIp": connection.source_ip, "userAgent": connection.user_agent},
        "requestId": request_id,
        "domainName": api.domain_name,
        "connectionId": connection.connection_id,
        "apiId": api.api_id,
    }
    if connection.authorizer is not None:
        context["authorizer"] = dict(connection.authorizer)
    return context


def _header_fields(headers: Sequence[tuple[str, str]], query: Sequence[tuple[str, str]]) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "headers": {name: value for name, value in headers},
        "multiValueHeaders": _multi_value(headers),
    }
    if query:
        fields["queryStringParameters"] = {name: value for name, value in query}
        fields["multiValueQueryStringParameters"] = _multi_value(query)
    return fields


def _multi_value(pairs: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for name, value in pairs:
        values.setdefault(name, []).append(value)
    return values


def method_arn(api: ApiContext, route_key: str) -> str:
    return f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{api.api_id}/{api.stage}/{route_key}"


def authorizer_event(
    api: ApiContext,
    connection: ConnectionInfo,
    headers: Sequence[tuple[str, str]],
    query: Sequence[tuple[str, str]],
) -> dict[str, Any]:
    request_id = new_request_id()
    return {
        "type": "REQUEST",
        "methodArn": method_arn(api, CONNECT_ROUTE),
        **_header_fields(headers, query),
        "stageVariables": {},
        "requestContext": _request_context(
            api, connection, route_key=CONNECT_ROUTE, event_type=EventType.CONNECT, request_id=request_id
        ),
    }


def connect_event(
    api: ApiContext,
    connection: ConnectionInfo,
    headers: Sequence[tuple[str, str]],
    query: Sequence[tuple[str, str]],
) -> dict[str, Any]:
    return {
        **_header_fields(headers, query),
        "requestContext": _request_context(
            api,
            connection,
            route_key=CONNECT_ROUTE,
            event_type=EventType.CONNECT,
            request_id=new_request_id(),
        ),
        "isBase64Encoded": False,
    }


def message_event(
    api: ApiContext, connection: ConnectionInfo, *, route_key: str, body: str, request_id: str
) -> dict[str, Any]:
    context = _request_context(
        api, connection, route_key=route_key, event_type=EventType.MESSAGE, request_id=request_id
    )
    context["messageId"] = _gateway_id()
    return {"requestContext": context, "body": body, "isBase64Encoded": False}


def disconnect_event(api: ApiContext, connection: ConnectionInfo, *, status_code: int, reason: str) -> dict[str, Any]:
    context = _request_context(
        api,
        connection,
        route_key=DISCONNECT_ROUTE,
        event_type=EventType.DISCONNECT,
        request_id=new_request_id(),
    )
    context["disconnectStatusCode"] = status_code
    context["disconnectReason"] = reason
    host = connection.headers.get("Host", api.domain_name)
    headers = {"Host": host, "X-Forwarded-For": connection.source_ip, "x-api-key": "", "x-restapi": ""}
    return {
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "requestContext": context,
        "isBase64Encoded": False,
    }


def scheduled_event(rule_name: str) -> dict[str, Any]:
    """What EventBridge sends a Lambda target of a schedule rule."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{rule_name}"],
        "detail": {},
    }
