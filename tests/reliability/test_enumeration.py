"""Ids cannot be enumerated faster than the failed-join limit allows (defaults: 60 failed joins
per address and minute, protocol.md), measured over real sockets."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.client import Stack, assert_error
from tests.e2e.stacks import started_stack

from .checks import assert_invariants
from .conftest import RELIABILITY_PARAMETERS
from .enumeration import guess_until_refused, measure, unknown_id, wait_for_a_fresh_window
from .figures import record
from .sessions import speaker_with_session
from .wire import connect_from, new_address

pytestmark = pytest.mark.e2e

FAILED_JOINS_PER_MIN = 60  # the template's default, which this stack keeps


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """A stack of its own: guessing fills RateLimits with this module's windows, which the
    invariant checker reads, and must not be any other test's business."""
    with started_stack(RELIABILITY_PARAMETERS) as running:
        yield running


async def test_one_address_learns_about_exactly_the_failed_join_limit_of_ids_per_window(stack: Stack):
    _, created = await speaker_with_session(stack)
    address = new_address()
    await wait_for_a_fresh_window()
    # WHEN one address guesses unknown ids as fast as it can
    guesses = await guess_until_refused(stack, address)
    # THEN it gets exactly the limit's answers, then RATE_LIMIT_EXCEEDED until the window ends...
    assert FAILED_JOINS_PER_MIN <= guesses.answered <= FAILED_JOINS_PER_MIN + guesses.straddling, guesses
    assert max(guesses.answered_per_window.values()) <= FAILED_JOINS_PER_MIN + guesses.straddling, guesses
    assert guesses.refused_with == "RATE_LIMIT_EXCEEDED" and 1 <= guesses.retry_after <= 60, guesses
    # ...even for a real id, from a new connection: a guesser must not learn by success either
    again = await connect_from(stack, address)
    reply = await again.request("joinSession", sessionId=created["sessionId"], targetLanguage="es")
    assert_error(reply, "RATE_LIMIT_EXCEEDED", 429, session_id=created["sessionId"])
    reply = await again.request(
        "refreshConnection", sessionId=created["sessionId"], role="listener", targetLanguage="es"
    )
    assert_error(reply, "RATE_LIMIT_EXCEEDED", 429, session_id=created["sessionId"])
    # ...while another address is not slowed down
    other = await connect_from(stack, new_address())
    joined = await other.request("joinSession", sessionId=created["sessionId"], targetLanguage="es")
    assert joined["type"] == "sessionJoined", joined
    assert_invariants(stack)


async def test_listener_refresh_guesses_share_the_same_budget(stack: Stack):
    address = new_address()
    await wait_for_a_fresh_window()
    client = await connect_from(stack, address)
    answers: dict[int, int] = {}  # per window, by the server's reply timestamps
    for attempt in range(4 * FAILED_JOINS_PER_MIN):
        fields = {"sessionId": unknown_id(), "targetLanguage": "es"}
        if attempt % 2:
            reply = await client.request("refreshConnection", 90.0, role="listener", **fields)
        else:
            reply = await client.request("joinSession", 90.0, **fields)
        window = reply["timestamp"] // 60_000
        if reply.get("code") != "SESSION_NOT_FOUND":
            assert_error(reply, "RATE_LIMIT_EXCEEDED", 429)
            break
        answers[window] = answers.get(window, 0) + 1
    assert answers.get(window) == FAILED_JOINS_PER_MIN and max(answers.values()) <= FAILED_JOINS_PER_MIN, answers
    assert_invariants(stack)


def join_limits_skipped(stack: Stack) -> int:
    """How often the join limit failed open so far: a RateLimits request that timed out on a
    starved machine is skipped with a WARN (session_manager/ratelimit.py), and its guess is
    answered without being counted, by design."""
    log = Path(stack.info["logFile"]).read_text(encoding="utf-8", errors="replace")
    return sum(
        1
        for line in log.splitlines()
        if "rate limits unavailable" in line and re.search(r'"(window|policy)": ?"join"', line)
    )


async def test_many_addresses_each_get_the_same_budget_and_no_more(stack: Stack):
    # The sustained figures (ids per hour from 1 and 100 addresses) come from enumeration.py run on
    # its own (docs/reliability.md); here a handful of addresses at once shows the budget is per
    # address and exact under load.
    skipped_before = join_limits_skipped(stack)
    results = await measure(stack, addresses=6)
    per_window = sorted({count for result in results for count in result.answered_per_window.values()})
    record("enumeration", addresses=6, answered_before_refusal=[r.answered for r in results], per_window=per_window)
    # Exactly the budget, but for a guess the limiter could not count because RateLimits did not
    # answer in time (each one logged), and one answered across a window's edge, which a reply's
    # timestamp may place in the window after the one that counted it: never fewer, never more.
    skipped = join_limits_skipped(stack) - skipped_before
    straddling = sum(result.straddling for result in results)
    assert all(result.answered >= FAILED_JOINS_PER_MIN for result in results), results
    over = sum(result.answered for result in results) - 6 * FAILED_JOINS_PER_MIN
    assert over <= skipped + straddling, (skipped, results)
    assert max(per_window) <= FAILED_JOINS_PER_MIN + skipped + straddling, results
    assert {result.refused_with for result in results} == {"RATE_LIMIT_EXCEEDED"}
    await asyncio.sleep(0)
    assert_invariants(stack)


async def test_a_hundred_addresses_guess_on_budgets_of_their_own_while_a_spent_one_stays_refused(stack: Stack):
    """What 100 addresses buy a guesser: 100 budgets, no more (the sustained rate is
    enumeration.py's; a hundred full budgets in one window are more than this machine answers)."""
    spent = new_address()
    await wait_for_a_fresh_window(margin_seconds=40)
    spending = await guess_until_refused(stack, spent)
    assert FAILED_JOINS_PER_MIN <= spending.answered <= FAILED_JOINS_PER_MIN + spending.straddling, spending
    # WHEN 100 other addresses guess at once
    guessers = await asyncio.gather(*(connect_from(stack, new_address()) for _ in range(100)))
    replies = await asyncio.gather(
        *(
            client.request("joinSession", 90.0, sessionId=unknown_id(), targetLanguage="es")
            for client in guessers
            for _ in range(2)
        )
    )
    # THEN each is answered about the id, none draws on another's budget...
    codes = sorted({reply.get("code", reply["type"]) for reply in replies})
    assert codes == ["SESSION_NOT_FOUND"], codes
    # ...and the spent address is still refused, in the window it spent (by the server's clock)
    again = await connect_from(stack, spent)
    reply = await again.request("joinSession", 90.0, sessionId=unknown_id(), targetLanguage="es")
    windows = {reply["timestamp"] // 60_000 for reply in replies} | {reply["timestamp"] // 60_000}
    if len(windows) == 1:
        assert_error(reply, "RATE_LIMIT_EXCEEDED", 429)
    record("enumeration", addresses=100, guesses=len(replies), answered=len(replies), windows=len(windows))
    assert_invariants(stack)
