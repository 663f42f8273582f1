"""End-to-end fixtures: local stacks (as few as possible, each start costs seconds) and a runner
for `async def` tests, so that every test speaks over real WebSockets on one event loop.

- `stack`: the template's defaults but a capacity of 20, shared by most tests.
- `small_stack`: durations of seconds, with the sweeper running every second, for refresh and
  warning replies, silence and expiry. Its clients heartbeat every second by default, and it is
  warmed up before use, since its tests count seconds.
- The rate-limit stack lives in test_rate_limits.py alone: every client here comes from
  127.0.0.1, so tight per-IP limits would break every other test of the stack that has them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from .client import Stack
from .runner import run_async_test, run_with_clients_closed
from .stacks import SHARED_PARAMETERS, SMALL_KEEPALIVE_SECONDS, SMALL_PARAMETERS, started_stack, warm_up

TEST_TIMEOUT_SECONDS = 90


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    with started_stack(SHARED_PARAMETERS) as running:
        yield running


@pytest.fixture(scope="session")
def small_stack() -> Iterator[Stack]:
    with started_stack(
        SMALL_PARAMETERS, keepalive=SMALL_KEEPALIVE_SECONDS, schedule_seconds=1, warm_environments=1
    ) as running:
        asyncio.run(run_with_clients_closed(warm_up(running), TEST_TIMEOUT_SECONDS))
        yield running


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run `async def` tests of this directory on a fresh event loop, then close their clients."""
    return run_async_test(pyfuncitem, TEST_TIMEOUT_SECONDS)
