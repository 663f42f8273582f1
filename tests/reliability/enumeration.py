"""How many session ids an attacker can test, measured over real sockets.

`measure(stack, addresses)` has every address guess unknown ids as fast as the stack answers,
within one rate-limit window, and counts the guesses that got an answer about the id
(`SESSION_NOT_FOUND`) before the first `RATE_LIMIT_EXCEEDED`. Run on its own for the figures of
docs/reliability.md:

    PYTHONPATH=layers/session_manager/python:. .venv/bin/python -m tests.reliability.enumeration 100
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass

from tests.e2e.client import Stack, unknown_session_id

from .wire import connect_from, new_address

WINDOW_SECONDS = 60


@dataclass(frozen=True)
class Guesses:
    answered: int  # guesses that learned something about an id, in the window of the refusal
    refused_with: str  # the code of the first refused guess
    retry_after: int
    answered_per_window: dict[int, int]  # window (minute since the epoch, the server's clock) -> answers


async def wait_for_a_fresh_window(margin_seconds: float = 20.0) -> None:
    """Windows are whole minutes (session_manager/ratelimit.py): start early in one, so that a
    burst of guesses is counted in a single window."""
    into = time.time() % WINDOW_SECONDS
    if into > WINDOW_SECONDS - margin_seconds:
        await asyncio.sleep(WINDOW_SECONDS - into + 0.2)


async def guess_until_refused(stack: Stack, address: str, limit: int = 10_000) -> Guesses:
    """Guesses until refused. Windows are counted by the server's reply timestamps: on a slow
    machine a burst may spill into the next window, which then has a budget of its own."""
    client = await connect_from(stack, address)
    per_window: dict[int, int] = {}
    try:
        for _ in range(limit):
            reply = await client.request("joinSession", 90.0, sessionId=unknown_session_id(), targetLanguage="es")
            window = int(reply["timestamp"]) // 1000 // WINDOW_SECONDS
            if reply.get("code") != "SESSION_NOT_FOUND":
                answered = per_window.get(window, 0)
                return Guesses(answered, str(reply.get("code")), int(reply.get("retryAfter", 0)), per_window)
            per_window[window] = per_window.get(window, 0) + 1
        return Guesses(0, "none", 0, per_window)
    finally:
        await client.close()


async def measure(stack: Stack, addresses: int) -> list[Guesses]:
    await wait_for_a_fresh_window()
    return list(await asyncio.gather(*(guess_until_refused(stack, new_address()) for _ in range(addresses))))


def _main(addresses: int) -> None:
    from tests.e2e.stacks import started_stack

    with started_stack() as stack:  # the template's defaults, every limit included
        started = time.monotonic()
        results = asyncio.run(measure(stack, addresses))
        elapsed = time.monotonic() - started
    per_window = sorted({count for result in results for count in result.answered_per_window.values()})
    total = sum(result.answered for result in results)
    print(f"{addresses} addresses: {total} ids answered in the refusals' windows ({elapsed:.1f} s)")
    print(f"answers per address and window: {per_window}")
    print(f"refusals: {sorted({result.refused_with for result in results})}")
    print(f"=> at most {total * 3600 // WINDOW_SECONDS} ids per hour from {addresses} addresses")


if __name__ == "__main__":
    _main(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
