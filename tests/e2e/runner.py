"""Runs the `async def` tests of a directory over real sockets: each on a fresh event loop, with a
time limit, and the clients it left open closed afterwards (tests/e2e and tests/reliability)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Coroutine
from typing import Any

import pytest

from .client import close_all_clients


async def run_with_clients_closed(coroutine: Coroutine[Any, Any, Any], timeout_seconds: float) -> None:
    try:
        await asyncio.wait_for(coroutine, timeout_seconds)
    finally:
        await close_all_clients()


def run_async_test(pyfuncitem: pytest.Function, timeout_seconds: float) -> bool | None:
    """For a `pytest_pyfunc_call` hook: True when it ran the test, None for a plain one."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    arguments = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    asyncio.run(run_with_clients_closed(pyfuncitem.obj(**arguments), timeout_seconds))
    return True
