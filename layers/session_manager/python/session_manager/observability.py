"""Logger, Metrics and Tracer, set up once; and how user context is made safe to log."""

from __future__ import annotations

import hashlib
import ipaddress
import os

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "session-manager")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "LiveTranslation/local")

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
tracer = Tracer(service=SERVICE)


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
