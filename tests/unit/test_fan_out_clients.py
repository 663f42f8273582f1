"""The management API client as a fan-out uses it: its posts are built by the messenger, so
botocore's client-side parameter validation is off for it alone, and its User-Agent is fixed
rather than rebuilt per request (benchmarks/post_cost.py); what API Gateway acts on is unchanged."""

from __future__ import annotations

import boto3
import pytest
from botocore.awsrequest import AWSResponse

from session_manager.errors import ServiceUnavailableError
from session_manager.store import clients
from session_manager.store.messenger import ManagementApiNotifier


class _Answer:
    def __init__(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.status, self.body, self.headers = status, body, headers or {}
        self.requests = []

    def __call__(self, request, **_):
        self.requests.append(request)
        raw = type("Raw", (), {"stream": lambda self, *a, **k: iter([])})()
        response = AWSResponse(request.url, self.status, self.headers, raw)
        response._content = self.body
        return response


def _client(answer: _Answer):
    client = boto3.client(
        "apigatewaymanagementapi",
        endpoint_url="http://127.0.0.1:9/local",
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=clients.MANAGEMENT_API_CONFIG,
    )
    client.meta.events.register("before-send.apigatewaymanagementapi.*", answer)
    return client


def test_the_management_api_client_skips_client_side_validation_and_the_others_keep_it():
    assert clients.MANAGEMENT_API_CONFIG.parameter_validation is False
    for config in (clients.DYNAMODB_CONFIG, clients.RATE_LIMITS_DYNAMODB_CONFIG):
        assert config.parameter_validation is not False


def test_a_post_still_names_the_connection_and_carries_the_message_unchanged():
    answer = _Answer(200)
    notifier = ManagementApiNotifier(_client(answer))

    assert notifier.send("Yx1aBcDeIAMCJfA=", {"type": "caption", "text": "[es] Gracia"}) is True

    (request,) = answer.requests
    assert request.method == "POST"
    assert request.url.endswith("/local/@connections/Yx1aBcDeIAMCJfA%3D")
    assert request.body == b'{"type":"caption","text":"[es] Gracia"}'


def test_a_post_the_service_refuses_as_malformed_is_reported_once_and_not_retried():
    # Nothing on the client checks the post now: the service's 400 must still end as "failed".
    answer = _Answer(400, b'{"message":"Invalid connectionId"}', {"x-amzn-ErrorType": "BadRequestException"})
    notifier = ManagementApiNotifier(_client(answer))

    with pytest.raises(ServiceUnavailableError):
        notifier.send("", {"type": "caption"})
    assert len(answer.requests) == 1  # sent (no validation), and a 400 is not retried


def test_gone_is_still_told_apart():
    answer = _Answer(410, b'{"message":"gone"}', {"x-amzn-ErrorType": "GoneException"})

    assert ManagementApiNotifier(_client(answer)).send("gone-one", {"type": "caption"}) is False


def test_every_post_carries_the_fixed_user_agent_not_one_rebuilt_per_request():
    answer = _Answer(200)
    notifier = ManagementApiNotifier(_client(answer))

    for connection_id in ("first", "second"):
        notifier.send(connection_id, {"type": "caption"})

    agents = {request.headers["User-Agent"].decode() for request in answer.requests}
    (agent,) = agents
    assert agent.startswith(clients.FIXED_USER_AGENT)
    assert "m/" not in agent  # botocore's per-request feature list is what is no longer built
