"""endSession: the speaker ends the session; every listener is told."""

from session_manager import websocket_route


@websocket_route
def handler(services, caller, body):
    return services.sessions.end_session(caller)
