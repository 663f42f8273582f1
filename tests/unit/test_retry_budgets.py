"""Requirement 21's retries, per AWS client: botocore's standard mode, and never more than 3
attempts in all (`max_attempts` would not count the first one: 3 there is 4 requests)."""

from __future__ import annotations

import pytest

from session_manager.store import caption_queue, clients, secrets, translator

CONFIGS = {
    "DynamoDB": clients.DYNAMODB_CONFIG,
    "RateLimits": clients.RATE_LIMITS_DYNAMODB_CONFIG,
    "management API": clients.MANAGEMENT_API_CONFIG,
    "Translate": translator.TRANSLATE_CONFIG,
    "SQS": caption_queue.SQS_CONFIG,
    "Secrets Manager": secrets.SECRETS_CONFIG,
}


@pytest.mark.parametrize("name", CONFIGS)
def test_every_client_retries_in_standard_mode_within_three_attempts(name):
    retries = CONFIGS[name].retries

    assert retries["mode"] == "standard"
    assert "max_attempts" not in retries
    assert 1 <= retries["total_max_attempts"] <= 3
