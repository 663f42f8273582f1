"""What the domain gets back from its ports and what it hands to the edges.

Stores answer a write with ``Written`` or a ``Refusal`` that carries the items whose condition
did not hold, as they were (DynamoDB's ``ReturnValuesOnConditionCheckFailure``), so the domain
can say why without reading them again. Services answer with a ``Decision``: the replies for the
caller and the notices for other connections, which ``handler.py`` and the scheduled job carry
out (the way websockets' protocol returns ``data_to_send``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from session_manager.models import Connection, Session

Message = dict[str, Any]


class Outcome(str, Enum):
    """The domain's reading of a write."""

    DONE = "done"
    ALREADY_HELD = "already_held"  # a repeat of a write that had already happened (a retry)
    ID_TAKEN = "id_taken"
    CONNECTION_BUSY = "connection_busy"  # already holds another role, or is gone
    SESSION_GONE = "session_gone"  # missing, ended or expired
    SESSION_FULL = "session_full"
    NOT_SPEAKER = "not_speaker"
    ALREADY_DONE = "already_done"  # someone else did it first
    STALE = "stale"  # the item changed since it was read; read again


@dataclass(frozen=True)
class Written:
    """The write happened; the item as written, where the write returned it."""

    session: Session | None = None
    connection: Connection | None = None


@dataclass(frozen=True)
class Refusal:
    """A conditional write that did not happen. For each item of the write: whether its
    condition failed and, if so, the item as it was (``None`` when it did not exist)."""

    session_failed: bool = False
    session: Session | None = None
    connection_failed: bool = False
    connection: Connection | None = None


WriteResult = Written | Refusal


class WindowFullError(Exception):
    """A rate-limit window already holds its limit of one of its counters."""


@dataclass(frozen=True)
class Notice:
    """Tell these connections this message. With ``claim_from_session``, each connection is
    first detached from that session by a conditional write and told only if that write
    detached it, so that of two processes telling the same listeners, each listener hears once."""

    connection_ids: tuple[str, ...]
    message: Message
    claim_from_session: str | None = None
    # A connection that answers 410 Gone is cleaned up the way its $disconnect would have.
    clean_up_gone: bool = False


@dataclass(frozen=True)
class Decision:
    """What a service decided: replies for the caller, in order, and notices for others."""

    replies: tuple[Message, ...] = ()
    notices: tuple[Notice, ...] = ()

    @classmethod
    def reply(cls, *replies: Message, notices: tuple[Notice, ...] | list[Notice] = ()) -> Decision:
        return cls(tuple(replies), tuple(notices))

    @property
    def first(self) -> Message:
        return self.replies[0]


@dataclass
class Delivery:
    """What carrying out notices achieved, for logs and metrics."""

    delivered: int = 0
    gone: int = 0
    skipped: int = 0
    failed: int = 0

    def add(self, other: Delivery) -> None:
        self.delivered += other.delivered
        self.gone += other.gone
        self.skipped += other.skipped
        self.failed += other.failed

    def counts(self) -> dict[str, int]:
        return {"delivered": self.delivered, "gone": self.gone, "skipped": self.skipped, "failed": self.failed}
