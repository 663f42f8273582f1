"""The local stacks the end-to-end tests run against, started from template.yaml itself."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from websockets.exceptions import ConnectionClosed

from .client import Stack

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"

# The shared stack runs the template's defaults but for capacity: 20 seats fill in a second, 500
# would not. Nothing else on it depends on the capacity. Its speakers have no reconnect grace, so
# a speaker's close ends the session at once (the grace has its own stack, GRACE_PARAMETERS).
CAPACITY = 20
SHARED_PARAMETERS = {"MAX_LISTENERS_PER_SESSION": str(CAPACITY), "SPEAKER_RECONNECT_GRACE_SECONDS": "0"}

# A speaker who drops may come back within 10 s (the stack is warmed up first, but on a starved
# 2-core machine a reconnect and its refresh still took more than 8); the sweeper runs every second.
GRACE_SECONDS = 10
GRACE_PARAMETERS = {"SPEAKER_RECONNECT_GRACE_SECONDS": str(GRACE_SECONDS)}

# Every duration of the small stack, in seconds: refresh due at 1.2, warning at 1.8, the
# "120-minute" close at 6; silent for 4 s is closed; a session lives 21.6 s (time enough
# for a test to seat its room and refresh before the end on a starved machine).
SMALL_PARAMETERS = {
    "CONNECTION_REFRESH_MINUTES": "0.02",
    "CONNECTION_WARNING_MINUTES": "0.03",
    "CONNECTION_MAX_MINUTES": "0.1",
    "HEARTBEAT_INTERVAL_SECONDS": "1",
    "HEARTBEAT_TIMEOUT_SECONDS": "4",
    "RATE_LIMIT_HEARTBEATS_PER_MIN": "100",
    "SESSION_MAX_DURATION_HOURS": "0.006",
    "SPEAKER_RECONNECT_GRACE_SECONDS": "0",
}
SMALL_KEEPALIVE_SECONDS = 1.0


@contextmanager
def started_stack(
    parameters: dict[str, str] | None = None, *, keepalive: float | None = None, **options: Any
) -> Iterator[Stack]:
    from local_stack.testing import running_stack

    env_vars = {"Parameters": parameters} if parameters else None
    with running_stack(template=str(TEMPLATE), env_vars=env_vars, **options) as info:
        yield Stack(info, keepalive=keepalive)


async def warm_up(stack: Stack, rounds: int = 3) -> None:
    """One round of every action, so that each function has a warm execution environment before
    tests that count seconds (a cold start costs a second or more on a small machine). While
    cold, the stack may be slow enough for the sweeper to close a connection mid-round, leaving
    the rest of the functions cold: then a fresh round, up to `rounds`. Best effort."""
    for _ in range(rounds):
        with contextlib.suppress(AssertionError, ConnectionClosed):
            speaker = await stack.connect(stack.new_speaker_token())
            listener = await stack.connect()
            created = await speaker.request("createSession", sourceLanguage="en")
            await listener.request("joinSession", sessionId=created["sessionId"], targetLanguage="es")
            moved = await stack.connect()
            await moved.request(
                "refreshConnection", sessionId=created["sessionId"], role="listener", targetLanguage="es"
            )
            await listener.close()
            listener = moved
            await speaker.request("getSessionStatus")
            await listener.request("leaveSession")
            await speaker.request("endSession")
            await speaker.close()
            await listener.close()
            return
