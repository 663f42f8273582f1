"""joinSession: a listener takes a seat for one target language."""

from session_manager import snapstart, websocket_route

snapstart.enable()  # SnapStart hooks: nothing unique may come from the snapshot


@websocket_route
def handler(services, caller, body):
    request = services.sessions.parse_join(caller, body)
    return services.sessions.join_session(caller, request)
