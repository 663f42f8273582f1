"""heartbeat: heartbeatAck, plus refresh and close warnings when the connection is old."""

from session_manager import snapstart, websocket_route

snapstart.enable()  # SnapStart hooks: nothing unique may come from the snapshot


@websocket_route
def handler(services, caller, body):
    return services.connections.heartbeat(caller)
