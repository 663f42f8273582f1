"""The domain over in-memory fakes of its ports: rule tests without moto, in milliseconds."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Any

import pytest

from session_manager.caller import Caller
from session_manager.config import Settings
from session_manager.ids import SessionIdGenerator
from session_manager.outcomes import Decision
from session_manager.protocol import (
    CreateSessionRequest,
    JoinSessionRequest,
    QualityTier,
    RefreshConnectionRequest,
    Role,
    parse_send_caption,
)
from session_manager.services import Services
from tests.domain.fakes import (
    FakeCaptionQueue,
    FakeCaptionStore,
    FakeClock,
    FakeConnectionStore,
    FakeNotifier,
    FakeRateLimitStore,
    FakeSessionStore,
    FakeTranslator,
    Tables,
)
from tests.unit.harness import SnapshotLanguages

_ids = itertools.count(1)


@dataclass
class Domain:
    """The real services over fakes, and what a test needs to drive and inspect them."""

    services: Services
    tables: Tables
    notifier: FakeNotifier
    clock: FakeClock
    rate_limits: FakeRateLimitStore
    captions: FakeCaptionStore
    translator: FakeTranslator
    queue: FakeCaptionQueue

    def carry_out(self, decision: Decision) -> Decision:
        self.services.delivery.carry_out(decision.notices)
        return decision

    # ------------------------------------------------------------ clients

    def connect(self, *, user_id: str | None = None, source_ip: str = "203.0.113.7") -> Caller:
        caller = Caller(
            connection_id=f"conn-{next(_ids)}=",
            request_id=f"req-{next(_ids)}",
            source_ip=source_ip,
            connected_at=int(self.clock.now * 1000),
            role=Role.SPEAKER if user_id else Role.LISTENER,
            user_id=user_id,
        )
        self.services.connections.connect(caller)
        return caller

    def create(self, *, user_id: str = "speaker-1", source_language: str = "en") -> tuple[Caller, str]:
        speaker = self.connect(user_id=user_id)
        decision = self.services.speaker.create_session(
            speaker, CreateSessionRequest(source_language, QualityTier.STANDARD)
        )
        return speaker, decision.first["sessionId"]

    def join(self, session_id: str, language: str = "es", **connect_args: Any) -> Caller:
        listener = self.connect(**connect_args)
        self.carry_out(self.services.listener.join_session(listener, JoinSessionRequest(session_id, language)))
        return listener

    def disconnect(self, caller: Caller) -> str:
        outcome = self.services.connections.disconnect(caller.connection_id)
        self.services.delivery.carry_out(outcome.notices)
        return outcome.what

    def reclaim(self, session_id: str, *, user_id: str = "speaker-1") -> tuple[Caller, Decision]:
        speaker = self.connect(user_id=user_id)
        request = RefreshConnectionRequest(session_id, Role.SPEAKER, None)
        return speaker, self.carry_out(self.services.speaker.refresh_connection(speaker, request))

    def sweep(self):
        sweep = self.services.sweeper.sweep()
        self.services.delivery.carry_out(sweep.notices)
        return sweep.report

    def caption(self, speaker: Caller, text: str, **fields: Any) -> Decision:
        request = parse_send_caption({"text": text, **fields})
        return self.carry_out(self.services.captions.send_caption(speaker, request))

    def session(self, session_id: str):
        return self.tables.sessions.get(session_id)


def domain_settings(**overrides: Any) -> Settings:
    return replace(Settings(rate_limit_key_secret="domain-tests"), **overrides)


def build_domain(**overrides: Any) -> Domain:
    tables, notifier, clock, rate_limits = Tables(), FakeNotifier(), FakeClock(), FakeRateLimitStore()
    captions, translator, queue = FakeCaptionStore(), FakeTranslator(), FakeCaptionQueue()
    services = Services.over(
        domain_settings(**overrides),
        sessions=FakeSessionStore(tables),
        connections=FakeConnectionStore(tables),
        rate_limits=rate_limits,
        captions=captions,
        translator=translator,
        caption_queue=queue,
        notifier=notifier,
        clock=clock,
        languages=SnapshotLanguages(),
        ids=SessionIdGenerator.from_wordlists(),
        rate_limit_key=b"domain-tests",
    )
    return Domain(services, tables, notifier, clock, rate_limits, captions, translator, queue)


@pytest.fixture
def domain() -> Domain:
    """Default settings (a 30 s speaker reconnect grace)."""
    return build_domain()
