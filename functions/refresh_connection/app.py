"""refreshConnection: move a speaker or a listener onto this new connection."""

from session_manager import websocket_route
from session_manager.protocol import parse_refresh_connection


@websocket_route
def handler(services, caller, body):
    return services.sessions.refresh_connection(caller, parse_refresh_connection(body))
