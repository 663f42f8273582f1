"""A missing permission is an error, never an outage: with every RateLimits request denied (as
when a function's policy lost the table), the limiter refuses instead of failing open, and the
misconfiguration is counted for its alarm."""

from __future__ import annotations

import json

import boto3
from botocore.awsrequest import AWSResponse

from tests.monitoring.test_metrics import SERVICE, only


def deny_rate_limits(params, **kwargs):
    body = params.get("body") or b""
    text = body.decode() if isinstance(body, bytes) else str(body)
    if "RateLimitsTable" not in text:
        return None
    message = "User is not authorized to perform: dynamodb:UpdateItem on resource: RateLimitsTable"
    return AWSResponse("https://dynamodb", 400, {}, None), {
        "Error": {"Code": "AccessDeniedException", "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": 400},
    }


def test_without_rate_limit_permissions_no_handshake_is_admitted(stack, monkeypatch):
    monkeypatch.setenv("RATE_LIMIT_CONNECTION_ATTEMPTS_PER_MIN", "5")
    session = boto3._get_default_session()
    for operation in ("UpdateItem", "GetItem", "PutItem", "TransactWriteItems"):
        session.events.register(f"before-call.dynamodb.{operation}", deny_rate_limits)
    from session_manager.config import get_settings
    from session_manager.services import get_services

    get_settings.cache_clear()
    get_services.cache_clear()

    answers = [stack.send("connect", f"c{n}=", "$connect")["statusCode"] for n in range(6)]
    assert answers == [500] * 6  # refused, not admitted past the limit of 5
    assert only(stack.metrics_of_last(), "MisconfigurationErrors", SERVICE).total == 1
    items = boto3.client("dynamodb", region_name="us-east-1").scan(TableName="ConnectionsTable")["Items"]
    assert items == [], json.dumps(items)
