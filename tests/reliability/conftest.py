"""Reliability fixtures: one local stack shared by the socket tests (started from template.yaml
exactly as `make run` starts it), and a runner for `async def` tests on a fresh event loop.

Every client of these tests comes from its own loopback address (wire.new_address), so that the
per-IP limits one test provokes never reach another."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.e2e.client import Stack
from tests.e2e.runner import run_async_test
from tests.e2e.stacks import started_stack

TEST_TIMEOUT_SECONDS = 280
# Small enough that a race fills it in seconds on a shared 2-core machine; `make bench` runs the
# races at full size (RACE_CAPACITY=500 RACE_JOINERS=1000 RACE_ADDRESSES=100).
CAPACITY = int(os.environ.get("RACE_CAPACITY", "30"))
RELIABILITY_PARAMETERS = {
    "MAX_LISTENERS_PER_SESSION": str(CAPACITY),
    "SPEAKER_RECONNECT_GRACE_SECONDS": "5",
}


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    with started_stack(RELIABILITY_PARAMETERS, schedule_seconds=1, warm_environments=1) as running:
        yield running


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run `async def` tests of this directory on a fresh event loop, then close their clients."""
    return run_async_test(pyfuncitem, TEST_TIMEOUT_SECONDS)
