"""Logger, Metrics and Tracer, set up once; and how user context is made safe to log."""

from __future__ import annotations

import hashlib
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
    """The network part of an address only (a.b.c.0 / first four IPv6 groups)."""
    if not ip:
        return None
    if ":" in ip:
        return ":".join(ip.split(":")[:4]) + "::/64"
    parts = ip.split(".")
    return ".".join([*parts[:3], "0"]) + "/24" if len(parts) == 4 else None
