"""The @connections API: posts messages to connected clients and closes connections."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from session_manager.errors import ServiceUnavailableError
from session_manager.store.bulk_posts import BulkPoster
from session_manager.store.clients import MANAGEMENT_API_CONFIG, management_api_client

_GONE = {"GoneException", "410"}


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode()


class ManagementApiNotifier:
    def __init__(self, client=None, *, concurrency: int = 16, bulk_poster=None) -> None:
        """``bulk_poster`` stands in for the fan-out's transport (tests with an in-process client);
        by default it is built over ``client``'s endpoint on the first fan-out."""
        self._client = client
        self._concurrency = concurrency
        self._bulk = bulk_poster

    @property
    def client(self):
        if self._client is None:
            self._client = management_api_client()
        return self._client

    def send(self, connection_id: str, message: dict[str, Any]) -> bool:
        return self._reach(self.client.post_to_connection, ConnectionId=connection_id, Data=encode(message))

    def send_all(self, posts: Sequence[tuple[str, dict[str, Any]]]) -> list[str]:
        """A fan-out's posts, at most ``concurrency`` at a time, one attempt each (the caller's
        rounds retry): "delivered", "gone" (410) or "failed", in the order of ``posts``."""
        if self._bulk is None:
            self._bulk = BulkPoster(
                self.client,
                concurrency=self._concurrency,
                connect_timeout=MANAGEMENT_API_CONFIG.connect_timeout,
                read_timeout=MANAGEMENT_API_CONFIG.read_timeout,
            )
        bodies: dict[int, bytes] = {}  # a notice's message is encoded once, not once per listener
        encoded = []
        for connection_id, message in posts:
            if id(message) not in bodies:
                bodies[id(message)] = encode(message)
            encoded.append((connection_id, bodies[id(message)]))
        return [answer.outcome for answer in self._bulk.post_all(encoded)]

    def close(self, connection_id: str) -> bool:
        return self._reach(self.client.delete_connection, ConnectionId=connection_id)

    def last_active_at(self, connection_id: str) -> int | None:
        answers: list[dict[str, Any]] = []

        def get_connection(**kwargs: Any) -> None:
            answers.append(self.client.get_connection(**kwargs))

        if not self._reach(get_connection, ConnectionId=connection_id):
            return None
        # botocore parses the ISO 8601 timestamp into an aware datetime.
        return int(answers[0]["LastActiveAt"].timestamp() * 1000)

    @staticmethod
    def _reach(operation, **kwargs: Any) -> bool:
        """True if the API answered, False for 410 Gone, ServiceUnavailableError for anything
        else (throttling is retried by botocore first)."""
        try:
            operation(**kwargs)
        except ClientError as error:
            if _is_gone(error):
                return False
            raise ServiceUnavailableError() from error
        except BotoCoreError as error:
            raise ServiceUnavailableError() from error
        return True


def _is_gone(error: ClientError) -> bool:
    code = error.response.get("Error", {}).get("Code", "")
    status = str(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
    return code in _GONE or status == "410"
