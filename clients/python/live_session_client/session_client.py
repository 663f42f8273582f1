"""What speakers and listeners share: one live link at a time, make-before-break refresh,
reconnect with backoff after a drop, and the events a person sees.

A refresh (`connectionRefreshRequired`) opens a new link while the old one keeps working, sends
`refreshConnection` on it, and closes the old link only after `connectionRefreshComplete`. A drop
(the current link closed without this client closing it, or a heartbeat went unanswered) waits a
jittered backoff, opens a new link and asks the subclass to get back into the session (listener:
joinSession with lastSeq; speaker: refreshConnection, which reclaims the session within the
server's grace period). Both paths are one loop, `_replace_link`: a refresh whose old link dies
carries on as a reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from live_session_client.backoff import ReconnectPolicy
from live_session_client.errors import (
    ClientStoppedError,
    ConnectFailedError,
    LinkClosedError,
    LiveSessionError,
    NoAnswerError,
    RequestRefusedError,
)
from live_session_client.events import (
    TERMINAL_STATES,
    ClientEvent,
    ClientState,
    Notice,
    NoticeKind,
    StateChanged,
)
from live_session_client.link import Link, LinkTimings, address_without_token, check_url
from live_session_client.protocol import RETRYABLE_CODES, ErrorCode, MessageType
from live_session_client.sentences import describe, explain_end, explain_error


@dataclass(frozen=True)
class ClientOptions:
    timings: LinkTimings = field(default_factory=LinkTimings)
    reconnect: ReconnectPolicy = field(default_factory=ReconnectPolicy)
    # How long a caption that arrives ahead of a gap waits for the missing one (captions.py).
    reorder_window_seconds: float = 1.0


# The `reason` of the ENDED state when the session was found gone on reconnecting.
ENDED_WHILE_AWAY = "endedWhileAway"

# How long a refresh answered SESSION_NOT_FOUND waits for the old link's `sessionEnded` while
# that link is still open. The server ends the session first and tells its listeners after
# (end_session in session_manager/speaker.py), so a refresh that reaches it in between finds the
# session gone while the notice is still on its way to the old link, which never went away: the
# client then ends with the notice's reason, as any connected listener does. 2 s is four times
# the 0.5 s that the fan-out to the last of 500 listeners is meant to take (docs/benchmarks.md),
# and short enough that nobody stares long at a session that is over when the notice never comes.
END_NOTICE_GRACE_SECONDS = 2.0


class Rejoin:
    """How a subclass gets a new link into the session: the request and what answers it."""

    def __init__(self, action: Any, answer: MessageType, fields: dict[str, Any]) -> None:
        self.action, self.answer, self.fields = action, answer, fields


RETRY, STOP = object(), object()


class SessionClient:
    def __init__(self, url: str, options: ClientOptions | None = None) -> None:
        self.url = check_url(url)
        self.options = options or ClientOptions()
        self.session_id: str | None = None
        self._state = ClientState.IDLE
        self._state_changed = asyncio.Condition()
        self._events: asyncio.Queue[ClientEvent] = asyncio.Queue()
        self._current: Link | None = None
        self._links: set[Link] = set()
        self._replacing: asyncio.Task[None] | None = None
        self._switch_lock = asyncio.Lock()
        self._background: set[asyncio.Task[Any]] = set()
        self.end_reason: str | None = None
        self.refresh_count = 0
        self.reconnect_count = 0

    # ------------------------------------------------------------ what users read

    @property
    def state(self) -> ClientState:
        return self._state

    async def events(self) -> AsyncIterator[ClientEvent]:
        """Every event in order; ends after the event that puts the client in a terminal state."""
        while True:
            event = await self._events.get()
            yield event
            if isinstance(event, StateChanged) and event.state.terminal:
                return

    async def wait_for_state(self, *states: ClientState, timeout: float | None = None) -> ClientState:
        async def reached() -> ClientState:
            async with self._state_changed:
                await self._state_changed.wait_for(lambda: self._state in states)
                return self._state

        return await asyncio.wait_for(reached(), timeout)

    async def close(self) -> None:
        """Stop everything at once, without telling the server (it sees a disconnect)."""
        if not self._state.terminal:
            self._set_state(ClientState.LEFT, describe("left"))
        await self._shutdown()

    async def __aenter__(self) -> SessionClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ------------------------------------------------------------ for subclasses

    def _rejoin(self, after_drop: bool) -> Rejoin:
        raise NotImplementedError

    def _token(self) -> str | None:
        return None

    async def _refresh_token(self) -> bool:
        """Get a fresh token for the next link; False when there is no way to."""
        return False

    def _on_session_message(self, link: Link, message: dict[str, Any]) -> None:
        """Messages only a listener or only a speaker understands."""

    def _on_rejoined(self, answer: dict[str, Any]) -> None:
        """The answer to a rejoin, before the client is live again."""

    def _after_rejoin(self, link: Link, answer: dict[str, Any]) -> None:
        """The answer to a join or rejoin on `link`, once the client has said it is live again."""

    def _emit(self, event: ClientEvent) -> None:
        self._events.put_nowait(event)

    def _notice(self, kind: NoticeKind, sentence: str, message: dict[str, Any] | None = None) -> None:
        self._emit(Notice(kind, sentence, message or {}))

    def _set_state(self, state: ClientState, sentence: str, reason: str | None = None) -> None:
        if self._state.terminal:
            return
        self._state = state
        if state.terminal:
            self.end_reason = reason
        self._emit(StateChanged(state, sentence, reason))
        self._background_task(self._wake_waiters())

    async def _wake_waiters(self) -> None:
        async with self._state_changed:
            self._state_changed.notify_all()

    def _background_task(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @contextlib.asynccontextmanager
    async def _starting(self) -> AsyncIterator[None]:
        """Whatever stops `start()` leaves the client FAILED, with the sentence as its event."""
        try:
            yield
        except LiveSessionError as failed:
            self._fail(ClientState.FAILED, failed.sentence)
            raise
        except BaseException:
            self._fail(ClientState.FAILED, "The client stopped before it was in the session.")
            raise

    async def _opening_request(
        self, state: ClientState, sentence: str, action: Any, answer: MessageType, fields: dict[str, Any]
    ) -> tuple[Link, dict[str, Any]]:
        """Connect and send the request that puts the client in the session (joinSession or
        createSession). A connection that drops or stays silent before answering is replaced,
        with backoff, within the time a reconnect is allowed; a refusal is final and raises
        RequestRefusedError (state FAILED). A create retried this way may leave behind the
        session the lost answer named; nobody knows its id, and it ends after the speaker grace."""
        policy = self.options.reconnect
        started, attempt = time.monotonic(), 0
        while True:
            link = await self._first_link()
            self._set_state(state, sentence)
            try:
                reply = await link.request(action, (answer,), **fields)
            except (LinkClosedError, NoAnswerError):
                await self._discard(link)
                if time.monotonic() - started > policy.give_up_after_seconds:
                    raise
                await asyncio.sleep(policy.delay(attempt))
                attempt += 1
                continue
            if reply["type"] == MessageType.ERROR:
                sentence = explain_error(reply)
                self._fail(ClientState.FAILED, sentence, reply.get("code"))
                raise RequestRefusedError(sentence, reply)
            return link, reply

    async def _first_link(self) -> Link:
        """The opening connection, tried with backoff like a reconnect. Raises ConnectFailedError
        when the token is refused or the time allowed runs out."""
        self._set_state(ClientState.CONNECTING, describe("connecting", url=address_without_token(self.url)))
        policy = self.options.reconnect
        started, attempt = time.monotonic(), 0
        while True:
            try:
                return await self._open_link()
            except ConnectFailedError as failed:
                gave_up = time.monotonic() - started > policy.give_up_after_seconds
                if gave_up or (failed.status == 401 and not await self._refresh_token()):
                    self._fail(ClientState.FAILED, failed.sentence, f"HTTP {failed.status}" if failed.status else None)
                    raise
                await asyncio.sleep(policy.delay(attempt))
                attempt += 1

    async def _open_link(self) -> Link:
        link = await Link.open(self.url, self._token(), self.options.timings, self._on_message, self._on_link_closed)
        self._links.add(link)
        link.start_heartbeats()
        return link

    async def _request(
        self, action: Any, answers: Iterable[MessageType], *, again_after_drop: bool = False, **fields: Any
    ) -> dict[str, Any]:
        """A request on the live link; raises RequestRefusedError for an `error` answer. With
        `again_after_drop` (requests safe to repeat), a link that drops before answering is
        followed by the same request on the link the client reconnects on.

        Requests and link switches take turns (`_switch_lock`): a request never goes out on a
        link that a refresh is about to retire, where the server would no longer take it from."""
        drops_allowed = 1 if again_after_drop else 0
        while True:
            link = await self._live_link()
            async with self._switch_lock:
                if link is not self._current or self._state != ClientState.LIVE:
                    continue  # switched or dropped while waiting for the lock
                try:
                    reply = await link.request(action, tuple(answers), **fields)
                except LinkClosedError:
                    if drops_allowed == 0:
                        raise
                    drops_allowed -= 1
                    continue
            if reply["type"] == MessageType.ERROR:
                raise RequestRefusedError(explain_error(reply), reply)
            return reply

    async def _live_link(self) -> Link:
        """The current link once the client is live (waits through a reconnect)."""
        await self.wait_for_state(ClientState.LIVE, *TERMINAL_STATES)
        if self._state.terminal or self._current is None:
            raise ClientStoppedError(describe("left") if self._state == ClientState.LEFT else "The client has stopped.")
        return self._current

    def _became_live(self, link: Link, sentence: str) -> None:
        self._current = link
        self._set_state(ClientState.LIVE, sentence)

    def _end(self, message: dict[str, Any]) -> None:
        """The session ended (told by the server, or found gone when rejoining)."""
        reason = message.get("reason")
        self._set_state(ClientState.ENDED, explain_end(reason), reason if isinstance(reason, str) else None)
        self._background_task(self._shutdown())

    def _fail(self, state: ClientState, sentence: str, reason: str | None = None) -> None:
        self._set_state(state, sentence, reason)
        self._background_task(self._shutdown())

    async def _shutdown(self) -> None:
        current = asyncio.current_task()
        replacing, self._replacing = self._replacing, None
        if replacing is not None and replacing is not current:
            replacing.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await replacing
        links, self._links = list(self._links), set()
        await asyncio.gather(*(link.close() for link in links), return_exceptions=True)

    # ------------------------------------------------------------ what links report

    def _on_message(self, link: Link, message: dict[str, Any]) -> None:
        if link not in self._links:
            return
        kind = message.get("type")
        if kind == MessageType.SESSION_ENDED:
            self._before_end()
            self._end(message)
        elif kind == MessageType.CONNECTION_REFRESH_REQUIRED:
            if link is self._current and self._replacing is None and self._state == ClientState.LIVE:
                self._start_replacing(after_drop=False)
        elif kind == MessageType.CONNECTION_WARNING:
            if link is self._current:
                self._notice(NoticeKind.CONNECTION_WARNING, describe("connectionWarning", **message), message)
        elif kind == MessageType.ERROR:
            self._notice(NoticeKind.ERROR, explain_error(message), message)
        else:
            self._on_session_message(link, message)

    def _before_end(self) -> None:
        """Hook: show what is still held before the end is announced."""

    def _on_link_closed(self, link: Link) -> None:
        self._links.discard(link)
        if link is not self._current or link.intentional_close or self._state != ClientState.LIVE:
            return
        if self._replacing is None:
            self._start_replacing(after_drop=True)

    # ------------------------------------------------------------ refresh and reconnect

    def _start_replacing(self, after_drop: bool) -> None:
        task = asyncio.create_task(self._replace_link(after_drop))
        self._replacing = task
        task.add_done_callback(self._replacement_done)

    def _replacement_done(self, task: asyncio.Task[None]) -> None:
        if self._replacing is task:
            self._replacing = None

    async def _replace_link(self, after_drop: bool) -> None:
        policy = self.options.reconnect
        old = self._current
        dropped_at: float | None = None
        attempt = 0
        if not after_drop:
            self._notice(NoticeKind.REFRESHING, describe("refreshing"))
        while not self._state.terminal:
            old_alive = old is not None and not old.is_closed and old is self._current
            if not old_alive:
                if dropped_at is None:
                    dropped_at, attempt = time.monotonic(), 0
                if time.monotonic() - dropped_at > policy.give_up_after_seconds:
                    seconds = f"{policy.give_up_after_seconds:g}"
                    self._fail(ClientState.GAVE_UP, describe("gaveUp", seconds=seconds))
                    return
                delay = policy.delay(attempt)
                self._set_state(
                    ClientState.RECONNECTING, describe("reconnecting", delay=f"{delay:.1f}", attempt=attempt + 1)
                )
                await asyncio.sleep(delay)
            elif attempt > 0:
                delay = policy.delay(attempt)
                self._notice(NoticeKind.REFRESH_RETRY, describe("refreshRetry", delay=f"{delay:.1f}"))
                await asyncio.sleep(delay)
            attempt += 1
            outcome = await self._try_rejoin(after_drop=not old_alive)
            if outcome is RETRY:
                continue
            if outcome is STOP:
                return
            new = outcome
            if old is not None and old is not new:
                # Still in self._links while it closes: what it received before the close is
                # shown (the sequencer drops what the new link also brings). Closed in the
                # background: a refresh notice that comes while this task runs is ignored, and
                # a slow closing handshake (up to the open timeout) must not make it miss one.
                self._background_task(old.close())
            return

    def _switch_to(self, new: Link, answer: dict[str, Any]) -> None:
        """The new link is in the session: make it the current one (under `_switch_lock`)."""
        old = self._current
        self._on_rejoined(answer)
        if old is not None and not old.is_closed and self._state == ClientState.LIVE:
            self.refresh_count += 1
            self._current = new
            self._notice(NoticeKind.REFRESHED, describe("refreshed"), answer)
        else:
            self.reconnect_count += 1
            self._became_live(new, describe("reconnected", sessionId=self.session_id))
        self._after_rejoin(new, answer)

    async def _try_rejoin(self, after_drop: bool) -> Link | object:
        """One attempt: the new link, now current; RETRY (after a pause); or STOP. Ends
        the client when the answer says trying again cannot help; a refresh refused that way
        stops, and the old link carries on until it closes. A session found gone while the old
        link is still open ends the client with the end's notice if that link brings it in time."""
        try:
            new = await self._open_link()
        except ConnectFailedError as failed:
            if failed.status == 401 and not await self._refresh_token():
                self._fail(ClientState.FAILED, failed.sentence, ErrorCode.UNAUTHORIZED)
                return STOP
            return RETRY
        async with self._switch_lock:
            rejoin = self._rejoin(after_drop)
            try:
                answer = await new.request(rejoin.action, (rejoin.answer, MessageType.SESSION_ENDED), **rejoin.fields)
            except (LinkClosedError, NoAnswerError):
                answer = None
            if answer is not None and answer["type"] == rejoin.answer:
                self._switch_to(new, answer)
                return new
        await self._discard(new)
        if answer is None:
            return RETRY
        if answer["type"] == MessageType.SESSION_ENDED:
            self._end(answer)
            return STOP
        code = answer.get("code")
        if code == ErrorCode.SESSION_NOT_FOUND:
            if not await self._ended_by_notice_on(self._current):
                self._fail(ClientState.ENDED, describe("endedWhileAway"), ENDED_WHILE_AWAY)
            return STOP
        if code in RETRYABLE_CODES:
            retry_after = answer.get("retryAfter")
            if type(retry_after) is int:
                await asyncio.sleep(retry_after)
            return RETRY
        if after_drop:
            self._fail(ClientState.FAILED, explain_error(answer), code if isinstance(code, str) else None)
        else:
            self._notice(NoticeKind.ERROR, explain_error(answer), answer)
        return STOP

    async def _ended_by_notice_on(self, link: Link | None) -> bool:
        """After a rejoin found the session gone: whether `link`, the one the client is still in
        the session on, brings the `sessionEnded` (which ends the client) within
        END_NOTICE_GRACE_SECONDS. A closed link brings nothing more: its reader handles every
        frame it received before it reports the close."""
        if link is None or link.is_closed:
            return self._state.terminal
        ended = asyncio.ensure_future(self.wait_for_state(*TERMINAL_STATES))
        closed = asyncio.ensure_future(link.closed.wait())
        try:
            await asyncio.wait((ended, closed), timeout=END_NOTICE_GRACE_SECONDS, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
            closed.cancel()
        return self._state.terminal

    async def _discard(self, link: Link) -> None:
        """Close a link that never became the current one."""
        self._links.discard(link)
        await link.close()
