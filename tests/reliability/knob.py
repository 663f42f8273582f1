"""The fault knob of a running local stack (local_stack/faults.py), from a test."""

from __future__ import annotations

import asyncio
from typing import Any

from local_stack.faults import control
from tests.e2e.client import Stack


async def set_faults(stack: Stack, rules: str) -> dict[str, Any]:
    return await asyncio.to_thread(control, stack.info["httpPort"], "PUT", rules)


async def clear_faults(stack: Stack) -> dict[str, Any]:
    return await asyncio.to_thread(control, stack.info["httpPort"], "DELETE")


async def fault_state(stack: Stack) -> dict[str, Any]:
    return await asyncio.to_thread(control, stack.info["httpPort"])


async def requests_to(stack: Stack, service: str, table_part: str = "") -> int:
    """How many requests the knob has seen for that service (and table), faulted or not."""
    counted = (await fault_state(stack))["requests"]
    return sum(
        count
        for key, count in counted.items()
        if key.startswith(service + " ") and table_part.lower() in key.split(" ", 2)[-1].lower()
    )
