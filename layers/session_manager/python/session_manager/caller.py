"""Who is asking: the parts of an API Gateway WebSocket event the domain needs."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

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
        context = event.get("requestContext") or {}
        authorizer = context.get("authorizer") or {}
        role = Role.SPEAKER if authorizer.get("role") == Role.SPEAKER.value else Role.LISTENER
        return cls(
            connection_id=context["connectionId"],
            request_id=context.get("requestId", ""),
            source_ip=(context.get("identity") or {}).get("sourceIp", ""),
            connected_at=int(context.get("connectedAt") or time.time() * 1000),
            role=role,
            user_id=authorizer.get("userId") or None,
        )
