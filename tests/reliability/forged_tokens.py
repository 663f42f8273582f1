"""Forged speaker tokens, each wrong in exactly one way.

The embedded Cognito is moto, whose signing key ships with moto itself (decision 15 keeps the
local JWKS override to loopback for that reason). Signing with it lets a test forge a token that
is correctly signed by the pool's own key and wrong only in one claim, which is the forgery that
tests the claim checks rather than the signature check."""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from importlib import resources
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

POOL_KID = "dummy"  # the kid of moto's one key (moto/cognitoidp/resources/jwks-public.json.gz)


def _pool_private_key() -> Any:
    packed = resources.files("moto.cognitoidp").joinpath("resources/jwks-private.json.gz").read_bytes()
    return RSAAlgorithm.from_jwk(gzip.decompress(packed).decode())


POOL_KEY = _pool_private_key()
FOREIGN_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
POOL_PUBLIC_PEM = POOL_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def decode_segment(segment: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def claims_of(token: str) -> dict[str, Any]:
    return decode_segment(token.split(".")[1])


def signed(claims: dict[str, Any], *, key: Any = POOL_KEY, kid: str | None = POOL_KID) -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(claims, key, algorithm="RS256", headers=headers)


def hs256_with_public_key(claims: dict[str, Any]) -> str:
    """The classic key-confusion forgery: HMAC keyed with the pool's public key, which anyone
    can fetch. PyJWT refuses to make one, so it is made by hand."""
    head = _segment({"alg": "HS256", "typ": "JWT", "kid": POOL_KID}) + "." + _segment(claims)
    signature = hmac.new(POOL_PUBLIC_PEM, head.encode(), hashlib.sha256).digest()
    return head + "." + _b64(signature)


def unsigned(claims: dict[str, Any]) -> str:
    return _segment({"alg": "none", "typ": "JWT", "kid": POOL_KID}) + "." + _segment(claims) + "."


def tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = decode_segment(payload) | {"sub": "someone-else"}
    return ".".join([header, _segment(claims), signature])


def _without(claims: dict[str, Any], name: str) -> dict[str, Any]:
    return {key: value for key, value in claims.items() if key != name}


def forgeries(genuine_id_token: str, genuine_access_token: str) -> dict[str, Callable[[], str]]:
    """Every forged token of the issue's list, by name, made from genuine tokens of the pool."""
    id_claims = claims_of(genuine_id_token)
    access_claims = claims_of(genuine_access_token)
    now = int(time.time())
    return {
        "alg-none": lambda: unsigned(id_claims),
        "hs256-keyed-with-public-key": lambda: hs256_with_public_key(id_claims),
        "foreign-rsa-key": lambda: signed(id_claims, key=FOREIGN_KEY),
        "unknown-kid": lambda: signed(id_claims, kid="not-a-pool-key"),
        "no-kid": lambda: signed(id_claims, kid=None),
        "expired": lambda: signed(id_claims | {"iat": now - 7200, "exp": now - 3600}),
        "nbf-in-future": lambda: signed(id_claims | {"nbf": now + 3600}),
        "iat-in-future": lambda: signed(id_claims | {"iat": now + 3600, "exp": now + 7200}),
        "wrong-iss": lambda: signed(id_claims | {"iss": id_claims["iss"].rsplit("/", 1)[0] + "/us-east-1_Other"}),
        "no-iss": lambda: signed(_without(id_claims, "iss")),
        "no-exp": lambda: signed(_without(id_claims, "exp")),
        "no-sub": lambda: signed(_without(id_claims, "sub")),
        "wrong-aud": lambda: signed(id_claims | {"aud": "someone-elses-app-client"}),
        "no-aud": lambda: signed(_without(id_claims, "aud")),
        "wrong-client-id": lambda: signed(access_claims | {"client_id": "someone-elses-app-client"}),
        "access-token-without-client-id": lambda: signed(_without(access_claims, "client_id")),
        "token-use-refresh": lambda: signed(id_claims | {"token_use": "refresh"}),
        "token-use-missing": lambda: signed(_without(id_claims, "token_use")),
        "tampered-payload": lambda: tampered(genuine_id_token),
        "truncated-signature": lambda: genuine_id_token[:-10],
        "truncated-to-two-segments": lambda: genuine_id_token.rsplit(".", 1)[0],
        "truncated-mid-payload": lambda: genuine_id_token[: len(genuine_id_token) // 2],
        "garbage": lambda: "not-a-jwt",
        "garbage-three-segments": lambda: "a.b.c",
        "binary-noise": lambda: _b64(bytes(range(256))) * 3,
        "100-kb": lambda: signed(id_claims | {"padding": "x" * 100_000}, key=FOREIGN_KEY),
    }


def genuine_claims_signed(token: str) -> str:
    """The genuine token's own claims re-signed with the pool key: proves the forge itself works
    (a test that only sees refusals could be refusing because the forge is broken)."""
    return signed(claims_of(token))
