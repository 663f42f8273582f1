"""The domain's ports: what it needs from the world, as typed protocols.

``store/`` holds the DynamoDB and @connections adapters, ``tests/unit/fakes.py`` the in-memory
fakes; one contract suite (``tests/unit/test_store_contract.py``) runs against both, so a fake
cannot drift from the adapter it stands for. Only ``services.py`` (the composition root) picks
the adapters.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Protocol

from session_manager.models import CaptionLine, Connection, Session
from session_manager.outcomes import Message, Outcome, WriteResult
from session_manager.protocol import EndReason


class Clock(Protocol):
    def time(self) -> float:
        """Epoch seconds."""


class SessionStore(Protocol):
    """The Sessions table, and the writes that change a session and a connection together
    (each one atomic: a seat is never counted without its connection item)."""

    def get(self, session_id: str) -> Session | None: ...

    def scan(self) -> Iterator[Session]: ...

    def create(self, session: Session) -> WriteResult:
        """Insert the session (its id free) and give its speaker connection the role (the
        connection free), or neither."""

    def move_speaker(
        self,
        session_id: str,
        user_id: str,
        new_connection_id: str,
        now_ms: int,
        expires_at: int,
        *,
        away_since: int | None,
    ) -> WriteResult:
        """Make the new connection (free) the session's speaker if the session is live, belongs
        to ``user_id`` and its speaker is still away since ``away_since`` (None: not away);
        clears the away mark and pushes the expiry."""

    def mark_speaker_away(self, session_id: str, connection_id: str, now_ms: int) -> bool:
        """Record that the live session's speaker connection ``connection_id`` went away;
        False when it is no longer the session's speaker (or the session ended)."""

    def end(
        self,
        session_id: str,
        reason: EndReason,
        now_ms: int,
        *,
        speaker_connection_id: str | None = None,
        only_if_expired: bool = False,
        away_since: int | None = None,
    ) -> WriteResult:
        """Mark the active session ended, once; optionally only while that connection is its
        speaker, only past its expiry, or only while its speaker is away since ``away_since``."""

    def add_listener(
        self, session_id: str, connection_id: str, target_language: str, now_ms: int, capacity: int
    ) -> WriteResult:
        """Seat the connection (free) in the live session with fewer than ``capacity`` seats
        taken, counting the seat, or neither."""

    def remove_listener(
        self, connection_id: str, session_id: str, target_language: str, now_ms: int, *, delete_connection: bool
    ) -> Outcome:
        """Release the connection's seat in the session exactly once, the counts never below
        zero: DONE, or ALREADY_DONE when it no longer held that seat."""

    def repair_listener_count(
        self, session_id: str, observed: int, actual: Mapping[str, int], settled_before_ms: int
    ) -> bool:
        """Set the seat counts (total and per language) to what the connection items say, only
        if the total is still ``observed`` and nobody joined or left since ``settled_before_ms``."""

    def next_caption_seq(self, session_id: str, speaker_connection_id: str, now_ms: int, final: bool) -> WriteResult:
        """Number the next caption of the live session whose speaker that connection is; the
        session as written (its languages in use; for a final line, `previous_final_seq`), or a
        refusal with it as it was."""


class ConnectionStore(Protocol):
    """The Connections table: one item per open WebSocket connection. Items are returned as
    stored, past their TTL included: whether an item still counts is the domain's rule."""

    def register(self, connection_id: str, connected_at_ms: int, ttl: int, user_id: str | None) -> bool:
        """False when the connection was already recorded (a duplicate $connect)."""

    def get(self, connection_id: str) -> Connection | None: ...

    def record_heartbeat(self, connection_id: str, now_ms: int, limit_per_minute: int) -> WriteResult:
        """Mark the connection alive and count the heartbeat, below the per-minute limit."""

    def delete(self, connection_id: str) -> Connection | None: ...

    def delete_if_idle(self, connection_id: str) -> WriteResult:
        """Delete the item unless it holds a role in a session (then refused with the item)."""

    def detach_from_session(self, connection_id: str, session_id: str) -> bool:
        """Take the connection's role in that session away; False when it held none there."""

    def listeners_of(self, session_id: str) -> Iterator[tuple[str, str]]:
        """(connectionId, targetLanguage) of every listener of the session."""

    def listeners_in(self, session_id: str, language: str) -> Iterator[str]:
        """The connection ids of the session's listeners of one language."""

    def scan(self) -> Iterator[Connection]: ...


class RateLimitStore(Protocol):
    """Fixed-window counters, each check one atomic conditional update."""

    def consume(self, identifier: str, expires_at: int, counter: str, limits: Mapping[str, int]) -> None:
        """Add one to ``counter`` while every counter in ``limits`` is below its limit; raises
        WindowFullError otherwise."""

    def adjust(self, identifier: str, expires_at: int, deltas: Mapping[str, int]) -> None: ...


class Notifier(Protocol):
    """The @connections API."""

    def send(self, connection_id: str, message: Message) -> bool:
        """Post one message; False when the connection is gone (410)."""

    def send_all(self, posts: Sequence[tuple[str, Message]]) -> list[str]:
        """A fan-out: post each (connection id, message), in parallel, one attempt each; for
        each, in order, "delivered", "gone" (410) or "failed" (worth another attempt later)."""

    def close(self, connection_id: str) -> bool:
        """DeleteConnection; False when it was already gone."""

    def last_active_at(self, connection_id: str) -> int | None:
        """GetConnection's lastActiveAt (epoch ms): when the client last sent a message; None
        when the connection is gone (410)."""


class CaptionStore(Protocol):
    """The last CAPTION_HISTORY_SECONDS of captions per session and language (TTL'd)."""

    def record(self, lines: Iterable[CaptionLine], expires_at: int) -> None: ...

    def since(self, session_id: str, language: str, after_seq: int, not_before_ms: int) -> list[CaptionLine]:
        """The kept lines of that language after ``after_seq``, in order, none older than
        ``not_before_ms`` (TTL deletion is lazy)."""


class Translator(Protocol):
    """Amazon Translate."""

    def translate(self, text: str, source_language: str, target_languages: Iterable[str]) -> Mapping[str, str | None]:
        """Each target language's translation, or None where that language failed."""


class CaptionQueue(Protocol):
    """Hands pages of a big fan-out to the fan-out function (SQS)."""

    def enqueue(self, connection_ids: Iterable[str], message: Message) -> int:
        """How many pages were queued."""
