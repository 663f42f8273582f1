"""$default: whatever matched no route is an INVALID_ACTION, and the connection stays open."""

from session_manager import websocket_route
from session_manager.errors import InvalidActionError
from session_manager.protocol import Action


@websocket_route
def handler(services, caller, body):
    action = body.get("action")
    known = ", ".join(a.value for a in Action)
    if not isinstance(action, str) or not action:
        raise InvalidActionError(f"Messages need an 'action' field; one of: {known}.")
    raise InvalidActionError(f"Unknown action '{action[:40]}'; use one of: {known}.")
