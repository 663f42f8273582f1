"""How many session ids an attacker can test, measured over real sockets.

`measure(stack, addresses)` has every address guess unknown ids as fast as the stack answers,
within one rate-limit window, and counts the guesses that got an answer about the id
(`SESSION_NOT_FOUND`) before the first `RATE_LIMIT_EXCEEDED`.

`sustain(stack, addresses, windows)` is the attacker who keeps going: every address guesses for
whole windows, waits out each refusal's `retryAfter` and goes on, and every answer is counted by
the window of the server's reply timestamp. Ids per hour are the answers in the full windows,
per window, times 60. Run on its own (the template's defaults, every limit included) for the
figures of docs/reliability.md:

    .venv-py3.13/bin/python -m tests.reliability.enumeration 1 --windows 3
    .venv-py3.13/bin/python -m tests.reliability.enumeration 100 --windows 3
    .venv-py3.13/bin/python -m tests.reliability.enumeration 100 --windows 2 --failed-joins-per-min 20
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from websockets.exceptions import ConnectionClosed

from tests.e2e.client import ProtocolClient, Stack

from .wire import connect_from, new_address

WINDOW_SECONDS = 60


def _unknown_ids() -> Iterator[str]:
    """Well-formed ids no session can have (no word list holds these words), without end:
    tests/e2e's `unknown_session_id` has 899 and then makes malformed ones, which a sustained
    guesser goes through in a minute (and which are answered INVALID_SESSION_ID, not about an id)."""
    for serial in itertools.count():
        suffix = ""
        while True:
            serial, letter = divmod(serial, 26)
            suffix += chr(ord("a") + letter)
            if not serial:
                break
        for number in range(100, 1000):
            yield f"unguessed-nowhere{suffix}-{number}"


unknown_id = functools.partial(next, _unknown_ids())


@dataclass(frozen=True)
class Guesses:
    answered: int  # guesses that learned something about an id, in the window of the refusal
    refused_with: str  # the code of the first refused guess
    retry_after: int
    answered_per_window: dict[int, int]  # window (minute since the epoch, the server's clock) -> answers
    # Answers sent in one window and answered in the next: the limiter counted each in one of the
    # two (it reads the clock in between), so a window's answers may exceed its count by these.
    straddling: int = 0


async def wait_for_a_fresh_window(margin_seconds: float = 20.0) -> None:
    """Windows are whole minutes (session_manager/ratelimit.py): start early in one, so that a
    burst of guesses is counted in a single window."""
    into = time.time() % WINDOW_SECONDS
    if into > WINDOW_SECONDS - margin_seconds:
        await asyncio.sleep(WINDOW_SECONDS - into + 0.2)


async def guess_until_refused(stack: Stack, address: str, limit: int = 10_000) -> Guesses:
    """Guesses until refused. Answers are counted by the window of the server's reply timestamp:
    on a slow machine a burst may spill into the next window, which then has a budget of its own.
    The refusal belongs to the window it was sent in (the stack shares this machine's clock): a
    window is full only of answers already received, so a refusal cannot be decided in a later
    window than its sending."""
    client = await connect_from(stack, address)
    per_window: dict[int, int] = {}
    straddling = 0
    try:
        for _ in range(limit):
            sent = int(time.time()) // WINDOW_SECONDS
            reply = await client.request("joinSession", 90.0, sessionId=unknown_id(), targetLanguage="es")
            window = int(reply["timestamp"]) // 1000 // WINDOW_SECONDS
            if reply.get("code") != "SESSION_NOT_FOUND":
                refused_with, retry_after = str(reply.get("code")), int(reply.get("retryAfter", 0))
                return Guesses(per_window.get(sent, 0), refused_with, retry_after, per_window, straddling)
            per_window[window] = per_window.get(window, 0) + 1
            straddling += window != sent
        return Guesses(0, "none", 0, per_window, straddling)
    finally:
        await client.close()


async def measure(stack: Stack, addresses: int) -> list[Guesses]:
    await wait_for_a_fresh_window()
    return list(await asyncio.gather(*(guess_until_refused(stack, new_address()) for _ in range(addresses))))


@dataclass(frozen=True)
class Sustained:
    addresses: int
    full_windows: tuple[int, ...]  # windows (minutes since the epoch) the run covered whole
    answered: Counter[tuple[str, int]]  # (address, window) -> ids answered
    refusals: int
    other_replies: Counter[str]  # anything but SESSION_NOT_FOUND and RATE_LIMIT_EXCEEDED, by code

    def answered_in_full_windows(self) -> int:
        return sum(count for (_, window), count in self.answered.items() if window in self.full_windows)

    def most_per_address_and_window(self) -> int:
        return max(self.answered.values(), default=0)

    def ids_per_hour(self) -> int:
        return self.answered_in_full_windows() * 3600 // WINDOW_SECONDS // max(1, len(self.full_windows))


async def _guess_on(
    stack: Stack, address: str, until: float, answered: Counter[tuple[str, int]], other: Counter[str]
) -> int:
    """Guesses from one address until `until`; a refusal is waited out on a new connection (a
    connection that only waits would be closed as silent), and a connection the sweeper closed
    as silent (guesses are not heartbeats) is replaced. The refusals it got."""
    refusals = 0
    client: ProtocolClient | None = None
    try:
        while time.time() < until:
            client = client or await connect_from(stack, address)
            try:
                reply = await client.request("joinSession", 90.0, sessionId=unknown_id(), targetLanguage="es")
            except (AssertionError, ConnectionClosed) as lost:
                if isinstance(lost, AssertionError) and client.closed is None:
                    raise  # no reply at all: not a closed connection
                other["connection closed, replaced"] += 1
                client = None
                continue
            code = str(reply.get("code", reply.get("type")))
            if code == "SESSION_NOT_FOUND":
                answered[address, int(reply["timestamp"]) // 1000 // WINDOW_SECONDS] += 1
            elif code == "RATE_LIMIT_EXCEEDED":
                refusals += 1
                await client.close()
                client = None
                await asyncio.sleep(min(float(reply.get("retryAfter", 1)), max(0.0, until - time.time())))
            else:
                other[code] += 1
        return refusals
    finally:
        if client is not None:
            await client.close()


async def sustain(stack: Stack, addresses: int, windows: int) -> Sustained:
    """Every address guesses from the start of the next window for `windows` whole windows."""
    start = (time.time() // WINDOW_SECONDS + 1) * WINDOW_SECONDS
    await asyncio.sleep(start - time.time())
    until = start + windows * WINDOW_SECONDS
    answered: Counter[tuple[str, int]] = Counter()
    other: Counter[str] = Counter()
    refusals = await asyncio.gather(
        *(_guess_on(stack, new_address(), until, answered, other) for _ in range(addresses))
    )
    first = int(start) // WINDOW_SECONDS
    return Sustained(addresses, tuple(range(first, first + windows)), answered, sum(refusals), other)


def _main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.enumeration", description=__doc__)
    parser.add_argument("addresses", type=int, nargs="?", default=1)
    parser.add_argument("--windows", type=int, default=0, help="sustain the guessing for this many whole minutes")
    parser.add_argument(
        "--failed-joins-per-min",
        type=int,
        help="RATE_LIMIT_FAILED_JOINS_PER_MIN instead of the template's default (a limit this machine can reach)",
    )
    arguments = parser.parse_args()
    from tests.e2e.stacks import started_stack

    limit = arguments.failed_joins_per_min
    parameters = {"RATE_LIMIT_FAILED_JOINS_PER_MIN": str(limit)} if limit else None
    with started_stack(parameters) as stack:  # else the template's defaults, every limit included
        if arguments.windows:
            run = asyncio.run(sustain(stack, arguments.addresses, arguments.windows))
            windows = len(run.full_windows)
            answered = run.answered_in_full_windows()
            print(f"{run.addresses} addresses, {windows} whole windows: {answered} ids answered")
            print(f"most ids answered to one address in one window: {run.most_per_address_and_window()}")
            print(f"refusals (RATE_LIMIT_EXCEEDED): {run.refusals}; other replies: {dict(run.other_replies)}")
            print(f"=> {run.ids_per_hour()} ids per hour from {run.addresses} addresses, as measured")
            return
        started = time.monotonic()
        results = asyncio.run(measure(stack, arguments.addresses))
        elapsed = time.monotonic() - started
    per_window = sorted({count for result in results for count in result.answered_per_window.values()})
    total = sum(result.answered for result in results)
    print(f"{arguments.addresses} addresses: {total} ids answered in the refusals' windows ({elapsed:.1f} s)")
    print(f"answers per address and window: {per_window}")
    print(f"refusals: {sorted({result.refused_with for result in results})}")
    print(f"=> at most {total * 3600 // WINDOW_SECONDS} ids per hour from {arguments.addresses} addresses")


if __name__ == "__main__":
    _main()
