"""SAM Schedule/ScheduleV2 events: each function is invoked at its rate with the event
EventBridge would send. One period passes before the first invocation, as with a new rule."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from local_stack.apigateway_events import scheduled_event
from local_stack.functions import Functions, InvocationError
from local_stack.template import FunctionDefinition, Schedule

logger = logging.getLogger(__name__)


class ScheduleRunner:
    def __init__(
        self,
        functions: Functions,
        definitions: list[FunctionDefinition],
        period_override_seconds: float | None = None,
    ) -> None:
        self._functions = functions
        self._definitions = definitions
        self._period_override = period_override_seconds
        self._loops: list[asyncio.Task[Any]] = []
        self._invocations: set[asyncio.Task[Any]] = set()

    def describe(self) -> list[str]:
        return [
            f"{definition.logical_id} every {self._period(schedule):g} s ({schedule.event_name})"
            for definition in self._definitions
            for schedule in definition.schedules
        ]

    def start(self) -> None:
        for definition in self._definitions:
            for schedule in definition.schedules:
                self._loops.append(asyncio.create_task(self._run(definition.logical_id, schedule)))

    def _period(self, schedule: Schedule) -> float:
        return self._period_override if self._period_override is not None else schedule.period_seconds

    async def _run(self, function_id: str, schedule: Schedule) -> None:
        loop = asyncio.get_running_loop()
        period = self._period(schedule)
        next_at = loop.time() + period
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            next_at += period
            # EventBridge does not wait for the previous invocation: neither do we.
            task = asyncio.create_task(self._invoke(function_id, schedule))
            self._invocations.add(task)
            task.add_done_callback(self._invocations.discard)

    async def _invoke(self, function_id: str, schedule: Schedule) -> None:
        try:
            await self._functions.invoke(function_id, scheduled_event(schedule.rule_name))
        except InvocationError as error:
            logger.warning("scheduled invocation of %s failed: %s", function_id, error)

    async def stop(self) -> None:
        for task in self._loops:
            task.cancel()
        for task in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._invocations:
            await asyncio.wait(list(self._invocations), timeout=60)
