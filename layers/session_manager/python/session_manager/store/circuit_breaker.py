"""A circuit breaker around DynamoDB (requirement 21): 5 failures in a row open it for 30 s.

Hand-written because none of the chosen dependencies ships one; it is per execution environment,
which is what a Lambda container can know without another table to ask.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import Enum

from aws_lambda_powertools import Logger

logger = Logger(child=True)


class BreakerState(str, Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        failure_threshold: int = 5,
        reset_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_seconds = reset_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._state_locked()

    def _state_locked(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self.reset_seconds:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allow(self) -> bool:
        """Whether a call may go through now; in half-open state only one trial call may."""
        with self._lock:
            state = self._state_locked()
            if state is BreakerState.CLOSED:
                return True
            if state is BreakerState.HALF_OPEN and not self._trial_running:
                self._trial_running = True
                return True
            return False

    def release(self) -> None:
        """Give back a trial that was granted but not used (another breaker refused the call)."""
        with self._lock:
            self._trial_running = False

    def record_success(self) -> None:
        with self._lock:
            if self._opened_at is not None:
                logger.info("circuit closed", extra={"breaker": self.name})
            self._failures = 0
            self._opened_at = None
            self._trial_running = False

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            reopening = self._trial_running
            self._trial_running = False
            if reopening or (self._opened_at is None and self._failures >= self.failure_threshold):
                self._opened_at = self._clock()
                logger.warning(
                    "circuit opened",
                    extra={"breaker": self.name, "failures": self._failures},
                )
