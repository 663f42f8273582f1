"""boto3 clients, created once per execution environment and reused by every invocation."""

from __future__ import annotations

import functools
import platform

import boto3
import botocore
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
# A fan-out is botocore's per-request CPU times the listeners (docs/benchmarks.md, "Where the time
# went"), so the posting client drops two per-request costs that change nothing on the wire that
# API Gateway acts on:
# - client-side parameter validation: every post is built by the messenger (an id from our own
#   tables, bytes it encoded); a malformed one is still refused, by the service, as a 4xx;
# - the User-Agent rebuilt for every request (botocore adds the features the request used, which
#   only AWS's SDK telemetry reads): a fixed one, set once, was about a third of botocore's own
#   work per post (benchmarks/post_cost.py).
# The pool holds one connection per fan-out thread (config.broadcast_concurrency, 16) with room
# for the caller's own reply.
FIXED_USER_AGENT = (
    f"Boto3/{boto3.__version__} Botocore/{botocore.__version__} Python/{platform.python_version()}"
    " session-manager/fan-out"
)
MANAGEMENT_API_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 3},
    connect_timeout=1,
    read_timeout=3,
    max_pool_connections=32,
    parameter_validation=False,
    user_agent=FIXED_USER_AGENT,
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
