"""How long to wait before each reconnect attempt, and when to stop trying."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ReconnectPolicy:
    """Exponential backoff with full jitter: attempt n waits a uniform random time in
    [0, min(cap, base * 2**n)], so 500 phones dropped by the same Wi-Fi glitch spread their
    returns over the whole window instead of arriving in the same second. The client gives up
    `give_up_after_seconds` after the drop."""

    base_seconds: float = 1.0
    cap_seconds: float = 30.0
    give_up_after_seconds: float = 300.0
    random: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not (0 < self.base_seconds <= self.cap_seconds):
            raise ValueError("ReconnectPolicy needs 0 < base_seconds <= cap_seconds")
        if self.give_up_after_seconds <= 0:
            raise ValueError("ReconnectPolicy.give_up_after_seconds must be positive")

    def ceiling(self, attempt: int) -> float:
        """The longest wait before attempt `attempt` (0 for the first)."""
        return min(self.cap_seconds, self.base_seconds * 2 ** min(attempt, 64))

    def delay(self, attempt: int) -> float:
        return self.random.uniform(0.0, self.ceiling(attempt))
