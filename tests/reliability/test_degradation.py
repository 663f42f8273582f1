"""Requirement 21's paths with faults injected at run time (local_stack/faults.py), each ending
in recovery once the fault is cleared, without a restart, with nothing half-written."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.client import ProtocolClient, Stack, assert_error
from tests.e2e.stacks import started_stack

from .checks import assert_invariants, snapshot
from .conftest import RELIABILITY_PARAMETERS
from .figures import record
from .knob import clear_faults, fault_state, requests_to, set_faults
from .sessions import SETUP_REPLY_SECONDS, listener_in, speaker_with_session
from .wire import connect_from, handshake_status, new_address

pytestmark = pytest.mark.e2e

BREAKER_FAILURES = 5  # session_manager/store/circuit_breaker.py
BREAKER_RESET_SECONDS = 30


@pytest.fixture(scope="module")
def faulty_stack() -> Iterator[Stack]:
    """One stack for the paths below, in the file's order: each leaves the breakers it touched
    closed again, or (the breaker test, last) does not matter to anything after it."""
    with started_stack(RELIABILITY_PARAMETERS) as running:
        yield running


async def _join(client: ProtocolClient, session_id: str, language: str = "es") -> dict:
    return await client.request("joinSession", SETUP_REPLY_SECONDS, sessionId=session_id, targetLanguage=language)


def _log(stack: Stack) -> str:
    return Path(stack.info["logFile"]).read_text(encoding="utf-8", errors="replace")


async def test_post_to_connection_throttled_mid_fan_out_still_tells_every_listener_once(faulty_stack: Stack):
    stack = faulty_stack
    speaker, created = await speaker_with_session(stack)
    session_id = created["sessionId"]
    listeners = [client for client, _ in await asyncio.gather(*(listener_in(stack, session_id) for _ in range(12)))]
    # WHEN the first twelve posts of the end's fan-out are throttled (429): `after=1` lets the
    # speaker's reply through first (it is a post too, and 12 throttles would outlast its own
    # 3 attempts before the fan-out began)
    await set_faults(stack, "management throttle op=PostToConnection after=1 count=12")
    try:
        # (retried posts back off, and this machine is shared: the wait is generous)
        try:
            ended = await speaker.request("endSession", SETUP_REPLY_SECONDS)
        except AssertionError as missing:
            raise AssertionError(f"{missing}; the stack's log ends:\n{_log(stack)[-6000:]}") from None
        assert ended["type"] == "sessionEnded", ended
        # THEN every listener is told exactly once
        for heard in await asyncio.gather(*(listener.drain(5.0) for listener in listeners)):
            told = [message for message in heard if message["type"] == "sessionEnded"]
            assert len(told) == 1, heard
        throttled = (await fault_state(stack))["rules"][0]["injected"]
        assert throttled == 12, f"the fan-out met {throttled} throttles, not 12: the premise did not hold"
        record("fan-out throttled", listeners=len(listeners), posts_throttled=throttled)
    finally:
        await clear_faults(stack)
    assert_invariants(stack)


def _logged(stack: Stack, function: str, message: str) -> list[dict]:
    """The JSON log lines of one function with that message."""
    prefix = f"[{function}] "
    lines = (line[len(prefix) :] for line in _log(stack).splitlines() if line.startswith(prefix))
    return [
        entry
        for entry in map(json.loads, (line for line in lines if line.startswith("{")))
        if entry.get("message") == message
    ]


async def test_post_to_connection_throttled_throughout_ends_the_fan_out_with_a_clear_outcome(faulty_stack: Stack):
    stack = faulty_stack
    speaker, created = await speaker_with_session(stack)
    listeners = [
        client for client, _ in await asyncio.gather(*(listener_in(stack, created["sessionId"]) for _ in range(3)))
    ]
    before = len(_logged(stack, "EndSessionFunction", "notices incomplete"))
    # WHEN every post after the speaker's reply is throttled
    await set_faults(stack, "management throttle op=PostToConnection after=1")
    try:
        ended = await speaker.request("endSession", SETUP_REPLY_SECONDS)
        assert ended["type"] == "sessionEnded", ended
        # THEN the fan-out retries in rounds, then gives up and says so: each listener counted
        # failed, claimed and untold (within the function's time: it is not timed out)
        for _ in range(120):
            incomplete = _logged(stack, "EndSessionFunction", "notices incomplete")[before:]
            if incomplete:
                break
            await asyncio.sleep(0.5)
        else:
            raise AssertionError(f"no 'notices incomplete'; the stack's log ends:\n{_log(stack)[-4000:]}")
        (outcome,) = incomplete
        assert (outcome["failed"], outcome["claimedUntold"], outcome["delivered"]) == (3, 3, 0), outcome
        assert outcome["retryRounds"] >= 1 and outcome["reposted"] >= 3, outcome
        throttled = (await fault_state(stack))["rules"][0]["injected"]
        # 3 attempts per post, in at least two rounds
        assert throttled >= 3 * 3 * 2, throttled
        assert "EndSessionFunction: Task timed out" not in _log(stack)
        record(
            "fan-out throttled throughout", listeners=3, posts_throttled=throttled, retry_rounds=outcome["retryRounds"]
        )
    finally:
        await clear_faults(stack)
    for heard in await asyncio.gather(*(listener.drain(1.0) for listener in listeners)):
        assert [message for message in heard if message["type"] == "sessionEnded"] == [], heard
    assert_invariants(stack)


async def test_throttling_is_retried_then_answered_with_a_clear_error(faulty_stack: Stack):
    stack = faulty_stack
    _, created = await speaker_with_session(stack)
    session_id = created["sessionId"]
    client = await connect_from(stack, new_address())
    try:
        # GIVEN two throttles on the Sessions table: botocore's retries ride them out
        await set_faults(stack, "dynamodb throttle table=Sessions count=2")
        joined = await _join(client, session_id)
        assert joined["type"] == "sessionJoined", joined
        assert [rule["injected"] for rule in (await fault_state(stack))["rules"]] == [2]
        # GIVEN the table throttled on every request: retried, then SERVICE_UNAVAILABLE
        other = await connect_from(stack, new_address())
        await set_faults(stack, "dynamodb throttle table=Sessions")
        before = await requests_to(stack, "dynamodb", "Sessions")
        reply = await _join(other, session_id)
        attempts = await requests_to(stack, "dynamodb", "Sessions") - before
        assert_error(reply, "SERVICE_UNAVAILABLE", 503, session_id=session_id)
        assert attempts >= 2, f"not retried: {attempts} request(s)"
        record("throttled throughout", sessions_requests_for_one_join=attempts)
    finally:
        await clear_faults(stack)
    # THEN after clearing, the same connection joins, and only the first join holds a seat
    assert (await _join(other, session_id))["type"] == "sessionJoined"
    assert_invariants(stack)


async def test_rate_limits_access_denied_is_an_error_not_an_open_door(faulty_stack: Stack):
    stack = faulty_stack
    _, created = await speaker_with_session(stack)
    session_id = created["sessionId"]
    client = await connect_from(stack, new_address())
    since = created["timestamp"] - 1000
    await set_faults(stack, "dynamodb access-denied table=RateLimits")
    try:
        before = snapshot(stack, {session_id}, since)
        # WHEN the functions may not use RateLimits THEN a join is refused, a handshake too
        reply = await _join(client, session_id)
        # A deployment fault, not the client's: a 5xx with the generic message, never a seat.
        assert reply["type"] == "error" and reply["code"] in {"INTERNAL_ERROR", "SERVICE_UNAVAILABLE"}, reply
        assert "AccessDenied" not in reply["message"] and "RateLimits" not in reply["message"], reply
        assert await handshake_status(stack, new_address()) != 101
        assert snapshot(stack, {session_id}, since)["sessions"] == before["sessions"]
    finally:
        await clear_faults(stack)
    # THEN once permitted again, both work
    assert (await _join(client, session_id))["type"] == "sessionJoined"
    assert await handshake_status(stack, new_address()) == 101
    assert "permission" in _log(stack).lower() or "AccessDenied" in _log(stack)
    assert_invariants(stack)


async def test_rate_limits_down_skips_limiting_with_a_warning(faulty_stack: Stack):
    stack = faulty_stack
    _, created = await speaker_with_session(stack)
    session_id = created["sessionId"]
    await set_faults(stack, "dynamodb unavailable table=RateLimits")
    try:
        # WHEN RateLimits is down THEN handshakes and joins still work
        _, joined = await listener_in(stack, session_id)
        assert joined["type"] == "sessionJoined"
        assert await handshake_status(stack, new_address()) == 101
    finally:
        await clear_faults(stack)
    assert "rate limits unavailable" in _log(stack)
    # THEN after clearing, joins work as before
    await listener_in(stack, session_id)
    assert_invariants(stack)


async def test_translate_failing_still_captions_every_listener_marked_untranslated_then_recovers(
    faulty_stack: Stack,
):
    stack = faulty_stack
    speaker, created = await speaker_with_session(stack)  # speaks English
    session_id = created["sessionId"]
    listeners = await asyncio.gather(
        *(listener_in(stack, session_id, language) for language in ("es", "es", "fr", "en"))
    )
    translated = [
        (client, joined["targetLanguage"]) for client, joined in listeners if joined["targetLanguage"] != "en"
    ]
    english = next(client for client, joined in listeners if joined["targetLanguage"] == "en")
    # WHEN every TranslateText fails (500, retried by botocore, then given up)
    await set_faults(stack, "translate error op=TranslateText")
    try:
        accepted = await speaker.request("sendCaption", SETUP_REPLY_SECONDS, text="Grace and peace")
        assert accepted["type"] == "captionAccepted", accepted
        # THEN every listener still gets the line: the source text, marked untranslated (protocol.md)
        for client, language in translated:
            line = await client.expect("caption", SETUP_REPLY_SECONDS)
            assert (line["text"], line["language"], line.get("untranslated")) == ("Grace and peace", language, True)
        line = await english.expect("caption", SETUP_REPLY_SECONDS)
        assert (line["text"], line.get("untranslated")) == ("Grace and peace", None), line
        failed_requests = (await fault_state(stack))["rules"][0]["injected"]
        assert failed_requests >= 2, f"Translate was asked {failed_requests} time(s) for two languages"
    finally:
        await clear_faults(stack)
    # THEN with the fault cleared, the next line is translated again, without a restart
    accepted = await speaker.request("sendCaption", SETUP_REPLY_SECONDS, text="to you")
    assert accepted["type"] == "captionAccepted", accepted
    for client, language in translated:
        line = await client.expect("caption", SETUP_REPLY_SECONDS)
        assert (line["text"], line.get("untranslated")) == (f"[{language}] to you", None), line
    assert (await english.expect("caption", SETUP_REPLY_SECONDS))["text"] == "to you"
    record("translate down", listeners=len(listeners), translate_requests_failed=failed_requests)
    assert_invariants(stack)


async def _join_until_breaker_opens(stack: Stack, client: ProtocolClient, session_id: str) -> int:
    """Joins until BREAKER_FAILURES joins in a row answer without a request reaching the
    Sessions table; the number of joins it took."""
    quiet = 0
    for attempt in range(1, 40):
        before = await requests_to(stack, "dynamodb", "Sessions")
        reply = await _join(client, session_id)
        assert_error(reply, "SERVICE_UNAVAILABLE", 503, session_id=session_id)
        quiet = quiet + 1 if await requests_to(stack, "dynamodb", "Sessions") == before else 0
        if quiet >= BREAKER_FAILURES:
            return attempt
    raise AssertionError("the breaker never opened: every join still reached DynamoDB")


async def test_dynamodb_down_answers_service_unavailable_and_the_breaker_opens_then_closes(faulty_stack: Stack):
    stack = faulty_stack
    speaker, created = await speaker_with_session(stack)
    session_id = created["sessionId"]
    client = await connect_from(stack, new_address())
    await set_faults(stack, "dynamodb unavailable")
    try:
        # WHEN DynamoDB is down THEN joins are answered SERVICE_UNAVAILABLE, and the breaker
        # opens: later joins are refused without asking DynamoDB at all
        joins_to_open = await _join_until_breaker_opens(stack, client, session_id)
    finally:
        await clear_faults(stack)
    # THEN once DynamoDB is back, the breaker lets a trial through after its reset and closes
    joined, refused_after_clearing = None, 0
    for _ in range(int(BREAKER_RESET_SECONDS * 2.5)):
        reply = await _join(client, session_id)
        if reply["type"] == "sessionJoined":
            joined = reply
            break
        assert_error(reply, "SERVICE_UNAVAILABLE", 503, session_id=session_id)
        refused_after_clearing += 1
        await asyncio.sleep(1)
    assert joined is not None, "the breaker never closed"
    record("breaker", joins_until_open=joins_to_open, refused_joins_after_clearing=refused_after_clearing)
    status = await speaker.request("getSessionStatus")
    assert status["type"] == "sessionStatus" and status["listenerCount"] == 1, status
    assert_invariants(stack)


# ---------------------------------------------------------------- the JWKS, on a stack of its own


@pytest.fixture
def cold_stack() -> Iterator[Stack]:
    """The authorizer's key cache is per execution environment and lasts minutes: a JWKS outage
    shows on environments that have not fetched the keys yet, so this stack starts cold."""
    with started_stack(RELIABILITY_PARAMETERS) as running:
        yield running


async def test_jwks_down_refuses_speakers_while_listeners_still_join(cold_stack: Stack):
    stack = cold_stack
    token = stack.new_speaker_token()
    # GIVEN the JWKS down before any speaker has signed in
    await set_faults(stack, "jwks unavailable")
    try:
        # THEN a speaker is refused (401) and a listener still connects
        assert await handshake_status(stack, new_address(), token) == 401
        assert await handshake_status(stack, new_address()) == 101
        assert await requests_to(stack, "jwks") >= 1
    finally:
        await clear_faults(stack)
    # GIVEN a session made while the keys answered, then the keys down again
    speaker, created = await speaker_with_session(stack, token)
    await set_faults(stack, "jwks unavailable")
    try:
        # THEN listeners still join the existing session
        await asyncio.gather(*(listener_in(stack, created["sessionId"]) for _ in range(3)))
        assert (await speaker.request("getSessionStatus"))["listenerCount"] == 3
    finally:
        await clear_faults(stack)
    # THEN with the keys back, another speaker gets in
    assert await handshake_status(stack, new_address(), stack.new_speaker_token()) == 101
    assert_invariants(stack)
