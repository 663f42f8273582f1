"""In-memory fakes of every port of the domain (session_manager/ports.py).

Each write applies its conditions and its changes under one lock, as DynamoDB applies one request
(a transaction included) atomically, and a refused write returns the items whose condition failed
as they were, as ``ReturnValuesOnConditionCheckFailure=ALL_OLD`` does. tests/domain/
test_store_contract.py runs the same contract against these and the DynamoDB adapters on moto.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

from session_manager.models import CaptionLine, Connection, Session
from session_manager.outcomes import Message, Outcome, Refusal, WindowFullError, WriteResult, Written
from session_manager.protocol import EndReason, Role


@dataclass
class Tables:
    """The two membership tables, which transactions change together."""

    sessions: dict[str, Session] = field(default_factory=dict)
    connections: dict[str, Connection] = field(default_factory=dict)
    heartbeats: dict[str, dict[int, int]] = field(default_factory=dict)  # per connection, per minute
    lock: threading.RLock = field(default_factory=threading.RLock)


def _free(connection: Connection | None) -> bool:
    return connection is not None and connection.session_id is None


class FakeSessionStore:
    def __init__(self, tables: Tables) -> None:
        self.t = tables

    def get(self, session_id: str) -> Session | None:
        with self.t.lock:
            return self.t.sessions.get(session_id)

    def scan(self) -> Iterator[Session]:
        with self.t.lock:
            return iter(list(self.t.sessions.values()))

    def _refuse_or_apply(self, session_id: str, session_ok: bool, connection_id: str | None, apply) -> WriteResult:
        connection = self.t.connections.get(connection_id) if connection_id else None
        connection_ok = connection_id is None or _free(connection)
        if not (session_ok and connection_ok):
            return Refusal(
                session_failed=not session_ok,
                session=self.t.sessions.get(session_id) if not session_ok else None,
                connection_failed=not connection_ok,
                connection=connection if not connection_ok else None,
            )
        apply()
        return Written()

    def create(self, session: Session) -> WriteResult:
        with self.t.lock:

            def apply() -> None:
                self.t.sessions[session.session_id] = session
                self._claim(session.speaker_connection_id, session.session_id, Role.SPEAKER, None)

            return self._refuse_or_apply(
                session.session_id,
                session.session_id not in self.t.sessions,
                session.speaker_connection_id,
                apply,
            )

    def move_speaker(
        self, session_id: str, user_id: str, new_connection_id: str, now_ms: int, expires_at: int, *, away_since
    ) -> WriteResult:
        with self.t.lock:
            session = self.t.sessions.get(session_id)
            ok = (
                session is not None
                and session.is_active
                and session.expires_at > now_ms // 1000
                and session.speaker_user_id == user_id
                and session.speaker_away_since == away_since
            )

            def apply() -> None:
                self.t.sessions[session_id] = replace(
                    session, speaker_connection_id=new_connection_id, expires_at=expires_at, speaker_away_since=None
                )
                self._claim(new_connection_id, session_id, Role.SPEAKER, None)

            return self._refuse_or_apply(session_id, ok, new_connection_id, apply)

    def mark_speaker_away(self, session_id: str, connection_id: str, now_ms: int) -> bool:
        with self.t.lock:
            session = self.t.sessions.get(session_id)
            if session is None or not session.is_active or session.speaker_connection_id != connection_id:
                return False
            self.t.sessions[session_id] = replace(session, speaker_away_since=now_ms)
            return True

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
        with self.t.lock:
            session = self.t.sessions.get(session_id)
            ok = (
                session is not None
                and session.is_active
                and (speaker_connection_id is None or session.speaker_connection_id == speaker_connection_id)
                and (not only_if_expired or session.expires_at <= now_ms // 1000)
                and (away_since is None or session.speaker_away_since == away_since)
            )
            if not ok:
                return Refusal(session_failed=True, session=session)
            ended = replace(session, is_active=False, ended_at=now_ms, end_reason=reason)
            self.t.sessions[session_id] = ended
            return Written(ended)

    def add_listener(
        self, session_id: str, connection_id: str, target_language: str, now_ms: int, capacity: int
    ) -> WriteResult:
        with self.t.lock:
            session = self.t.sessions.get(session_id)
            ok = (
                session is not None
                and session.is_active
                and session.expires_at > now_ms // 1000
                and session.listener_count < capacity
            )

            def apply() -> None:
                counts = dict(session.language_counts)
                counts[target_language] = counts.get(target_language, 0) + 1
                self.t.sessions[session_id] = replace(
                    session,
                    listener_count=session.listener_count + 1,
                    last_listener_change_at=now_ms,
                    language_counts=counts,
                )
                self._claim(connection_id, session_id, Role.LISTENER, target_language)

            return self._refuse_or_apply(session_id, ok, connection_id, apply)

    def remove_listener(
        self, connection_id: str, session_id: str, target_language: str, now_ms: int, *, delete_connection: bool
    ) -> Outcome:
        with self.t.lock:
            connection = self.t.connections.get(connection_id)
            if connection is None or connection.session_id != session_id or connection.role is not Role.LISTENER:
                return Outcome.ALREADY_DONE
            if delete_connection:
                del self.t.connections[connection_id]
            else:
                self.t.connections[connection_id] = replace(
                    connection, session_id=None, role=None, target_language=None
                )
            session = self.t.sessions.get(session_id)
            if session is not None and session.listener_count > 0:
                counts = dict(session.language_counts)
                counts[target_language] = counts.get(target_language, 0) - 1
                self.t.sessions[session_id] = replace(
                    session,
                    listener_count=session.listener_count - 1,
                    last_listener_change_at=now_ms,
                    language_counts=counts,
                    language_left_at={**session.language_left_at, target_language: now_ms},
                )
            return Outcome.DONE

    def repair_listener_count(
        self, session_id: str, observed: int, actual: Mapping[str, int], settled_before_ms: int
    ) -> bool:
        with self.t.lock:
            session = self.t.sessions.get(session_id)
            if (
                session is None
                or not session.is_active
                or session.listener_count != observed
                or session.last_listener_change_at >= settled_before_ms
            ):
                return False
            counts = {**session.language_counts, **actual}
            self.t.sessions[session_id] = replace(session, listener_count=sum(actual.values()), language_counts=counts)
            return True

    def next_caption_seq(self, session_id: str, speaker_connection_id: str, now_ms: int, final: bool) -> WriteResult:
        with self.t.lock:
            session = self.t.sessions.get(session_id)
            if (
                session is None
                or not session.is_active
                or session.expires_at <= now_ms // 1000
                or session.speaker_connection_id != speaker_connection_id
            ):
                return Refusal(session_failed=True, session=session)
            numbered = replace(session, caption_seq=session.caption_seq + 1)
            if final:
                numbered = replace(
                    numbered, previous_final_seq=session.last_final_seq, last_final_seq=numbered.caption_seq
                )
            self.t.sessions[session_id] = numbered
            return Written(numbered)

    def _claim(self, connection_id: str, session_id: str, role: Role, language: str | None) -> None:
        connection = self.t.connections[connection_id]
        self.t.connections[connection_id] = replace(
            connection, session_id=session_id, role=role, target_language=language
        )


class FakeConnectionStore:
    def __init__(self, tables: Tables) -> None:
        self.t = tables

    def register(self, connection_id: str, connected_at_ms: int, ttl: int, user_id: str | None) -> bool:
        with self.t.lock:
            if connection_id in self.t.connections:
                return False
            self.t.connections[connection_id] = Connection(
                connection_id, connected_at_ms, connected_at_ms, ttl, user_id=user_id or None
            )
            return True

    def get(self, connection_id: str) -> Connection | None:
        with self.t.lock:
            return self.t.connections.get(connection_id)

    def record_heartbeat(self, connection_id: str, now_ms: int, limit_per_minute: int) -> WriteResult:
        with self.t.lock:
            connection = self.t.connections.get(connection_id)
            minute = now_ms // 60000
            counts = self.t.heartbeats.setdefault(connection_id, {})
            if connection is None or counts.get(minute, 0) >= limit_per_minute:
                return Refusal(connection_failed=True, connection=connection)
            counts.pop(minute - 1, None)
            counts[minute] = counts.get(minute, 0) + 1
            alive = replace(connection, last_seen_at=now_ms)
            self.t.connections[connection_id] = alive
            return Written(connection=alive)

    def delete(self, connection_id: str) -> Connection | None:
        with self.t.lock:
            self.t.heartbeats.pop(connection_id, None)
            return self.t.connections.pop(connection_id, None)

    def delete_if_idle(self, connection_id: str) -> WriteResult:
        with self.t.lock:
            connection = self.t.connections.get(connection_id)
            if connection is not None and connection.session_id:
                return Refusal(connection_failed=True, connection=connection)
            return Written(connection=self.delete(connection_id))

    def detach_from_session(self, connection_id: str, session_id: str) -> bool:
        with self.t.lock:
            connection = self.t.connections.get(connection_id)
            if connection is None or connection.session_id != session_id:
                return False
            self.t.connections[connection_id] = replace(connection, session_id=None, role=None, target_language=None)
            return True

    def listeners_of(self, session_id: str) -> Iterator[tuple[str, str]]:
        with self.t.lock:
            found = [
                (c.connection_id, c.target_language)
                for c in self.t.connections.values()
                if c.session_id == session_id and c.target_language
            ]
        return iter(found)

    def listeners_in(self, session_id: str, language: str) -> Iterator[str]:
        return iter([connection_id for connection_id, lang in self.listeners_of(session_id) if lang == language])

    def scan(self) -> Iterator[Connection]:
        with self.t.lock:
            return iter(list(self.t.connections.values()))


class FakeCaptionStore:
    def __init__(self) -> None:
        self.lines: dict[tuple[str, str], dict[int, CaptionLine]] = {}
        self.expiry: dict[tuple[str, str, int], int] = {}
        self._lock = threading.Lock()

    def record(self, lines: Iterable[CaptionLine], expires_at: int) -> None:
        with self._lock:
            for line in lines:
                self.lines.setdefault((line.session_id, line.language), {})[line.seq] = line
                self.expiry[(line.session_id, line.language, line.seq)] = expires_at

    def since(self, session_id: str, language: str, after_seq: int, not_before_ms: int) -> list[CaptionLine]:
        with self._lock:
            kept = self.lines.get((session_id, language), {})
            return [kept[seq] for seq in sorted(kept) if seq > after_seq and kept[seq].timestamp >= not_before_ms]


class FakeTranslator:
    """Marks the text with its target language; languages in ``failing`` fail."""

    def __init__(self) -> None:
        self.failing: set[str] = set()
        self.calls: list[tuple[str, str, tuple[str, ...]]] = []

    def translate(self, text: str, source_language: str, target_languages: Iterable[str]) -> Mapping[str, str | None]:
        targets = tuple(target_languages)
        self.calls.append((text, source_language, targets))
        return {target: None if target in self.failing else f"[{target}] {text}" for target in targets}


class FakeCaptionQueue:
    def __init__(self) -> None:
        self.pages: list[tuple[tuple[str, ...], Message]] = []

    def enqueue(self, connection_ids: Iterable[str], message: Message) -> int:
        ids = tuple(connection_ids)
        for start in range(0, len(ids), 100):
            self.pages.append((ids[start : start + 100], message))
        return (len(ids) + 99) // 100


class FakeRateLimitStore:
    def __init__(self) -> None:
        self.windows: dict[str, dict[str, int]] = {}
        self._lock = threading.Lock()

    def consume(self, identifier: str, expires_at: int, counter: str, limits: Mapping[str, int]) -> None:
        with self._lock:
            window = self.windows.setdefault(identifier, {})
            if any(window.get(name, 0) >= limit for name, limit in limits.items()):
                raise WindowFullError()
            window[counter] = window.get(counter, 0) + 1

    def adjust(self, identifier: str, expires_at: int, deltas: Mapping[str, int]) -> None:
        with self._lock:
            window = self.windows.setdefault(identifier, {})
            for name, delta in deltas.items():
                window[name] = window.get(name, 0) + delta


class FakeNotifier:
    """Records what was posted; connections in ``gone`` answer as API Gateway's 410 does."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, Message]] = []
        self.closed: list[str] = []
        self.gone: set[str] = set()
        # lastActiveAt per connection (epoch ms), moved only by the client's own messages.
        self.activity: dict[str, int] = {}
        self.lookups: list[str] = []
        self._lock = threading.Lock()

    def client_sent(self, connection_id: str, at_ms: int) -> None:
        """The client sent a message (any message: API Gateway does not look inside it)."""
        with self._lock:
            self.activity[connection_id] = at_ms

    def last_active_at(self, connection_id: str) -> int | None:
        with self._lock:
            self.lookups.append(connection_id)
            if connection_id in self.gone:
                return None
            return self.activity.get(connection_id, 0)

    def send(self, connection_id: str, message: Message) -> bool:
        with self._lock:
            if connection_id in self.gone:
                return False
            self.posts.append((connection_id, message))
            return True

    def send_all(self, posts: Sequence[tuple[str, Message]]) -> list[str]:
        return ["delivered" if self.send(connection_id, message) else "gone" for connection_id, message in posts]

    def close(self, connection_id: str) -> bool:
        with self._lock:
            if connection_id in self.gone:
                return False
            self.closed.append(connection_id)
            self.gone.add(connection_id)
            return True

    def messages_to(self, connection_id: str) -> list[Message]:
        return [message for target, message in self.posts if target == connection_id]

    def types_to(self, connection_id: str) -> list[str]:
        return [message["type"] for message in self.messages_to(connection_id)]


class FakeClock:
    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
