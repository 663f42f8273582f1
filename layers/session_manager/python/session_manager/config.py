"""One frozen Settings object, read from the environment once and validated."""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields

from session_manager.errors import ConfigurationError


def _positive_number(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw} must be a number") from None
    if not value > 0 or value != value or value == float("inf"):
        raise ConfigurationError(f"{name}={raw} must be a positive finite number")
    return value


def _positive_int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw} must be a whole number") from None
    if value < 1:
        raise ConfigurationError(f"{name}={raw} must be at least 1")
    return value


def _non_negative_number(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw} must be a number") from None
    if not value >= 0 or value == float("inf"):
        raise ConfigurationError(f"{name}={raw} must be zero or a positive finite number")
    return value


def _text(name: str, raw: str) -> str:
    return raw


# A float setting for which zero is meaningful (Settings' parsers are chosen by annotation name).
NonNegativeFloat = float

# Who answers heartbeats (template parameter HeartbeatAnsweredBy, decision 44).
HEARTBEATS_BY_FUNCTION = "function"
HEARTBEATS_BY_GATEWAY = "gateway"
HEARTBEAT_ANSWERERS = (HEARTBEATS_BY_FUNCTION, HEARTBEATS_BY_GATEWAY)


@dataclass(frozen=True)
class Settings:
    """Every knob of docs/configuration.md and docs/protocol.md, with its default.

    Durations accept decimals (``CONNECTION_REFRESH_MINUTES=0.05``) so that refresh, warning and
    timeout paths can be exercised in seconds.
    """

    sessions_table: str = "Sessions"
    connections_table: str = "Connections"
    rate_limits_table: str = "RateLimits"
    management_api_endpoint: str = ""
    user_pool_id: str = ""
    user_pool_client_id: str = ""
    region: str = "us-east-1"
    jwks_url_override: str = ""
    max_listeners_per_session: int = 500
    session_max_duration_hours: float = 2.0
    connection_refresh_minutes: float = 100.0
    connection_warning_minutes: float = 105.0
    connection_max_minutes: float = 120.0
    heartbeat_interval_seconds: float = 30.0
    heartbeat_timeout_seconds: float = 90.0
    rate_limit_sessions_per_hour: int = 50
    rate_limit_listener_joins_per_min: int = 1200
    rate_limit_failed_joins_per_min: int = 60
    rate_limit_connection_attempts_per_min: int = 1200
    rate_limit_heartbeats_per_min: int = 6
    session_id_max_attempts: int = 10
    broadcast_concurrency: int = 16
    # 0 ends a session the moment its speaker's connection goes away (the behaviour before
    # decision 37); otherwise the same user may reclaim it for this long.
    speaker_reconnect_grace_seconds: NonNegativeFloat = 30.0
    # Rate-limit keys are HMACs under this per-stack secret: given directly (local stack), or
    # read once per container from Secrets Manager (deployed stacks).
    rate_limit_key_secret: str = ""
    rate_limit_key_secret_arn: str = ""
    captions_table: str = "Captions"
    caption_history_seconds: int = 120
    captions_per_second: int = 5
    # Above this many listeners of one language, a caption's fan-out goes through the queue.
    caption_queue_threshold: int = 1000
    caption_fanout_queue_url: str = ""
    translate_terminology_names: str = ""
    # "gateway": a MOCK route answers heartbeats, so the sweeper reads liveness from the
    # management API's lastActiveAt and pushes the refresh notices itself.
    heartbeat_answered_by: str = HEARTBEATS_BY_FUNCTION

    @property
    def session_duration_seconds(self) -> int:
        return round(self.session_max_duration_hours * 3600)

    @property
    def heartbeats_answered_by_gateway(self) -> bool:
        return self.heartbeat_answered_by == HEARTBEATS_BY_GATEWAY

    @property
    def connection_ttl_seconds(self) -> int:
        """Connection items outlive their session, and the connection itself, by an hour
        (requirement 6): a short session must not make a live connection's item read as expired."""
        return max(self.session_duration_seconds, round(self.connection_max_minutes * 60)) + 3600

    @property
    def issuer(self) -> str:
        # A pool id starts with its own region ("eu-west-1_AbC"): an existing pool may live in
        # another region than the functions.
        pool_region = self.user_pool_id.split("_", 1)[0] if "_" in self.user_pool_id else self.region
        return f"https://cognito-idp.{pool_region}.amazonaws.com/{self.user_pool_id}"

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        parsers: dict[type | str, Callable[[str, str], object]] = {
            "int": _positive_int,
            "float": _positive_number,
            "str": _text,
            "NonNegativeFloat": _non_negative_number,
        }
        values: dict[str, object] = {}
        for field in fields(cls):
            variable = _ENVIRONMENT_NAMES.get(field.name, field.name.upper())
            raw = environ.get(variable)
            if raw is None or raw == "":
                continue
            values[field.name] = parsers[field.type](variable, raw.strip())
        if "region" not in values:
            region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
            if region:
                values["region"] = region
        settings = cls(**values)
        settings._validate()
        return settings

    def _validate(self) -> None:
        """Each message names the variables, their values and the rule, in one line:
        `HEARTBEAT_TIMEOUT_SECONDS=3 must be above HEARTBEAT_INTERVAL_SECONDS=30`."""
        refresh = f"CONNECTION_REFRESH_MINUTES={_shown(self.connection_refresh_minutes)}"
        warning = f"CONNECTION_WARNING_MINUTES={_shown(self.connection_warning_minutes)}"
        closing = f"CONNECTION_MAX_MINUTES={_shown(self.connection_max_minutes)}"
        interval = f"HEARTBEAT_INTERVAL_SECONDS={_shown(self.heartbeat_interval_seconds)}"
        timeout = f"HEARTBEAT_TIMEOUT_SECONDS={_shown(self.heartbeat_timeout_seconds)}"
        if self.heartbeat_answered_by not in HEARTBEAT_ANSWERERS:
            raise ConfigurationError(
                f"HEARTBEAT_ANSWERED_BY={self.heartbeat_answered_by} must be one of {', '.join(HEARTBEAT_ANSWERERS)}"
            )
        if self.connection_warning_minutes < self.connection_refresh_minutes:
            raise ConfigurationError(f"{warning} must not be below {refresh}")
        if self.connection_max_minutes <= self.connection_warning_minutes:
            raise ConfigurationError(f"{closing} must be above {warning}")
        if self.heartbeat_timeout_seconds <= self.heartbeat_interval_seconds:
            raise ConfigurationError(f"{timeout} must be above {interval}")
        # An honest client heartbeats every interval +/- 5 s; the limit must leave it room.
        honest_per_minute = math.ceil(60 / max(self.heartbeat_interval_seconds - 5, 1) + 1)
        if self.rate_limit_heartbeats_per_min < honest_per_minute:
            raise ConfigurationError(
                f"RATE_LIMIT_HEARTBEATS_PER_MIN={self.rate_limit_heartbeats_per_min} must be at least "
                f"{honest_per_minute}, to let a client heartbeating every {interval} +/- 5 s through"
            )


def _shown(value: float) -> str:
    """A setting's value as it would be written: 30, not 30.0."""
    return str(int(value)) if float(value).is_integer() else repr(value)


_ENVIRONMENT_NAMES = {
    "sessions_table": "SESSIONS_TABLE",
    "connections_table": "CONNECTIONS_TABLE",
    "rate_limits_table": "RATE_LIMITS_TABLE",
    "captions_table": "CAPTIONS_TABLE",
    "region": "AWS_REGION",
    "jwks_url_override": "LOCAL_JWKS_URL",
}


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this execution environment, read on first use."""
    return Settings.from_environment()
