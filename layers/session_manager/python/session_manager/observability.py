"""Logger, Metrics and tracing, set up once; and how user context is made safe to log."""

from __future__ import annotations

import hashlib
import ipaddress
import os
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "session-manager")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "LiveTranslation/local")

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)


def tracing_enabled() -> bool:
    """Powertools' own rule (on in Lambda, off under SAM local, Chalice or POWERTOOLS_TRACE_DISABLED),
    read without building a Tracer; its module imports the X-Ray SDK only lazily. A Powertools
    upgrade that renames it fails tests/monitoring/test_tracing.py."""
    from aws_lambda_powertools.tracing.tracer import Tracer

    return not Tracer._is_tracer_disabled()


def traced(handler: Callable[..., Any]) -> Callable[..., Any]:
    """The handler inside an X-Ray segment when tracing is on. Powertools' Tracer imports the X-Ray
    SDK even when disabled, and that import builds a botocore client of its own (about 190 ms of
    init on the local stack's cold starts), so with tracing off it is not created at all."""
    if not tracing_enabled():
        return handler
    from aws_lambda_powertools import Tracer

    return Tracer(service=SERVICE).capture_lambda_handler(handler, capture_response=False)


def fingerprint(value: str | None) -> str | None:
    """A short stable digest, so logs can correlate a connection id or an IP without holding it."""
    if not value:
        return None
    return hashlib.sha256(value.encode()).hexdigest()[:12]


def masked_ip(ip: str | None) -> str | None:
    """The network of an address only (/24 for IPv4, /64 for IPv6), never the host."""
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    prefix = 24 if address.version == 4 else 64
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))
