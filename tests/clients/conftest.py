"""Python client tests: `async def` tests run on a fresh event loop each, with a time limit, so a
missing message fails the test instead of hanging it. Local stacks are started once per module
that needs one (see client_stacks.py)."""

from __future__ import annotations

import asyncio
import inspect

import pytest

TEST_TIMEOUT_SECONDS = 120


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    arguments = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    asyncio.run(asyncio.wait_for(pyfuncitem.obj(**arguments), TEST_TIMEOUT_SECONDS))
    return True


@pytest.fixture(scope="session")
def stack():
    """The template's defaults, but a capacity of 3 and 3 failed joins a minute per address."""
    from client_stacks import DEFAULT_PARAMETERS, started

    with started(DEFAULT_PARAMETERS) as info:
        yield info


@pytest.fixture(scope="session")
def short_stack():
    """Refresh due after 1.2 s, heartbeats every second, sweeps every second."""
    from client_stacks import SHORT_PARAMETERS, started, warm_up

    with started(SHORT_PARAMETERS, schedule_seconds=1) as info:
        asyncio.run(asyncio.wait_for(warm_up(info), TEST_TIMEOUT_SECONDS))
        yield info
