"""Rate limits (requirement 13 and its venue decision), over fixed windows in RateLimits.

Hundreds of phones behind one church NAT share an IP, so per-IP limits are generous for honest
traffic and tight only for failed joins, the signature of someone guessing session ids. When the
table cannot be reached, limiting is skipped with a WARN: better a venue without limits for a
minute than a venue that cannot join.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from aws_lambda_powertools import Logger

from session_manager.config import Settings
from session_manager.errors import RateLimitExceededError, ServiceUnavailableError
from session_manager.store.rate_limits import RateLimitRepository, WindowFull

logger = Logger(child=True)

ADMITTED, FAILED, COUNT = "admitted", "failed", "count"


@dataclass(frozen=True)
class Window:
    identifier: str
    ends_at: int  # epoch seconds

    @classmethod
    def of(cls, policy: str, key: str, seconds: int, now_seconds: float) -> Window:
        start = int(now_seconds) // seconds * seconds
        # Keys are digests: the table never holds an IP address or a user id in clear.
        digest = hashlib.sha256(key.encode()).hexdigest()[:24]
        return cls(f"{policy}#{digest}#{start}", start + seconds)

    def retry_after(self, now_seconds: float) -> int:
        return max(1, int(self.ends_at - now_seconds + 0.999))


class RateLimiter:
    def __init__(self, settings: Settings, repository: RateLimitRepository) -> None:
        self.settings = settings
        self.repository = repository

    def connection_attempt(self, source_ip: str, now_seconds: float) -> None:
        window = Window.of("connect", source_ip, 60, now_seconds)
        self._consume(window, COUNT, {COUNT: self.settings.rate_limit_connection_attempts_per_min}, now_seconds)

    def session_creation(self, user_id: str, now_seconds: float) -> None:
        window = Window.of("create", user_id, 3600, now_seconds)
        self._consume(window, COUNT, {COUNT: self.settings.rate_limit_sessions_per_hour}, now_seconds)

    def join_attempt(self, source_ip: str, now_seconds: float, session_id: str | None = None) -> None:
        """Admit a join unless the IP used up its joins or its failed joins this minute."""
        window = Window.of("join", source_ip, 60, now_seconds)
        limits = {
            ADMITTED: self.settings.rate_limit_listener_joins_per_min,
            FAILED: self.settings.rate_limit_failed_joins_per_min,
        }
        self._consume(window, ADMITTED, limits, now_seconds, session_id=session_id)

    def join_failed(self, source_ip: str, now_seconds: float, *, was_admitted: bool = True) -> None:
        """A join failed on its session id (unknown or malformed): count it as failed, and no
        longer as an admitted join."""
        window = Window.of("join", source_ip, 60, now_seconds)
        deltas = {ADMITTED: -1, FAILED: 1} if was_admitted else {FAILED: 1}
        try:
            self.repository.adjust(window.identifier, window.ends_at, deltas)
        except ServiceUnavailableError:
            logger.warning("rate limits unavailable; failed join not counted")

    def _consume(
        self,
        window: Window,
        counter: str,
        limits: dict[str, int],
        now_seconds: float,
        session_id: str | None = None,
    ) -> None:
        try:
            self.repository.consume(window.identifier, window.ends_at, counter, limits)
        except WindowFull:
            policy = window.identifier.split("#", 1)[0]
            logger.warning("rate limit exceeded", extra={"policy": policy})
            raise RateLimitExceededError(retry_after=window.retry_after(now_seconds), session_id=session_id) from None
        except ServiceUnavailableError:
            logger.warning(
                "rate limits unavailable; limiting skipped", extra={"window": window.identifier.split("#", 1)[0]}
            )
