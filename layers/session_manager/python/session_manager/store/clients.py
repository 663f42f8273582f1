"""boto3 clients, created once per execution environment and reused by every invocation."""

from __future__ import annotations

import functools

import boto3
from botocore.config import Config

from session_manager.config import get_settings

# botocore's standard retry mode: exponential backoff with jitter, 3 attempts in all, and it
# already knows which errors are transient (throttling, 5xx, connection resets).
# Timeouts keep three attempts well inside the functions' 10 s, so a client always hears
# SERVICE_UNAVAILABLE rather than nothing when DynamoDB hangs.
DYNAMODB_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=1,
    read_timeout=2,
    max_pool_connections=32,
)
# PostToConnection shares an account-wide throttle: give broadcasts a little more patience.
MANAGEMENT_API_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 4},
    connect_timeout=1,
    read_timeout=3,
    max_pool_connections=32,
)


@functools.lru_cache(maxsize=1)
def dynamodb_client():
    return boto3.client("dynamodb", config=DYNAMODB_CONFIG)


@functools.lru_cache(maxsize=4)
def management_api_client(endpoint_url: str | None = None):
    endpoint = endpoint_url or get_settings().management_api_endpoint or None
    return boto3.client("apigatewaymanagementapi", endpoint_url=endpoint, config=MANAGEMENT_API_CONFIG)
