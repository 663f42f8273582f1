"""joinSession: a listener takes a seat for one target language."""

from session_manager import websocket_route


@websocket_route
def handler(services, caller, body):
    request = services.sessions.parse_join(caller, body)
    return services.sessions.join_session(caller, request)
