"""The per-stack secret behind rate-limit keys, read from Secrets Manager once per container."""

from __future__ import annotations

import boto3
from botocore.config import Config

SECRETS_CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 3}, connect_timeout=1, read_timeout=2)


def read_secret(secret_arn: str, client=None) -> bytes:
    """The secret's value; any failure propagates: a function that cannot key its rate limits
    must fail its init (the init-failure alarm reports it), never run unlimited."""
    client = client or boto3.client("secretsmanager", config=SECRETS_CONFIG)
    value = client.get_secret_value(SecretId=secret_arn)["SecretString"]
    if not value:
        raise ValueError("the rate-limit key secret is empty")
    return value.encode()
