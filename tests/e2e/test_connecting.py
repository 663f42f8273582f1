"""Connecting: speakers with a token (query or header), listeners without; bad tokens refused
at the handshake with 401; nothing is sent at connect time."""

from __future__ import annotations

import base64
import json
import uuid

import boto3
import jwt
import pytest

from .client import Stack, assert_error, assert_message

pytestmark = pytest.mark.e2e


def _segments(token: str) -> list[str]:
    return token.split(".")


def _decode_segment(segment: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def _encode_segment(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def tampered(token: str) -> str:
    """The same token with its subject changed: the signature no longer matches."""
    header, payload, signature = _segments(token)
    claims = _decode_segment(payload)
    claims["sub"] = "someone-else"
    return ".".join([header, _encode_segment(claims), signature])


def hs256_signed(token: str) -> str:
    """The same claims and kid, signed with HS256 and a made-up secret."""
    header = _decode_segment(_segments(token)[0])
    claims = _decode_segment(_segments(token)[1])
    return jwt.encode(claims, "not-the-pool-key-" + "x" * 32, algorithm="HS256", headers={"kid": header.get("kid")})


def unsigned(token: str) -> str:
    """alg none: claims without any signature."""
    header = _decode_segment(_segments(token)[0])
    return ".".join([_encode_segment({"alg": "none", "kid": header.get("kid")}), _segments(token)[1], ""])


def cognito_of(stack: Stack):
    """A Cognito client of the stack's embedded (moto) Cognito."""
    return boto3.client(
        "cognito-idp",
        endpoint_url=stack.info["motoEndpoint"],
        region_name=stack.info["userPoolId"].split("_", 1)[0],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def tokens_of_new_user(stack: Stack, pool_id: str, client_id: str) -> dict[str, str]:
    """IdToken and AccessToken of a new user of the pool, signed in through that app client."""
    cognito = cognito_of(stack)
    email = f"user-{uuid.uuid4().hex[:12]}@example.org"
    password = "Correct-Horse-Battery-9!"
    cognito.admin_create_user(
        UserPoolId=pool_id,
        Username=email,
        UserAttributes=[{"Name": "email", "Value": email}, {"Name": "email_verified", "Value": "true"}],
        MessageAction="SUPPRESS",
    )
    cognito.admin_set_user_password(UserPoolId=pool_id, Username=email, Password=password, Permanent=True)
    result = cognito.admin_initiate_auth(
        UserPoolId=pool_id,
        ClientId=client_id,
        AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": email, "PASSWORD": password},
    )
    return result["AuthenticationResult"]


BAD_TOKENS = {
    "garbage": lambda token: "not-a-jwt",
    "tampered": tampered,
    "hs256": hs256_signed,
    "alg-none": unsigned,
}


async def test_speaker_connects_with_token_query_parameter(stack: Stack):
    # GIVEN a speaker token in the query string
    speaker = await stack.connect(stack.demo_token)
    # WHEN it creates a session THEN it is treated as an authenticated speaker
    created = await speaker.request("createSession", sourceLanguage="en")
    assert created["type"] == "sessionCreated", created


async def test_speaker_connects_with_authorization_bearer_header(stack: Stack):
    speaker = await stack.connect(bearer=stack.new_speaker_token())
    created = await speaker.request("createSession", sourceLanguage="en")
    assert created["type"] == "sessionCreated", created


@pytest.mark.parametrize("kind", sorted(BAD_TOKENS))
async def test_invalid_token_in_query_is_refused_with_401(stack: Stack, kind: str):
    assert await stack.handshake_status(BAD_TOKENS[kind](stack.demo_token)) == 401


async def test_invalid_token_in_header_is_refused_with_401(stack: Stack):
    assert await stack.handshake_status(bearer=tampered(stack.demo_token)) == 401


async def test_speaker_connects_with_access_token(stack: Stack):
    # GIVEN an access token (not an ID token) issued to the stack's own app client
    tokens = tokens_of_new_user(stack, stack.info["userPoolId"], stack.info["userPoolClientId"])
    speaker = await stack.connect(tokens["AccessToken"])
    created = await speaker.request("createSession", sourceLanguage="en")
    assert created["type"] == "sessionCreated", created


async def test_token_for_another_app_client_is_refused_with_401(stack: Stack):
    # GIVEN a genuine RS256 token of the same pool, issued to another app client
    cognito = cognito_of(stack)
    other = cognito.create_user_pool_client(UserPoolId=stack.info["userPoolId"], ClientName="someone-elses-app")
    tokens = tokens_of_new_user(stack, stack.info["userPoolId"], other["UserPoolClient"]["ClientId"])
    assert await stack.handshake_status(tokens["IdToken"]) == 401
    assert await stack.handshake_status(tokens["AccessToken"]) == 401


async def test_token_of_another_user_pool_is_refused_with_401(stack: Stack):
    cognito = cognito_of(stack)
    pool_id = cognito.create_user_pool(PoolName="someone-elses-pool")["UserPool"]["Id"]
    client_id = cognito.create_user_pool_client(UserPoolId=pool_id, ClientName="app")["UserPoolClient"]["ClientId"]
    tokens = tokens_of_new_user(stack, pool_id, client_id)
    assert await stack.handshake_status(tokens["IdToken"]) == 401


async def test_connection_without_token_is_an_anonymous_listener(stack: Stack):
    # GIVEN a connection without any token
    anonymous = await stack.connect()
    # WHEN it tries a speaker action THEN it is not a speaker...
    assert_error(await anonymous.request("createSession", sourceLanguage="en"), "UNAUTHORIZED", 401)
    # ...but it may listen
    _, created = await stack.speaker_with_session()
    joined = await anonymous.request("joinSession", sessionId=created["sessionId"], targetLanguage="es")
    assert joined["type"] == "sessionJoined", joined


async def test_nothing_is_sent_at_connect_time(stack: Stack):
    speaker = await stack.connect(stack.demo_token)
    listener = await stack.connect()
    await speaker.silent_for(1.0)
    await listener.silent_for(0.2)


async def test_heartbeat_is_acknowledged(stack: Stack):
    client = await stack.connect()
    assert_message(await client.request("heartbeat"), "heartbeatAck")
    await client.silent_for(0.5)
