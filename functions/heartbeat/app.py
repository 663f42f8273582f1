"""heartbeat: heartbeatAck, plus refresh and close warnings when the connection is old."""

from session_manager import websocket_route


@websocket_route
def handler(services, caller, body):
    return services.connections.heartbeat(caller)
