"""Issue 13's truth check, at a size `make test` affords: 100 listeners join one 80-seat session,
20 in flight, over real sockets; afterwards every phone told `sessionJoined` holds a seat, every
phone told an error holds none, and `listenerCount` equals the seats (local_stack/invariants.py).
Then the speaker ends the session and every seated phone hears it exactly once."""

from __future__ import annotations

import asyncio

from benchmarks.__main__ import BENCH_PARAMETERS
from benchmarks.scenarios import BenchStack, fan_out, join_storm
from local_stack.testing import running_stack

LISTENERS = 100
IN_FLIGHT = 20
CAPACITY = 80


def test_every_phone_of_a_join_storm_is_told_the_truth():
    parameters = {**BENCH_PARAMETERS, "MAX_LISTENERS_PER_SESSION": str(CAPACITY)}
    with running_stack(env_vars={"Parameters": parameters}, warm_environments=1) as info:
        stack = BenchStack(info)

        async def storm_then_end():
            storm = await join_storm(stack, LISTENERS, IN_FLIGHT)
            ended = await fan_out(stack, storm)
            for phone in storm.listeners:
                await phone.close()
            return storm, ended

        storm, ended = asyncio.run(storm_then_end())
    print(f"\njoin storm: {storm.figures.outcomes}, p95 {storm.figures.as_json()['latency_ms']['p95']:.0f} ms")
    # The truth first: whatever each phone was told, the tables agree with it.
    assert storm.figures.violations == []
    # Every seat is taken and every other phone told the room is full, but for a join the server
    # could not finish in time on a starved machine: it answers SERVICE_UNAVAILABLE and holds no
    # seat (decision 56), and the seat it held for a moment may have turned a phone away meanwhile.
    outcomes = dict(storm.figures.outcomes)
    unavailable = outcomes.pop("SERVICE_UNAVAILABLE", 0)
    assert unavailable <= 2, storm.figures.outcomes  # a rare timeout, not a pattern
    joined = outcomes.get("sessionJoined", 0)
    assert outcomes == {"sessionJoined": joined, "SESSION_FULL": LISTENERS - joined - unavailable}
    assert CAPACITY - unavailable <= joined <= CAPACITY, storm.figures.outcomes
    assert storm.figures.extra["listenerCount"] == joined
    assert sum(told.joined_session_id is not None for told in storm.told.values()) == joined
    assert ended.outcomes["told once"] == joined
    assert ended.errors == {}
    assert ended.violations == []
