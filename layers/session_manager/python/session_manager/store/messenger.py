"""The @connections API: posts messages to connected clients and closes connections."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from session_manager.errors import ServiceUnavailableError
from session_manager.store.clients import management_api_client

_GONE = {"GoneException", "410"}


class ManagementApiNotifier:
    def __init__(self, client=None) -> None:
        self._client = client

    @property
    def client(self):
        if self._client is None:
            self._client = management_api_client()
        return self._client

    def send(self, connection_id: str, message: dict[str, Any]) -> bool:
        data = json.dumps(message, separators=(",", ":")).encode()
        return self._reach(self.client.post_to_connection, ConnectionId=connection_id, Data=data)

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
