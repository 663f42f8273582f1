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
