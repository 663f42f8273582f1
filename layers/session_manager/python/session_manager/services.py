"""The composition root: builds the domain over its adapters once per execution environment.
The only module of the domain that imports ``store/``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from session_manager.captions import CaptionService
from session_manager.clock import SystemClock
from session_manager.config import Settings, get_settings
from session_manager.connections import ConnectionService
from session_manager.delivery import NoticeDelivery
from session_manager.ending import SessionEnding
from session_manager.errors import ConfigurationError
from session_manager.ids import SessionIdGenerator
from session_manager.languages import LanguageCatalog
from session_manager.listener import ListenerService
from session_manager.ports import (
    CaptionQueue,
    CaptionStore,
    Clock,
    ConnectionStore,
    Notifier,
    RateLimitStore,
    SessionStore,
    Translator,
)
from session_manager.ratelimit import RateLimiter
from session_manager.speaker import SpeakerService
from session_manager.store import clients
from session_manager.store.caption_queue import SqsCaptionQueue
from session_manager.store.captions import DynamoDBCaptionStore
from session_manager.store.connections import DynamoDBConnectionStore
from session_manager.store.dynamodb import DynamoDB
from session_manager.store.messenger import ManagementApiNotifier
from session_manager.store.rate_limits import DynamoDBRateLimitStore
from session_manager.store.secrets import read_secret
from session_manager.store.sessions import DynamoDBSessionStore
from session_manager.store.translator import AmazonTranslator
from session_manager.sweeper import Sweeper


@dataclass(frozen=True)
class Stores:
    """The adapters the services were built over (for the composition root and tests; the
    services themselves hold only the ports they need)."""

    sessions: SessionStore
    connections: ConnectionStore
    rate_limits: RateLimitStore
    captions: CaptionStore


@dataclass(frozen=True)
class Services:
    settings: Settings
    stores: Stores
    clock: Clock
    speaker: SpeakerService
    listener: ListenerService
    captions: CaptionService
    ending: SessionEnding
    connections: ConnectionService
    sweeper: Sweeper
    notifier: Notifier
    delivery: NoticeDelivery

    @classmethod
    def over(
        cls,
        settings: Settings,
        *,
        sessions: SessionStore,
        connections: ConnectionStore,
        rate_limits: RateLimitStore,
        captions: CaptionStore,
        translator: Translator,
        caption_queue: CaptionQueue | None,
        notifier: Notifier,
        clock: Clock,
        languages: LanguageCatalog,
        ids: SessionIdGenerator,
        rate_limit_key: bytes | Callable[[], bytes],
    ) -> Services:
        """The domain over any adapters: DynamoDB in production, in-memory fakes in tests."""
        limiter = RateLimiter(settings, rate_limits, rate_limit_key)
        ending = SessionEnding(settings, sessions, connections, clock)
        connection_service = ConnectionService(settings, connections, sessions, ending, limiter, clock)
        caption_service = CaptionService(
            settings, sessions, connections, captions, translator, limiter, caption_queue, clock
        )
        return cls(
            settings=settings,
            stores=Stores(sessions, connections, rate_limits, captions),
            clock=clock,
            speaker=SpeakerService(settings, sessions, connections, limiter, languages, ids, ending, clock),
            listener=ListenerService(settings, sessions, connections, limiter, languages, caption_service, clock),
            captions=caption_service,
            ending=ending,
            connections=connection_service,
            sweeper=Sweeper(settings, sessions, connections, notifier, ending, connection_service, clock),
            notifier=notifier,
            delivery=NoticeDelivery(
                notifier,
                connections,
                concurrency=settings.broadcast_concurrency,
                clean_up=connection_service.disconnect,
            ),
        )

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        dynamodb_client=None,
        management_client=None,
        bulk_poster=None,
        secrets_client=None,
        languages: LanguageCatalog | None = None,
        clock: Clock | None = None,
        translator: Translator | None = None,
    ) -> Services:
        """The domain over DynamoDB and the @connections API."""
        dynamodb = DynamoDB(dynamodb_client)
        # Its own client and breaker: RateLimits fails open, so it gets a shorter budget.
        rate_limits_dynamodb = DynamoDB(dynamodb_client, client_factory=clients.rate_limits_dynamodb_client)
        return cls.over(
            settings,
            sessions=DynamoDBSessionStore(settings.sessions_table, settings.connections_table, dynamodb),
            connections=DynamoDBConnectionStore(settings.connections_table, dynamodb),
            rate_limits=DynamoDBRateLimitStore(settings.rate_limits_table, rate_limits_dynamodb),
            captions=DynamoDBCaptionStore(settings.captions_table, dynamodb),
            translator=translator or AmazonTranslator(settings.translate_terminology_names.split(",")),
            caption_queue=SqsCaptionQueue(settings.caption_fanout_queue_url)
            if settings.caption_fanout_queue_url
            else None,
            notifier=ManagementApiNotifier(
                management_client, concurrency=settings.broadcast_concurrency, bulk_poster=bulk_poster
            ),
            clock=clock or SystemClock(),
            languages=languages or LanguageCatalog(),
            ids=SessionIdGenerator.from_wordlists(),
            rate_limit_key=lambda: rate_limit_key(settings, secrets_client),
        )


def build_notifier(management_client=None) -> Notifier:
    return ManagementApiNotifier(management_client)


def rate_limit_key(settings: Settings, secrets_client=None) -> bytes:
    if settings.rate_limit_key_secret:
        return settings.rate_limit_key_secret.encode()
    if settings.rate_limit_key_secret_arn:
        return read_secret(settings.rate_limit_key_secret_arn, secrets_client)
    raise ConfigurationError(
        "RATE_LIMIT_KEY_SECRET or RATE_LIMIT_KEY_SECRET_ARN must be set: rate-limit keys are HMACs under it"
    )


# The AWS clients cached per execution environment (snapstart.py drops them after a restore).
PER_ENVIRONMENT_CLIENTS = (clients.dynamodb_client, clients.rate_limits_dynamodb_client, clients.management_api_client)


@functools.lru_cache(maxsize=1)
def get_services() -> Services:
    return Services.build(get_settings())
