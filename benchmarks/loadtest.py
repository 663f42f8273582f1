"""`make loadtest URL=wss://... TOKEN=...`: the join storm, a heartbeat round and the `sessionEnded`
fan-out against a deployed stage, bounded in count and in time, stopping by itself.

TOKEN is a speaker's Cognito ID token (the session is created with it and ended at the end).
What to watch while it runs, and what to do, is in docs/benchmarks.md ("Against a deployed stage")."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from typing import Any

from benchmarks.figures import percentiles
from benchmarks.phones import HandshakeRefused, Phone, outcome_of

MAX_LISTENERS = 1000  # one session's ceiling (MaxListenersPerSession's largest sensible value)
MAX_SECONDS = 600


async def _run(url: str, token: str, listeners: int, in_flight: int, deadline: float) -> dict[str, Any]:
    speaker = await Phone.connect(url, token, open_timeout=30)
    created = await speaker.request("createSession", sourceLanguage="en", timeout=30)
    if created.get("type") != "sessionCreated":
        raise SystemExit(f"loadtest: the speaker could not create a session: {json.dumps(created)}")
    session_id = created["sessionId"]
    gate = asyncio.Semaphore(in_flight)
    phones: list[Phone] = []
    join_ms: list[float] = []
    outcomes: Counter[str] = Counter()

    async def join(index: int) -> None:
        async with gate:
            if time.monotonic() > deadline:
                outcomes["not started: time limit"] += 1
                return
            started = time.perf_counter()
            try:
                phone = await Phone.connect(url, open_timeout=30)
            except HandshakeRefused as refused:
                outcomes[f"handshake HTTP {refused.status}"] += 1
                return
            except (OSError, TimeoutError) as error:
                outcomes[f"handshake {type(error).__name__}"] += 1
                return
            phones.append(phone)
            try:
                reply = await phone.request("joinSession", sessionId=session_id, targetLanguage="es", timeout=30)
            except (ConnectionError, TimeoutError) as error:
                outcomes[type(error).__name__] += 1
                return
            join_ms.append((time.perf_counter() - started) * 1000)
            outcomes[outcome_of(reply)] += 1

    started = time.perf_counter()
    await asyncio.gather(*(join(index) for index in range(listeners)))
    storm_seconds = time.perf_counter() - started
    heartbeat_ms: list[float] = []

    async def beat(phone: Phone) -> None:
        async with gate:
            if time.monotonic() > deadline:
                return
            beat_started = time.perf_counter()
            try:
                await phone.request("heartbeat", timeout=30)
            except (ConnectionError, TimeoutError):
                outcomes["heartbeat unanswered"] += 1
                return
            heartbeat_ms.append((time.perf_counter() - beat_started) * 1000)

    await asyncio.gather(*(beat(phone) for phone in phones))
    status = await speaker.request("getSessionStatus", timeout=30)
    ended_at = time.perf_counter()
    await speaker.end_session(timeout=30)
    arrivals = await asyncio.gather(*(phone.wait_for_notice("sessionEnded", 30) for phone in phones))
    fan_out_ms = [(arrived - ended_at) * 1000 for arrived in arrivals if arrived is not None]
    await asyncio.gather(*(phone.close() for phone in phones), speaker.close())
    return {
        "session": session_id,
        "outcomes": dict(outcomes),
        "listenerCount_after_storm": status.get("listenerCount"),
        "join_ms": percentiles(join_ms),
        "joins_per_second": len(join_ms) / storm_seconds if storm_seconds else None,
        "heartbeat_ms": percentiles(heartbeat_ms),
        "fan_out_ms": {**percentiles(fan_out_ms), "last": max(fan_out_ms, default=None)},
        "sessionEnded_missing": sum(arrived is None for arrived in arrivals),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loadtest", description=__doc__)
    parser.add_argument("--url", required=True, help="the stage's wss:// URL")
    parser.add_argument("--token", required=True, help="a speaker's Cognito ID token")
    parser.add_argument("--listeners", type=int, default=100)
    parser.add_argument("--in-flight", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=120, help="stop starting new work after this long")
    arguments = parser.parse_args(argv)
    if not arguments.url.startswith(("wss://", "ws://")):
        parser.error(f"--url must be a wss:// URL, got {arguments.url!r}")
    if not 1 <= arguments.listeners <= MAX_LISTENERS:
        parser.error(f"--listeners must be 1 to {MAX_LISTENERS}")
    if not 1 <= arguments.in_flight <= 200:
        parser.error("--in-flight must be 1 to 200")
    if not 0 < arguments.seconds <= MAX_SECONDS:
        parser.error(f"--seconds must be above 0 and at most {MAX_SECONDS}")
    deadline = time.monotonic() + arguments.seconds

    async def bounded() -> dict[str, Any]:
        # The hard stop: time for the work, plus the fan-out and the goodbyes.
        return await asyncio.wait_for(
            _run(arguments.url, arguments.token, arguments.listeners, arguments.in_flight, deadline),
            arguments.seconds + 90,
        )

    try:
        result = asyncio.run(bounded())
    except TimeoutError:
        print("loadtest: stopped at its time limit", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    bad = {key: n for key, n in result["outcomes"].items() if key not in ("sessionJoined", "SESSION_FULL")}
    return 1 if bad or result["sessionEnded_missing"] else 0


if __name__ == "__main__":
    sys.exit(main())
