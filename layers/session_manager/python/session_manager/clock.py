"""The one clock of the domain, injected into every service (tests pass a fake)."""

from __future__ import annotations

import time


class SystemClock:
    def time(self) -> float:
        return time.time()


def now_ms(clock) -> int:
    return int(clock.time() * 1000)
