"""Who is asking: the parts of an API Gateway WebSocket event the domain needs."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from session_manager.protocol import Role


@dataclass(frozen=True)
class Caller:
    connection_id: str
    request_id: str
    source_ip: str
    connected_at: int  # epoch ms, fixed at $connect
    role: Role  # speaker when the authorizer verified a token, else listener
    user_id: str | None

    @property
    def is_speaker(self) -> bool:
        return self.role is Role.SPEAKER and bool(self.user_id)

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> Caller:
        context = APIGatewayProxyEvent(event).request_context
        authorizer = context.get("authorizer") or {}
        role = Role.SPEAKER if authorizer.get("role") == Role.SPEAKER.value else Role.LISTENER
        if not context.connection_id:
            raise KeyError("connectionId")
        return cls(
            connection_id=context.connection_id,
            request_id=context.request_id or "",
            source_ip=context.identity.source_ip or "",
            # Only a hand-made event lacks connectedAt; API Gateway always sends it.
            connected_at=int(context.connected_at or time.time() * 1000),
            role=role,
            user_id=authorizer.get("userId") or None,
        )
