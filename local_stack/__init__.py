"""The local stack: API Gateway WebSocket, Lambda and the AWS services this project uses, emulated
on loopback from the same template.yaml that `sam deploy` uses. Never shipped in a layer."""

from __future__ import annotations

from local_stack.errors import LocalStackError

__all__ = ["LocalStackError"]
