"""The rules of a session, readable as code.

The store enforces each of them atomically with a condition expression, which is what makes races
safe; the domain uses the same rules to explain a refused write from the items it got back.
``tests/unit/test_rules.py`` pairs every rule with its condition on a real (moto) table.
"""

from __future__ import annotations

from session_manager.models import Connection, Session
from session_manager.protocol import Role


def is_live(session: Session | None, now_seconds: float) -> bool:
    """A session can be joined while it is active and before its expiry (TTL deletion is lazy,
    so an item may outlive ``expiresAt``)."""
    return session is not None and session.is_active and session.expires_at > now_seconds


def counts(connection: Connection | None, now_seconds: float) -> bool:
    """A connection item past its TTL is already gone for us."""
    return connection is not None and not (connection.ttl and connection.ttl <= now_seconds)


def has_seat_for_one_more(session: Session, capacity: int) -> bool:
    """Capacity: a join takes a seat only while fewer than ``capacity`` are taken."""
    return session.listener_count < capacity


def is_free(connection: Connection | None) -> bool:
    """One role per connection: a connection takes a role only while it holds none (and it
    must still exist: a join racing its own $disconnect must not leave a ghost seat)."""
    return connection is not None and not connection.session_id


def holds_seat(connection: Connection | None, session_id: str, target_language: str) -> bool:
    """The connection already holds exactly this seat (a retried join asked for it twice)."""
    return (
        connection is not None
        and connection.session_id == session_id
        and connection.role is Role.LISTENER
        and connection.target_language == target_language
    )


def holds_speaker_role(connection: Connection | None, session_id: str) -> bool:
    return connection is not None and connection.session_id == session_id and connection.role is Role.SPEAKER


def is_current_speaker(session: Session, connection_id: str) -> bool:
    """Who may end or query a session: the connection that is its speaker now (a refresh or a
    reclaim moves the role; the old connection then may do neither)."""
    return session.speaker_connection_id == connection_id


def may_take_over(session: Session, user_id: str | None) -> bool:
    """Refresh identity: only the user who created a session may move it to a new connection."""
    return bool(user_id) and session.speaker_user_id == user_id


def speaker_is_away(session: Session) -> bool:
    return session.speaker_away_since is not None


def grace_is_over(session: Session, now_ms: int, grace_seconds: float) -> bool:
    """An away speaker's session ends once the grace has passed without a reclaim."""
    return session.speaker_away_since is not None and session.speaker_away_since + grace_seconds * 1000 <= now_ms
