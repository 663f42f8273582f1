"""Forged speaker tokens at the real handshake, over a socket: each is refused with 401, the
authorizer never fails in any other way, no token reaches the log, and nothing is stored."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from websockets.exceptions import InvalidMessage

from local_stack.apigateway_events import ApiContext, ConnectionInfo, authorizer_event, new_connection_id, now_ms
from tests.e2e.client import Stack
from tests.e2e.test_connecting import tokens_of_new_user
from tests.unit.harness import LambdaContext, load_function

from .checks import assert_invariants, snapshot
from .forged_tokens import forgeries, genuine_claims_signed
from .wire import handshake_status, new_address

pytestmark = pytest.mark.e2e

# Sizes past aiohttp's 8 KB request-line and header limits never reach the authorizer; the
# gateway refuses them itself (see test_a_100_kb_token_is_refused_before_the_authorizer).
OVERSIZED = {"100-kb"}


@pytest.fixture(scope="module")
def forged(stack: Stack) -> dict[str, str]:
    tokens = tokens_of_new_user(stack, stack.info["userPoolId"], stack.info["userPoolClientId"])
    return {name: make() for name, make in forgeries(tokens["IdToken"], tokens["AccessToken"]).items()}


async def test_the_forge_signs_what_the_pool_signs(stack: Stack):
    # GIVEN the genuine claims re-signed by the forge with the pool's key THEN they pass: every
    # refusal below is about the one thing each forgery changed, not a broken forge.
    assert await handshake_status(stack, new_address(), genuine_claims_signed(stack.new_speaker_token())) == 101


@pytest.mark.parametrize("name", sorted(set(forgeries("a.e30.c", "a.e30.c")) - OVERSIZED))
async def test_forged_token_in_query_is_refused_with_401(stack: Stack, forged: dict[str, str], name: str):
    since = now_ms()
    status = await handshake_status(stack, new_address(), forged[name])
    assert status == 401, f"{name}: {status}"
    assert snapshot(stack, set(), since)["connections"] == {}, "a refused handshake stored a connection"
    assert_invariants(stack)


@pytest.mark.parametrize("name", sorted(set(forgeries("a.e30.c", "a.e30.c")) - OVERSIZED))
async def test_forged_token_in_authorization_header_is_refused_with_401(
    stack: Stack, forged: dict[str, str], name: str
):
    status = await handshake_status(stack, new_address(), bearer=forged[name])
    assert status == 401, f"{name}: {status}"
    assert_invariants(stack)


async def _oversized_handshake(stack: Stack, **credentials: str) -> str:
    try:
        status = await handshake_status(stack, new_address(), **credentials)
    except InvalidMessage:
        return "dropped"  # aiohttp answers 400 and closes before the client has sent it all
    return "refused" if 400 <= status < 500 else str(status)


async def test_a_100_kb_token_is_refused_before_the_authorizer(stack: Stack, forged: dict[str, str]):
    # The gateway refuses a request line or header this large before any function runs (the
    # authorizer's own answer to it is tested below); never an upgrade or a server error.
    since = now_ms()
    assert await _oversized_handshake(stack, token=forged["100-kb"]) in {"refused", "dropped"}
    assert await _oversized_handshake(stack, bearer=forged["100-kb"]) in {"refused", "dropped"}
    assert snapshot(stack, set(), since)["connections"] == {}
    assert_invariants(stack)


async def test_tokens_in_query_and_header_that_disagree_are_refused(stack: Stack, forged: dict[str, str]):
    genuine = stack.new_speaker_token()
    # A forged query token is never rescued by a genuine header...
    assert await handshake_status(stack, new_address(), forged["foreign-rsa-key"], bearer=genuine) == 401


async def test_a_genuine_query_token_with_a_forged_header_is_refused(stack: Stack, forged: dict[str, str]):
    genuine = stack.new_speaker_token()
    assert await handshake_status(stack, new_address(), genuine, bearer=forged["foreign-rsa-key"]) == 401


async def test_no_forged_token_reaches_the_stack_log(stack: Stack, forged: dict[str, str]):
    for name in ("foreign-rsa-key", "expired", "wrong-aud", "tampered-payload"):
        assert await handshake_status(stack, new_address(), forged[name]) == 401
    await asyncio.sleep(0.5)  # the workers' log lines reach the file through a pipe
    log = Path(stack.info["logFile"]).read_text(encoding="utf-8", errors="replace")
    for name, token in forged.items():
        signature = token.rsplit(".", 1)[-1]
        if len(signature) >= 20:
            assert signature not in log, f"the {name} token is in the log"


# ------------------------------------------------------------ the authorizer function itself


@pytest.fixture
def authorizer(stack: Stack, monkeypatch: pytest.MonkeyPatch):
    """functions/authorizer/app.py in this process, configured as the stack configures it."""
    from session_manager import auth, config

    pool = stack.info["userPoolId"]
    monkeypatch.setenv("USER_POOL_ID", pool)
    monkeypatch.setenv("USER_POOL_CLIENT_ID", stack.info["userPoolClientId"])
    monkeypatch.setenv("LOCAL_JWKS_URL", f"{stack.info['motoEndpoint']}/{pool}/.well-known/jwks.json")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "session-manager")
    for cached in (config.get_settings, auth.get_token_verifier):
        cached.cache_clear()
    yield load_function("authorizer").handler
    for cached in (config.get_settings, auth.get_token_verifier):
        cached.cache_clear()


def _authorizer_event(stack: Stack, *, query_token: str | None = None, bearer: str | None = None) -> dict:
    context = ApiContext(api_id="localapi01", stage=stack.info["stage"], domain_name="127.0.0.1")
    info = ConnectionInfo(new_connection_id(), now_ms(), "127.20.0.9", "pytest")
    headers = [("Host", "127.0.0.1")] + ([("Authorization", f"Bearer {bearer}")] if bearer else [])
    query = [("token", query_token)] if query_token else []
    return authorizer_event(context, info, headers, query)


def _decision(handler, event: dict) -> str:
    """ "Unauthorized" (the one documented refusal), "Allow" or "Deny"; anything else raised
    fails the test with its own traceback."""
    from session_manager.auth import Unauthorized

    try:
        result = handler(event, LambdaContext())
    except Unauthorized as refusal:
        assert str(refusal) == "Unauthorized"
        return "Unauthorized"
    effects = {statement["Effect"] for statement in result["policyDocument"]["Statement"]}
    return "Allow" if effects == {"Allow"} else "Deny"


def test_the_authorizer_allows_a_genuine_token(stack: Stack, authorizer):
    assert _decision(authorizer, _authorizer_event(stack, query_token=stack.new_speaker_token())) == "Allow"


@pytest.mark.parametrize("name", sorted(forgeries("a.e30.c", "a.e30.c")))
def test_the_authorizer_refuses_each_forgery_with_unauthorized_only(
    stack: Stack, authorizer, forged: dict[str, str], name: str
):
    assert _decision(authorizer, _authorizer_event(stack, query_token=forged[name])) == "Unauthorized"
    assert _decision(authorizer, _authorizer_event(stack, bearer=forged[name])) == "Unauthorized"


def test_the_authorizer_never_raises_on_odd_credentials(stack: Stack, authorizer):
    odd = ["", " ", "Bearer", "Bearer ", "bearer x", "Basic dXNlcjpwYXNz", "\x00", "é" * 50, "a" * 200_000]
    for value in odd:
        event = _authorizer_event(stack)
        event["headers"]["Authorization"] = value
        event["multiValueHeaders"]["Authorization"] = [value]
        assert _decision(authorizer, event) in {"Unauthorized", "Allow"}, repr(value[:20])
        if value.strip() in ("", "Bearer"):
            continue
        assert _decision(authorizer, _authorizer_event(stack, query_token=value)) == "Unauthorized", repr(value[:20])
