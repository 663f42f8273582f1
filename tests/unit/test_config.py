"""Settings: defaults from requirements.md / protocol.md, and validation naming the variable."""

from __future__ import annotations

import pytest

from session_manager.config import Settings
from session_manager.errors import ConfigurationError


def test_defaults_match_the_requirements_and_the_protocol():
    # GIVEN an environment that sets nothing
    # WHEN the settings are read
    settings = Settings.from_environment({})

    # THEN every knob has the documented default
    assert settings.max_listeners_per_session == 500
    assert settings.session_max_duration_hours == 2.0
    assert settings.connection_refresh_minutes == 100.0
    assert settings.connection_warning_minutes == 105.0
    assert settings.connection_max_minutes == 120.0
    assert settings.heartbeat_interval_seconds == 30.0
    assert settings.heartbeat_timeout_seconds == 90.0
    assert settings.rate_limit_sessions_per_hour == 50
    assert settings.rate_limit_listener_joins_per_min == 1200
    assert settings.rate_limit_failed_joins_per_min == 60
    assert settings.rate_limit_connection_attempts_per_min == 1200
    assert settings.rate_limit_heartbeats_per_min == 6
    assert settings.session_id_max_attempts == 10


def test_session_and_connection_lifetimes_derive_from_the_session_duration():
    settings = Settings.from_environment({})

    assert settings.session_duration_seconds == 7200
    assert settings.connection_ttl_seconds == 7200 + 3600


def test_environment_variables_override_the_defaults():
    settings = Settings.from_environment(
        {
            "SESSIONS_TABLE": "s",
            "CONNECTIONS_TABLE": "c",
            "RATE_LIMITS_TABLE": "r",
            "MAX_LISTENERS_PER_SESSION": "25",
            "RATE_LIMIT_FAILED_JOINS_PER_MIN": "7",
            "USER_POOL_ID": "eu-west-1_pool",
            "AWS_REGION": "eu-west-1",
        }
    )

    assert (settings.sessions_table, settings.connections_table, settings.rate_limits_table) == ("s", "c", "r")
    assert settings.max_listeners_per_session == 25
    assert settings.rate_limit_failed_joins_per_min == 7
    assert settings.issuer == "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_pool"


@pytest.mark.parametrize(
    ("variable", "raw", "attribute", "expected"),
    [
        ("CONNECTION_REFRESH_MINUTES", "0.05", "connection_refresh_minutes", 0.05),
        ("SESSION_MAX_DURATION_HOURS", "0.5", "session_max_duration_hours", 0.5),
        ("CONNECTION_WARNING_MINUTES", "110.5", "connection_warning_minutes", 110.5),
    ],
)
def test_durations_accept_decimals(variable, raw, attribute, expected):
    settings = Settings.from_environment({variable: raw})

    assert getattr(settings, attribute) == expected


def test_decimal_heartbeat_durations_are_accepted_with_a_matching_heartbeat_limit():
    settings = Settings.from_environment(
        {
            "HEARTBEAT_INTERVAL_SECONDS": "0.5",
            "HEARTBEAT_TIMEOUT_SECONDS": "1.5",
            "RATE_LIMIT_HEARTBEATS_PER_MIN": "200",
        }
    )

    assert (settings.heartbeat_interval_seconds, settings.heartbeat_timeout_seconds) == (0.5, 1.5)


def test_a_decimal_session_duration_gives_whole_seconds():
    settings = Settings.from_environment({"SESSION_MAX_DURATION_HOURS": "0.01"})

    assert settings.session_duration_seconds == 36


def test_a_connection_item_outlives_the_connection_itself_even_for_a_short_session():
    # GIVEN sessions shorter than API Gateway's 120-minute connection lifetime
    settings = Settings.from_environment({"SESSION_MAX_DURATION_HOURS": "0.01"})

    # THEN a connection item still lives an hour past the longest connection
    assert settings.connection_ttl_seconds == 120 * 60 + 3600


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("MAX_LISTENERS_PER_SESSION", "many"),
        ("MAX_LISTENERS_PER_SESSION", "0"),
        ("MAX_LISTENERS_PER_SESSION", "-5"),
        ("MAX_LISTENERS_PER_SESSION", "2.5"),
        ("SESSION_ID_MAX_ATTEMPTS", "ten"),
        ("RATE_LIMIT_SESSIONS_PER_HOUR", "0"),
        ("SESSION_MAX_DURATION_HOURS", "two"),
        ("SESSION_MAX_DURATION_HOURS", "0"),
        ("SESSION_MAX_DURATION_HOURS", "-1"),
        ("SESSION_MAX_DURATION_HOURS", "nan"),
        ("SESSION_MAX_DURATION_HOURS", "inf"),
        ("HEARTBEAT_TIMEOUT_SECONDS", "ninety"),
    ],
)
def test_a_bad_value_raises_a_configuration_error_naming_the_variable(variable, raw):
    with pytest.raises(ConfigurationError, match=variable):
        Settings.from_environment({variable: raw})


@pytest.mark.parametrize("limit", ["1", "2", "3"])
def test_a_heartbeat_limit_below_what_an_honest_client_sends_is_rejected(limit):
    # GIVEN the original 2/min (or less): a client beating every 30 s +/- 5 s sends up to 3 a minute
    # WHEN the settings are read
    # THEN they are refused, naming the variable
    with pytest.raises(ConfigurationError, match="RATE_LIMIT_HEARTBEATS_PER_MIN"):
        Settings.from_environment({"RATE_LIMIT_HEARTBEATS_PER_MIN": limit})


def test_a_heartbeat_limit_with_room_for_jitter_is_accepted():
    settings = Settings.from_environment({"RATE_LIMIT_HEARTBEATS_PER_MIN": "4"})

    assert settings.rate_limit_heartbeats_per_min == 4


def test_a_warning_before_the_refresh_is_rejected():
    with pytest.raises(ConfigurationError, match="CONNECTION_WARNING_MINUTES"):
        Settings.from_environment({"CONNECTION_REFRESH_MINUTES": "100", "CONNECTION_WARNING_MINUTES": "99"})


def test_a_heartbeat_timeout_not_above_the_interval_is_rejected():
    with pytest.raises(ConfigurationError, match="HEARTBEAT_TIMEOUT_SECONDS"):
        Settings.from_environment({"HEARTBEAT_INTERVAL_SECONDS": "30", "HEARTBEAT_TIMEOUT_SECONDS": "30"})


def test_a_connection_close_not_after_the_warning_is_rejected():
    with pytest.raises(ConfigurationError, match="CONNECTION_MAX_MINUTES"):
        Settings.from_environment({"CONNECTION_MAX_MINUTES": "105"})


def test_an_empty_variable_means_the_default():
    settings = Settings.from_environment({"MAX_LISTENERS_PER_SESSION": ""})

    assert settings.max_listeners_per_session == 500


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"MAX_LISTENERS_PER_SESSION": "-5"}, "MAX_LISTENERS_PER_SESSION=-5 must be at least 1"),
        ({"MAX_LISTENERS_PER_SESSION": "many"}, "MAX_LISTENERS_PER_SESSION=many must be a whole number"),
        ({"SESSION_MAX_DURATION_HOURS": "nan"}, "SESSION_MAX_DURATION_HOURS=nan must be a positive finite number"),
        (
            {"SPEAKER_RECONNECT_GRACE_SECONDS": "-1"},
            "SPEAKER_RECONNECT_GRACE_SECONDS=-1 must be zero or a positive finite number",
        ),
        (
            {"HEARTBEAT_TIMEOUT_SECONDS": "3"},
            "HEARTBEAT_TIMEOUT_SECONDS=3 must be above HEARTBEAT_INTERVAL_SECONDS=30",
        ),
        (
            {"CONNECTION_REFRESH_MINUTES": "100", "CONNECTION_WARNING_MINUTES": "99.5"},
            "CONNECTION_WARNING_MINUTES=99.5 must not be below CONNECTION_REFRESH_MINUTES=100",
        ),
        (
            {"CONNECTION_MAX_MINUTES": "105"},
            "CONNECTION_MAX_MINUTES=105 must be above CONNECTION_WARNING_MINUTES=105",
        ),
        (
            {"RATE_LIMIT_HEARTBEATS_PER_MIN": "2"},
            "RATE_LIMIT_HEARTBEATS_PER_MIN=2 must be at least 4, to let a client heartbeating every "
            "HEARTBEAT_INTERVAL_SECONDS=30 +/- 5 s through",
        ),
    ],
)
def test_a_rejected_setting_is_one_line_naming_the_variable_its_value_and_the_rule(environment, message):
    # WHEN a setting breaks a rule, THEN the message is what `make run` prints before refusing to start
    with pytest.raises(ConfigurationError) as rejected:
        Settings.from_environment(environment)

    assert str(rejected.value) == message
