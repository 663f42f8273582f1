"""Rate limits (requirement 13 and its venue decision), over fixed windows in RateLimits.

Hundreds of phones behind one church NAT share an IP, so per-IP limits are generous for honest
traffic and tight only for failed joins, the signature of someone guessing session ids. When the
table is down (throttled, 5xx, unreachable), limiting is skipped with a WARN: better a venue
without limits for a minute than a venue that cannot join. A misconfigured table (a missing
permission) is not an outage and is never failed open on: MisconfigurationError goes through.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass

from aws_lambda_powertools import Logger

from session_manager.config import Settings
from session_manager.errors import RateLimitExceededError, ServiceUnavailableError
from session_manager.outcomes import WindowFullError
from session_manager.ports import RateLimitStore

logger = Logger(child=True)

ADMITTED, FAILED, COUNT = "admitted", "failed", "count"


@dataclass(frozen=True)
class Window:
    identifier: str
    ends_at: int  # epoch seconds

    @classmethod
    def of(cls, policy: str, key: str, seconds: int, now_seconds: float, secret: bytes) -> Window:
        start = int(now_seconds) // seconds * seconds
        # An HMAC under the stack's secret: the table never holds an IP address or a user id in
        # clear, and, unlike a plain digest, an IPv4 address cannot be found by trying them all.
        digest = hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()[:32]
        return cls(f"{policy}#{digest}#{start}", start + seconds)

    @property
    def policy(self) -> str:
        return self.identifier.split("#", 1)[0]

    def retry_after(self, now_seconds: float) -> int:
        return max(1, int(self.ends_at - now_seconds + 0.999))


class RateLimiter:
    def __init__(self, settings: Settings, store: RateLimitStore, key_secret: bytes | Callable[[], bytes]) -> None:
        self.settings = settings
        self.store = store
        # Read on first use: only the functions that keep limits are given the secret (and the
        # permission to read it), and a function that needs it and lacks it fails loudly then.
        self._key_secret = functools.cache(key_secret if callable(key_secret) else lambda: key_secret)

    @property
    def key_secret(self) -> bytes:
        return self._key_secret()

    def _window(self, policy: str, key: str, seconds: int, now_seconds: float) -> Window:
        return Window.of(policy, key, seconds, now_seconds, self.key_secret)

    def connection_attempt(self, source_ip: str, now_seconds: float) -> None:
        window = self._window("connect", source_ip, 60, now_seconds)
        self._consume(window, COUNT, {COUNT: self.settings.rate_limit_connection_attempts_per_min}, now_seconds)

    def session_creation(self, user_id: str, now_seconds: float) -> None:
        window = self._window("create", user_id, 3600, now_seconds)
        self._consume(window, COUNT, {COUNT: self.settings.rate_limit_sessions_per_hour}, now_seconds)

    def session_creation_refunded(self, user_id: str, now_seconds: float) -> None:
        """A creation that was charged but refused before it created anything."""
        window = self._window("create", user_id, 3600, now_seconds)
        self._adjust(window, {COUNT: -1})

    def caption(self, session_id: str, now_seconds: float) -> None:
        """Captions per session and second (CAPTIONS_PER_SECOND): a runaway client must not
        burn Translate."""
        window = self._window("caption", session_id, 1, now_seconds)
        self._consume(window, COUNT, {COUNT: self.settings.captions_per_second}, now_seconds, session_id=session_id)

    def join_attempt(self, source_ip: str, now_seconds: float, session_id: str | None = None) -> None:
        """Admit a join unless the IP used up its joins or its failed joins this minute."""
        window = self._window("join", source_ip, 60, now_seconds)
        limits = {
            ADMITTED: self.settings.rate_limit_listener_joins_per_min,
            FAILED: self.settings.rate_limit_failed_joins_per_min,
        }
        self._consume(window, ADMITTED, limits, now_seconds, session_id=session_id)

    def join_failed(self, source_ip: str, now_seconds: float, *, was_admitted: bool = True) -> None:
        """A join failed on its session id (unknown or malformed): count it as failed, and no
        longer as an admitted join."""
        window = self._window("join", source_ip, 60, now_seconds)
        self._adjust(window, {ADMITTED: -1, FAILED: 1} if was_admitted else {FAILED: 1})

    def _adjust(self, window: Window, deltas: dict[str, int]) -> None:
        try:
            self.store.adjust(window.identifier, window.ends_at, deltas)
        except ServiceUnavailableError:
            logger.warning("rate limits unavailable; adjustment not counted", extra={"policy": window.policy})

    def _consume(
        self,
        window: Window,
        counter: str,
        limits: dict[str, int],
        now_seconds: float,
        session_id: str | None = None,
    ) -> None:
        try:
            self.store.consume(window.identifier, window.ends_at, counter, limits)
        except WindowFullError:
            logger.warning("rate limit exceeded", extra={"policy": window.policy})
            raise RateLimitExceededError(retry_after=window.retry_after(now_seconds), session_id=session_id) from None
        except ServiceUnavailableError:
            logger.warning("rate limits unavailable; limiting skipped", extra={"window": window.policy})
