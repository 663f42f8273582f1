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
    assert storm.figures.outcomes == {"sessionJoined": CAPACITY, "SESSION_FULL": LISTENERS - CAPACITY}
    assert storm.figures.violations == []
    assert storm.figures.extra["listenerCount"] == CAPACITY
    assert sum(told.joined_session_id is not None for told in storm.told.values()) == CAPACITY
    assert ended.outcomes["told once"] == CAPACITY
    assert ended.errors == {}
    assert ended.violations == []
