"""boto3 clients, created once per execution environment and reused by every invocation."""

from __future__ import annotations

import functools

import boto3
from botocore.config import Config

from session_manager.config import get_settings

# botocore's standard retry mode: exponential backoff with jitter, 3 attempts in all
# (requirement 21; `total_max_attempts` counts the first attempt, botocore's `max_attempts` does
# not), and it already knows which errors are transient (throttling, 5xx, connection resets).
# The budget per request, with backoff, is about 6 s for the session tables and 1.5 s for
# RateLimits (limiting fails open, so it must fail fast): a join asks both one after the other
# and still answers SERVICE_UNAVAILABLE inside the function's 10 s when DynamoDB hangs, instead
# of the gateway's "Internal server error" (docs/decisions.md, 56).
DYNAMODB_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 3},
    connect_timeout=1,
    read_timeout=1,
    max_pool_connections=32,
)
RATE_LIMITS_DYNAMODB_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 1},
    connect_timeout=0.5,
    read_timeout=1,
    max_pool_connections=32,
)
# PostToConnection shares an account-wide throttle. 3 attempts (at most 1 + 2 s of backoff) keep
# one post short, so a caller's reply and a fan-out both fit their function's timeout; a fan-out
# posts what still failed again in later rounds, within a budget (session_manager/delivery.py).
# (`max_attempts=4` was 5 attempts and up to 15 s of backoff for a single post.)
# No client-side parameter validation: every post is built by the messenger (an id from our own
# tables, bytes it encoded), and validating it was about a fifth of a post's CPU in a fan-out
# (benchmarks/post_cost.py, docs/benchmarks.md); a malformed request is still refused, by the
# service, and reported like any other 4xx. The pool holds one connection per fan-out thread
# (config.broadcast_concurrency, 16) with room for the caller's own reply.
MANAGEMENT_API_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 3},
    connect_timeout=1,
    read_timeout=3,
    max_pool_connections=32,
    parameter_validation=False,
)


@functools.lru_cache(maxsize=1)
def dynamodb_client():
    return boto3.client("dynamodb", config=DYNAMODB_CONFIG)


@functools.lru_cache(maxsize=1)
def rate_limits_dynamodb_client():
    # The same region and endpoint as the session tables' client, by construction.
    main = dynamodb_client()
    return boto3.client(
        "dynamodb",
        region_name=main.meta.region_name,
        endpoint_url=main.meta.endpoint_url,
        config=RATE_LIMITS_DYNAMODB_CONFIG,
    )


@functools.lru_cache(maxsize=4)
def management_api_client(endpoint_url: str | None = None):
    endpoint = endpoint_url or get_settings().management_api_endpoint or None
    return boto3.client("apigatewaymanagementapi", endpoint_url=endpoint, config=MANAGEMENT_API_CONFIG)
