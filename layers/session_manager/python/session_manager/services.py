"""Builds the domain objects once per execution environment, from the settings."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from session_manager.config import Settings, get_settings
from session_manager.connections import ConnectionService
from session_manager.ids import SessionIdGenerator
from session_manager.languages import LanguageCatalog
from session_manager.ratelimit import RateLimiter
from session_manager.sessions import SessionService
from session_manager.store.connections import ConnectionRepository
from session_manager.store.dynamodb import DynamoDB
from session_manager.store.messenger import ConnectionMessenger
from session_manager.store.rate_limits import RateLimitRepository
from session_manager.store.sessions import SessionStore
from session_manager.sweeper import Sweeper


@dataclass(frozen=True)
class Services:
    settings: Settings
    sessions: SessionService
    connections: ConnectionService
    sweeper: Sweeper
    messenger: ConnectionMessenger

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        dynamodb_client=None,
        management_client=None,
        languages: LanguageCatalog | None = None,
    ) -> Services:
        dynamodb = DynamoDB(dynamodb_client)
        connection_repository = ConnectionRepository(settings.connections_table, dynamodb)
        limiter = RateLimiter(settings, RateLimitRepository(settings.rate_limits_table, dynamodb))
        messenger = ConnectionMessenger(management_client, concurrency=settings.broadcast_concurrency)
        sessions = SessionService(
            settings,
            SessionStore(settings.sessions_table, settings.connections_table, dynamodb),
            connection_repository,
            limiter,
            messenger,
            languages or LanguageCatalog(),
            SessionIdGenerator.from_wordlists(),
        )
        connections = ConnectionService(settings, connection_repository, sessions, limiter)
        return cls(settings, sessions, connections, Sweeper(settings, sessions, connections), messenger)


@functools.lru_cache(maxsize=1)
def get_services() -> Services:
    return Services.build(get_settings())
