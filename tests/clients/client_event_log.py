"""Collects a client's events as they happen, so tests can wait for one and assert on them all."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from live_session_client import CaptionReceived, ClientState, Notice, NoticeKind, StateChanged

WAIT_SECONDS = 20.0


class EventLog:
    def __init__(self, client: Any) -> None:
        self.client = client
        self.events: list[Any] = []
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._collect())

    async def _collect(self) -> None:
        async for event in self.client.events():
            self.events.append(event)
            async with self._changed:
                self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[Any], bool], timeout: float = WAIT_SECONDS) -> Any:
        """The first event (from the start) for which predicate holds."""

        def found() -> Any:
            return next((event for event in self.events if predicate(event)), None)

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: found() is not None), timeout)
            except TimeoutError:
                raise AssertionError(f"no such event within {timeout} s; events: {self.describe()}") from None
        return found()

    async def state(self, state: ClientState, timeout: float = WAIT_SECONDS) -> StateChanged:
        return await self.wait_for(lambda e: isinstance(e, StateChanged) and e.state == state, timeout)

    async def notice(self, kind: NoticeKind, timeout: float = WAIT_SECONDS) -> Notice:
        return await self.wait_for(lambda e: isinstance(e, Notice) and e.kind == kind, timeout)

    async def captions_until(self, count: int, timeout: float = WAIT_SECONDS) -> list[int]:
        await self.wait_for(lambda e: len(self.caption_seqs()) >= count, timeout)
        return self.caption_seqs()

    def caption_seqs(self) -> list[int]:
        return [event.caption.seq for event in self.events if isinstance(event, CaptionReceived)]

    def states(self) -> list[ClientState]:
        return [event.state for event in self.events if isinstance(event, StateChanged)]

    def notices(self, kind: NoticeKind) -> list[Notice]:
        return [event for event in self.events if isinstance(event, Notice) and event.kind == kind]

    def describe(self) -> list[str]:
        return [f"{type(event).__name__}: {event.sentence}" for event in self.events]

    async def finished(self, timeout: float = WAIT_SECONDS) -> list[Any]:
        """Every event, once the client reached a terminal state."""
        await asyncio.wait_for(self._task, timeout)
        return self.events
