"""Verifies speakers' Cognito JWTs (requirements 7 and 19)."""

from __future__ import annotations

import functools
import ipaddress
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import jwt
from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerResponseWebSocket,
)
from jwt import PyJWKClient

from session_manager.config import Settings, get_settings
from session_manager.observability import NAMESPACE, SERVICE, masked_ip
from session_manager.protocol import Role

logger = Logger(child=True)

CLOCK_LEEWAY_SECONDS = 30
UNKNOWN_KID_REFETCH_SECONDS = 60


class TokenRejectedError(Exception):
    """The token is not acceptable; ``reason`` is safe to log, the token never is."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TokenExpiredError(TokenRejectedError):
    def __init__(self) -> None:
        super().__init__("Token expired")


class KeysUnavailableError(TokenRejectedError):
    """The JWKS could not be fetched: speakers are refused, listeners are not affected."""

    def __init__(self) -> None:
        super().__init__("Signing keys unavailable")


@dataclass(frozen=True)
class Speaker:
    user_id: str
    email: str | None


def jwks_url(settings: Settings) -> str:
    """The pool's JWKS, or the local stack's override. The override is honoured only for a
    loopback address, so no deployed stack can be pointed at keys someone else holds."""
    override = settings.jwks_url_override
    if override and _is_loopback(override):
        return override
    return f"{settings.issuer}/.well-known/jwks.json"


def _is_loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class TokenVerifier:
    def __init__(self, settings: Settings, jwks_client: PyJWKClient | None = None) -> None:
        self.settings = settings
        # PyJWKClient caches the key set per execution environment (5 minutes).
        self.jwks = jwks_client or PyJWKClient(jwks_url(settings), cache_jwk_set=True, lifespan=300, timeout=3)
        self._lock = threading.Lock()
        self._last_refetch = 0.0

    def verify(self, token: str) -> Speaker:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise TokenRejectedError("Invalid token") from None
        if header.get("alg") != "RS256":
            raise TokenRejectedError("Invalid token")
        key = self._signing_key(header.get("kid"))
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=["RS256"],
                issuer=self.settings.issuer,
                leeway=CLOCK_LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "sub", "token_use"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise TokenExpiredError() from None
        except jwt.InvalidTokenError:
            raise TokenRejectedError("Invalid token") from None
        self._check_client(claims)
        return Speaker(user_id=str(claims["sub"]), email=claims.get("email"))

    def _check_client(self, claims: dict) -> None:
        client_id = self.settings.user_pool_client_id
        token_use = claims.get("token_use")
        if token_use == "id":
            audience = claims.get("aud")
            audiences = audience if isinstance(audience, list) else [audience]
            if client_id not in audiences:
                raise TokenRejectedError("Invalid token")
        elif token_use == "access":
            if claims.get("client_id") != client_id:
                raise TokenRejectedError("Invalid token")
        else:
            raise TokenRejectedError("Invalid token")

    def _signing_key(self, kid: str | None):
        if not kid:
            raise TokenRejectedError("Invalid token")
        try:
            key = self._find_key(kid, refresh=False)
            if key is None and self._may_refetch():
                # PyJWKClient alone refetches on every unknown kid; forged kids would then make
                # every handshake fetch the JWKS, so a refetch is allowed once a minute.
                key = self._find_key(kid, refresh=True)
        except jwt.PyJWKClientConnectionError:
            raise KeysUnavailableError() from None
        except (jwt.PyJWKSetError, jwt.InvalidKeyError):
            raise KeysUnavailableError() from None  # a key set with no usable key
        except jwt.PyJWKClientError:
            raise TokenRejectedError("Invalid token") from None
        if key is None:
            raise TokenRejectedError("Invalid token")
        return key

    def _find_key(self, kid: str, *, refresh: bool):
        for jwk in self.jwks.get_jwk_set(refresh=refresh).keys:
            if jwk.key_id == kid:
                return jwk.key
        return None

    def _may_refetch(self) -> bool:
        with self._lock:
            now = time.monotonic()
            if now - self._last_refetch < UNKNOWN_KID_REFETCH_SECONDS:
                return False
            self._last_refetch = now
            return True


@functools.lru_cache(maxsize=1)
def get_token_verifier() -> TokenVerifier:
    return TokenVerifier(get_settings())


def token_of(event: dict[str, Any]) -> str | None:
    """The speaker token: the `token` query parameter (browsers cannot set headers on a
    WebSocket) or an `Authorization: Bearer` header. Both present and different is refused: a
    handshake must not be let in on one token while something downstream believes the other."""
    query = (event.get("queryStringParameters") or {}).get("token") or None
    headers = {key.lower(): value for key, value in (event.get("headers") or {}).items()}
    scheme, _, credentials = (headers.get("authorization") or "").partition(" ")
    header = credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None
    if query and header and query != header:
        raise TokenRejectedError("Disagreeing tokens")
    return query or header


def authorize_connect(event: dict[str, Any], verifier: TokenVerifier) -> dict[str, Any]:
    """The REQUEST authorizer's answer: Allow a verified speaker or an anonymous listener;
    raise Unauthorized (API Gateway's 401) for a token that does not verify."""
    try:
        token = token_of(event)
        if token is None:
            return _allow(event, principal="anonymous", context={"role": Role.LISTENER.value})
        speaker = verifier.verify(token)
    except TokenRejectedError as rejection:
        source = (event.get("requestContext") or {}).get("identity", {}).get("sourceIp")
        logger.warning(
            "speaker authentication failed",
            extra={"reason": rejection.reason, "source": masked_ip(source), "at": int(time.time())},
        )
        # Refused handshakes never reach $connect's per-IP limit: count them for the alarms.
        with single_metric(name="AuthenticationFailures", unit=MetricUnit.Count, value=1, namespace=NAMESPACE) as m:
            m.add_dimension(name="service", value=SERVICE)
        raise Unauthorized() from None
    # The email stays out of the context: no route needs it, and the context reaches every event.
    return _allow(event, principal=speaker.user_id, context={"role": Role.SPEAKER.value, "userId": speaker.user_id})


class Unauthorized(Exception):
    """Raised with exactly this message, API Gateway answers the handshake with 401."""

    def __init__(self) -> None:
        super().__init__("Unauthorized")


def _allow(event: dict[str, Any], *, principal: str, context: dict[str, str]) -> dict[str, Any]:
    """Allow every route of the stage the handshake is for (the methodArn names `$connect`)."""
    try:
        response = APIGatewayAuthorizerResponseWebSocket.from_route_arn(event["methodArn"], principal, context)
    except (KeyError, ValueError, IndexError):
        logger.warning("authorizer event without a usable methodArn; refused")
        raise Unauthorized() from None
    response.allow_all_routes()
    return response.asdict()
