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
    answered: int  # guesses that learned something about an id
    refused_with: str  # the code of the first refused guess
    retry_after: int


async def wait_for_a_fresh_window(margin_seconds: float = 20.0) -> None:
    """Windows are whole minutes (session_manager/ratelimit.py): start early in one, so that a
    burst of guesses is counted in a single window."""
    into = time.time() % WINDOW_SECONDS
    if into > WINDOW_SECONDS - margin_seconds:
        await asyncio.sleep(WINDOW_SECONDS - into + 0.2)


async def guess_until_refused(stack: Stack, address: str, limit: int = 10_000) -> Guesses:
    client = await connect_from(stack, address)
    answered = 0
    try:
        for _ in range(limit):
            session_id = unknown_session_id()
            reply = await client.request("joinSession", sessionId=session_id, targetLanguage="es")
            if reply.get("code") != "SESSION_NOT_FOUND":
                return Guesses(answered, str(reply.get("code")), int(reply.get("retryAfter", 0)))
            answered += 1
        return Guesses(answered, "none", 0)
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
    per_window = sorted({result.answered for result in results})
    total = sum(result.answered for result in results)
    print(f"{addresses} addresses: {total} ids answered in one window ({elapsed:.1f} s), per address {per_window}")
    print(f"refusals: {sorted({result.refused_with for result in results})}")
    print(f"=> at most {total * 3600 // WINDOW_SECONDS} ids per hour from {addresses} addresses")


if __name__ == "__main__":
    _main(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
