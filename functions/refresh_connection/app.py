"""refreshConnection: move a speaker (refresh or reclaim after a drop) or a listener onto this
new connection."""

from session_manager import websocket_route
from session_manager.protocol import Role, parse_refresh_connection


@websocket_route
def handler(services, caller, body):
    request = parse_refresh_connection(body)
    acting = services.speaker if request.role is Role.SPEAKER else services.listener
    return acting.refresh_connection(caller, request)
