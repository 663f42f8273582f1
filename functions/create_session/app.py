"""createSession: an authenticated speaker opens a session."""

from session_manager import snapstart, websocket_route
from session_manager.protocol import parse_create_session

snapstart.enable()  # SnapStart hooks: nothing unique may come from the snapshot


@websocket_route
def handler(services, caller, body):
    services.speaker.require_speaker(caller)
    return services.speaker.create_session(caller, parse_create_session(body))
