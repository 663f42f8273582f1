"""Sends messages to connected clients and closes connections via the @connections API."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from session_manager.errors import ServiceUnavailableError
from session_manager.store.clients import management_api_client

logger = Logger(child=True)

_GONE = {"GoneException", "410"}


class ConnectionMessenger:
    def __init__(self, client=None, *, concurrency: int = 16) -> None:
        self._client = client
        self.concurrency = concurrency

    @property
    def client(self):
        if self._client is None:
            self._client = management_api_client()
        return self._client

    def send(self, connection_id: str, message: dict[str, Any]) -> bool:
        """Post one message; False when the connection is gone (410), which is not an error."""
        data = json.dumps(message, separators=(",", ":")).encode()
        return self._reach(self.client.post_to_connection, ConnectionId=connection_id, Data=data)

    def broadcast(
        self,
        connection_ids: Iterable[str],
        message: dict[str, Any],
        *,
        claim: Callable[[str], bool] | None = None,
    ) -> dict[str, int]:
        """Post to many connections in parallel (bounded). With ``claim``, a connection is sent
        to only if claim(connection_id) is True, so that of two processes telling the same
        listeners, each listener hears once. Counts of delivered, gone, skipped and failed."""
        ids = list(connection_ids)
        counts = {"delivered": 0, "gone": 0, "skipped": 0, "failed": 0}
        if not ids:
            return counts

        def deliver(connection_id: str) -> str:
            try:
                if claim is not None and not claim(connection_id):
                    return "skipped"
                return "delivered" if self.send(connection_id, message) else "gone"
            except ServiceUnavailableError:
                return "failed"

        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(ids))) as pool:
            for outcome in pool.map(deliver, ids):
                counts[outcome] += 1
        if counts["failed"]:
            logger.warning("broadcast incomplete", extra=counts)
        return counts

    def close(self, connection_id: str) -> bool:
        """DeleteConnection; False when it was already gone."""
        return self._reach(self.client.delete_connection, ConnectionId=connection_id)

    @staticmethod
    def _reach(operation, **kwargs: Any) -> bool:
        """Call the @connections API: True if it answered, False for 410 Gone, and
        ServiceUnavailableError for anything else (throttling is retried by botocore first)."""
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
