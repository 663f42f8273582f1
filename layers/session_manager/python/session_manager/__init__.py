"""The live translation session domain: one package shared by every Lambda function."""

from session_manager.handler import lifecycle_route, queue_consumer, scheduled, websocket_route

__all__ = ["lifecycle_route", "queue_consumer", "scheduled", "websocket_route"]
