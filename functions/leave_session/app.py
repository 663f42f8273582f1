"""leaveSession: a listener gives up its seat and may join again."""

from session_manager import websocket_route


@websocket_route
def handler(services, caller, body):
    return services.listener.leave_session(caller)
