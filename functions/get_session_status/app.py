"""getSessionStatus: listeners and their languages, for the session's speaker."""

from session_manager import websocket_route


@websocket_route
def handler(services, caller, body):
    return services.speaker.session_status(caller)
