"""endSession: the speaker ends the session; every listener is told."""

from session_manager import websocket_route


@websocket_route
def handler(services, caller, body):
    return services.speaker.end_session(caller)
