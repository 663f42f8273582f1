"""joinSession: a listener takes a seat for one target language."""

from session_manager import snapstart, websocket_route

snapstart.enable()  # SnapStart hooks: nothing unique may come from the snapshot


@websocket_route
def handler(services, caller, body):
    request = services.listener.parse_join(caller, body)
    return services.listener.join_session(caller, request)
