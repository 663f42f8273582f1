"""The $connect authorizer: Cognito JWTs checked against a JWKS served over real HTTP."""

from __future__ import annotations

import fnmatch
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from session_manager import auth
from session_manager.auth import (
    KeysUnavailableError,
    TokenExpiredError,
    TokenRejectedError,
    TokenVerifier,
    Unauthorized,
    authorize_connect,
    jwks_url,
    token_of,
)
from tests.unit.harness import LambdaContext, load_function, settings

POOL = "us-east-1_test"
CLIENT = "client"
ISSUER = f"https://cognito-idp.us-east-1.amazonaws.com/{POOL}"
METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc/dev/$connect"
EMAIL = "pastor.john@example.org"
SOURCE_IP = "203.0.113.77"


def _private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _jwk(key: rsa.RSAPrivateKey, kid: str) -> dict:
    return json.loads(RSAAlgorithm.to_jwk(key.public_key())) | {"kid": kid, "alg": "RS256", "use": "sig"}


SIGNING_KEY = _private_key()
OTHER_KEY = _private_key()


class JwksServer:
    """A real HTTP JWKS endpoint on 127.0.0.1:<free port> that counts its fetches."""

    def __init__(self) -> None:
        self.keys = [_jwk(SIGNING_KEY, "k1")]
        self.hits = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.hits += 1
                body = json.dumps({"keys": server.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/{POOL}/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def jwks():
    server = JwksServer()
    yield server
    server.stop()


@pytest.fixture
def verifier(jwks):
    return TokenVerifier(settings(jwks_url_override=jwks.url))


def id_claims(**overrides) -> dict:
    now = int(time.time())
    claims = {
        "sub": "user-123",
        "iss": ISSUER,
        "aud": CLIENT,
        "token_use": "id",
        "iat": now,
        "exp": now + 3600,
    }
    return {k: v for k, v in (claims | overrides).items() if v is not None}


def access_claims(**overrides) -> dict:
    claims = id_claims(aud=None, token_use="access", client_id=CLIENT, scope="aws.cognito.signin.user.admin")
    return {k: v for k, v in (claims | overrides).items() if v is not None}


def token(claims: dict, *, key=SIGNING_KEY, kid: str = "k1", algorithm: str = "RS256") -> str:
    signing = (
        _pem(key) if algorithm == "RS256" else ("shared-secret-of-32-bytes-or-more!" if algorithm != "none" else None)
    )
    return jwt.encode(claims, signing, algorithm=algorithm, headers={"kid": kid})


def connect_event(*, query_token: str | None = None, headers: dict | None = None) -> dict:
    return {
        "type": "REQUEST",
        "methodArn": METHOD_ARN,
        "headers": headers or {"Host": "abc.execute-api.us-east-1.amazonaws.com"},
        "queryStringParameters": {"token": query_token} if query_token else None,
        "requestContext": {
            "routeKey": "$connect",
            "eventType": "CONNECT",
            "connectionId": "conn-auth=",
            "requestId": "req-auth",
            "identity": {"sourceIp": SOURCE_IP},
        },
    }


# ---------------------------------------------------------------- accepted


def test_a_valid_id_token_is_allowed_as_a_speaker(verifier):
    policy = authorize_connect(connect_event(query_token=token(id_claims())), verifier)

    assert policy["principalId"] == "user-123"
    assert policy["context"] == {"role": "speaker", "userId": "user-123"}
    assert policy["policyDocument"]["Statement"][0]["Effect"] == "Allow"


def test_a_valid_access_token_is_allowed_as_a_speaker(verifier):
    policy = authorize_connect(connect_event(query_token=token(access_claims())), verifier)

    assert policy["context"] == {"role": "speaker", "userId": "user-123"}


def test_a_bearer_authorization_header_is_accepted(verifier):
    event = connect_event(headers={"authorization": f"Bearer {token(id_claims())}"})

    assert authorize_connect(event, verifier)["context"]["role"] == "speaker"


def test_a_connection_without_a_token_is_an_anonymous_listener(verifier, jwks):
    policy = authorize_connect(connect_event(), verifier)

    assert policy["principalId"] == "anonymous"
    assert policy["context"] == {"role": "listener"}
    assert policy["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    assert jwks.hits == 0


def test_the_allow_policy_covers_the_websocket_method_arn(verifier):
    policy = authorize_connect(connect_event(query_token=token(id_claims())), verifier)

    (statement,) = policy["policyDocument"]["Statement"]
    assert statement["Action"] == "execute-api:Invoke"
    assert statement["Resource"] == ["arn:aws:execute-api:us-east-1:123456789012:abc/dev/*"]
    assert fnmatch.fnmatchcase(METHOD_ARN, statement["Resource"][0])


def test_a_token_expired_within_the_clock_leeway_is_accepted(verifier):
    speaker = verifier.verify(token(id_claims(exp=int(time.time()) - 10)))

    assert speaker.user_id == "user-123"


# ---------------------------------------------------------------- rejected


def test_an_expired_token_is_rejected_as_expired(verifier):
    with pytest.raises(TokenExpiredError) as raised:
        verifier.verify(token(id_claims(exp=int(time.time()) - 120)))

    assert raised.value.reason == "Token expired"


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param(id_claims(iss="https://cognito-idp.us-east-1.amazonaws.com/us-east-1_other"), id="wrong issuer"),
        pytest.param(id_claims(aud="another-client"), id="id token for another client"),
        pytest.param(id_claims(aud=None), id="id token without audience"),
        pytest.param(access_claims(client_id="another-client"), id="access token for another client"),
        pytest.param(access_claims(client_id=None), id="access token without client_id"),
        pytest.param(id_claims(token_use=None), id="token_use missing"),
        pytest.param(id_claims(token_use="refresh"), id="token_use other"),
        pytest.param(id_claims(exp=None), id="no exp"),
        pytest.param(id_claims(sub=None), id="no sub"),
    ],
)
def test_a_token_with_wrong_claims_is_rejected_as_invalid(verifier, claims):
    with pytest.raises(TokenRejectedError) as raised:
        verifier.verify(token(claims))

    assert raised.value.reason == "Invalid token"


def test_a_token_signed_by_another_key_is_rejected(verifier):
    with pytest.raises(TokenRejectedError) as raised:
        verifier.verify(token(id_claims(), key=OTHER_KEY))

    assert raised.value.reason == "Invalid token"


@pytest.mark.parametrize("algorithm", ["HS256", "none"])
def test_a_token_not_signed_with_rs256_is_rejected(verifier, algorithm):
    with pytest.raises(TokenRejectedError) as raised:
        verifier.verify(token(id_claims(), algorithm=algorithm))

    assert raised.value.reason == "Invalid token"


@pytest.mark.parametrize("garbage", ["not-a-jwt", "a.b.c", "Bearer"])
def test_a_malformed_token_is_rejected(verifier, garbage):
    with pytest.raises(TokenRejectedError):
        verifier.verify(garbage)


def test_a_rejected_token_makes_the_authorizer_answer_unauthorized(verifier):
    with pytest.raises(Unauthorized) as raised:
        authorize_connect(connect_event(query_token=token(id_claims(), key=OTHER_KEY)), verifier)

    assert str(raised.value) == "Unauthorized"


# ---------------------------------------------------------------- JWKS fetching


def test_unknown_key_ids_trigger_at_most_one_jwks_refetch_a_minute(verifier, jwks):
    # GIVEN a verifier that fetched the JWKS for a valid token
    verifier.verify(token(id_claims()))
    assert jwks.hits == 1

    # WHEN many tokens with forged key ids arrive
    for n in range(5):
        with pytest.raises(TokenRejectedError):
            verifier.verify(token(id_claims(), kid=f"forged-{n}"))

    # THEN the JWKS was fetched again only once
    assert jwks.hits == 2


def test_an_unknown_key_id_may_refetch_again_after_a_minute(verifier, jwks, monkeypatch):
    verifier.verify(token(id_claims()))
    with pytest.raises(TokenRejectedError):
        verifier.verify(token(id_claims(), kid="forged-1"))
    real_monotonic = time.monotonic
    monkeypatch.setattr(auth.time, "monotonic", lambda: real_monotonic() + 61)

    with pytest.raises(TokenRejectedError):
        verifier.verify(token(id_claims(), kid="forged-2"))

    assert jwks.hits == 3


def test_a_rotated_key_is_picked_up_by_the_refetch(verifier, jwks):
    verifier.verify(token(id_claims()))
    rotated = _private_key()
    jwks.keys.append(_jwk(rotated, "k2"))

    speaker = verifier.verify(token(id_claims(), key=rotated, kid="k2"))

    assert speaker.user_id == "user-123"
    assert jwks.hits == 2


def test_an_unreachable_jwks_refuses_speakers():
    verifier = TokenVerifier(settings(jwks_url_override="http://127.0.0.1:9/jwks.json"))

    with pytest.raises(KeysUnavailableError):
        verifier.verify(token(id_claims()))
    with pytest.raises(Unauthorized):
        authorize_connect(connect_event(query_token=token(id_claims())), verifier)


def test_an_unreachable_jwks_still_lets_listeners_in():
    verifier = TokenVerifier(settings(jwks_url_override="http://127.0.0.1:9/jwks.json"))

    policy = authorize_connect(connect_event(), verifier)

    assert policy["context"] == {"role": "listener"}


@pytest.mark.parametrize(
    "override",
    ["http://127.0.0.1:8080/jwks.json", "http://localhost:3001/jwks.json", "http://[::1]:8080/jwks.json"],
)
def test_a_loopback_jwks_override_is_honoured(override):
    assert jwks_url(settings(jwks_url_override=override)) == override


@pytest.mark.parametrize(
    "override",
    [
        "https://evil.example.com/jwks.json",
        "http://10.0.0.5/jwks.json",
        "http://127.0.0.1.evil.example.com/jwks.json",
        "http://localhost.evil.example.com/jwks.json",
    ],
)
def test_a_non_loopback_jwks_override_is_ignored(override):
    assert jwks_url(settings(jwks_url_override=override)) == f"{ISSUER}/.well-known/jwks.json"


# ---------------------------------------------------------------- logs


def test_nothing_logged_holds_the_token_the_email_or_the_full_ip(verifier, logs):
    # GIVEN one accepted token with an email, one expired and one forged
    good = token(id_claims(email=EMAIL))
    expired = token(id_claims(email=EMAIL, exp=int(time.time()) - 120))
    forged = token(id_claims(email=EMAIL), key=OTHER_KEY)

    # WHEN the authorizer sees them
    authorize_connect(connect_event(query_token=good), verifier)
    for rejected in (expired, forged):
        with pytest.raises(Unauthorized):
            authorize_connect(connect_event(query_token=rejected), verifier)

    # THEN the failures were logged with their reason and a masked source, and no secret
    warnings = [line for line in logs.lines if line["message"] == "speaker authentication failed"]
    assert [w["reason"] for w in warnings] == ["Token expired", "Invalid token"]
    assert {w["source"] for w in warnings} == {"203.0.113.0/24"}
    for secret in (good, expired, forged, EMAIL, SOURCE_IP, *good.split(".")):
        assert secret not in logs.text


# ---------------------------------------------------------------- the Lambda function


@pytest.fixture
def authorizer_function(verifier, monkeypatch):
    module = load_function("authorizer")
    monkeypatch.setattr(module, "get_token_verifier", lambda: verifier)
    return module


def test_the_authorizer_function_allows_a_speaker(authorizer_function):
    policy = authorizer_function.handler(connect_event(query_token=token(id_claims())), LambdaContext())

    assert policy["context"]["role"] == "speaker"


def test_the_authorizer_function_raises_unauthorized_for_an_expired_token(authorizer_function, logs):
    event = connect_event(query_token=token(id_claims(exp=int(time.time()) - 120)))

    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer_function.handler(event, LambdaContext())

    assert [line["reason"] for line in logs.at("WARNING")] == ["Token expired"]


def test_the_authorizer_function_allows_an_anonymous_listener(authorizer_function):
    policy = authorizer_function.handler(connect_event(), LambdaContext())

    assert policy["context"] == {"role": "listener"}


def test_a_jwks_without_usable_keys_refuses_speakers_as_unauthorized(jwks, verifier):
    jwks.keys = []

    with pytest.raises(Unauthorized):
        authorize_connect(connect_event(query_token=token(id_claims())), verifier)


def test_a_token_in_the_query_and_the_same_in_the_header_is_one_token():
    event = {"queryStringParameters": {"token": "abc"}, "headers": {"Authorization": "Bearer abc"}}

    assert token_of(event) == "abc"


def test_a_query_token_and_a_different_header_token_are_refused_at_the_handshake():
    event = {
        "queryStringParameters": {"token": "genuine"},
        "headers": {"Authorization": "Bearer forged"},
        "requestContext": {"identity": {"sourceIp": "203.0.113.7"}},
        "methodArn": "arn:aws:execute-api:us-east-1:123456789012:abc/dev/$connect",
    }

    with pytest.raises(TokenRejectedError):
        token_of(event)
    with pytest.raises(Unauthorized):
        authorize_connect(event, verifier=None)  # refused before any key is looked at
